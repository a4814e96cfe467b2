"""No silent CPU training: train/devices.py with stubbed device lists, and nvidia-smi parsing."""

import pytest

from hvd_pretrain import nvidia
from hvd_pretrain.errors import ConfigError, UsageError
from hvd_pretrain.train import devices

SMI = "0, NVIDIA A100-SXM4-80GB, 550.54.15, 81920, 8.0\n1, NVIDIA A100-SXM4-80GB, 550.54.15, 81920, 8.0\n"


def test_gpus_on_the_machine_but_none_in_tensorflow_is_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError) as err:
        devices.check_devices(False, gpus_on_machine=8, tf_gpus=[], horovod_nccl=None)
    message = str(err.value)
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2 and "\n" not in message
    assert "8 NVIDIA GPUs" in message and "TensorFlow sees none" in message
    assert "make install GPU=1" in message and "--allow_cpu" in message and "CUDA_VISIBLE_DEVICES=''" in message


def test_gpu_training_with_a_horovod_without_nccl_is_refused():
    with pytest.raises(ConfigError) as err:
        devices.check_devices(False, gpus_on_machine=2, tf_gpus=["/physical_device:GPU:0"], horovod_nccl=0)
    message = str(err.value)
    assert "without NCCL" in message and "HOROVOD_GPU_OPERATIONS=NCCL" in message and "--allow_cpu" in message
    assert "\n" not in message


def test_allow_cpu_overrides_both_refusals():
    assert devices.check_devices(True, gpus_on_machine=8, tf_gpus=0, horovod_nccl=None) is None
    assert devices.check_devices(True, gpus_on_machine=8, tf_gpus=8, horovod_nccl=0) is None


def test_fitting_devices_pass():
    assert devices.check_devices(False, gpus_on_machine=0, tf_gpus=0, horovod_nccl=0) is None  # CPU-only machine
    assert devices.check_devices(False, gpus_on_machine=[], tf_gpus=[], horovod_nccl=None) is None
    assert devices.check_devices(False, gpus_on_machine=8, tf_gpus=8, horovod_nccl=22105) is None
    assert devices.check_devices(False, gpus_on_machine=1, tf_gpus=1, horovod_nccl=None) is None  # one process


def test_require_devices_probes_only_what_it_needs():
    asked = []

    def nccl():
        asked.append("nccl")
        return 0

    facts = devices.require_devices(False, world_size=1, machine=lambda: 1, tf_probe=lambda: ["GPU:0"],
                                    nccl_probe=nccl)
    assert facts == devices.DeviceFacts(1, 1, None) and asked == []  # one process never allreduces
    with pytest.raises(ConfigError, match="without NCCL"):
        devices.require_devices(False, world_size=4, machine=lambda: 4, tf_probe=lambda: 4, nccl_probe=nccl)
    assert asked == ["nccl"]
    with pytest.raises(ConfigError, match="TensorFlow sees none"):
        devices.require_devices(False, world_size=4, machine=lambda: 4, tf_probe=lambda: [], nccl_probe=nccl)

    def boom():
        raise AssertionError("probed with --allow_cpu")
    assert devices.require_devices(True, 4, machine=boom, tf_probe=boom, nccl_probe=boom) is None


def test_machine_gpus_from_a_stubbed_nvidia_smi():
    calls = []

    def run(argv, timeout):
        calls.append((argv, timeout))
        return 0, SMI
    assert devices.machine_gpus(run=run, timeout=7) == 2
    assert calls[0][0][0] == "nvidia-smi" and calls[0][1] == 7
    assert devices.machine_gpus(run=lambda argv, timeout: (None, "nvidia-smi not found on PATH")) == 0
    assert devices.machine_gpus(run=lambda argv, timeout: (None, "nvidia-smi did not answer within 7s")) == 0


def test_this_cpu_machine_passes_with_the_real_probes():
    # No NVIDIA GPU here: nvidia-smi lists none and TensorFlow sees none, so nothing is refused.
    facts = devices.require_devices(False, world_size=1)
    assert facts.gpus_on_machine == 0 and facts.tf_gpus == 0


def test_nvidia_smi_parsing_and_failures():
    gpus, problem = nvidia.query_gpus(run=lambda argv, timeout: (0, SMI))
    assert problem is None and [g.index for g in gpus] == [0, 1]
    assert gpus[0] == nvidia.Gpu(0, "NVIDIA A100-SXM4-80GB", "550.54.15", 81920, "8.0")

    def old_driver(argv, timeout):  # nvidia-smi before 510 rejects compute_cap
        if "compute_cap" in argv[1]:
            return 2, 'Field "compute_cap" is not a valid field to query.'
        return 0, "0, Tesla V100-SXM2-32GB, 470.82.01, 32510\n"
    gpus, problem = nvidia.query_gpus(run=old_driver)
    assert problem is None and gpus[0].compute_capability == "" and gpus[0].memory_mib == 32510
    gpus, problem = nvidia.query_gpus(run=lambda argv, timeout: (
        9, "Failed to initialize NVML: Driver/library version mismatch\n"))
    assert gpus == [] and "version mismatch" in problem


@pytest.mark.parametrize("driver, cuda, verdict", [
    ("550.54.15", "12.5.1", "limited"),  # above 525.60.13, below 12.5's 555.42.02
    ("555.42.06", "12.5.1", "ok"),
    ("520.61.05", "12.5.1", "too_old"),
    ("525.60.13", "12.0", "ok"),
    ("470.82.01", "11.8", "ok"),
    ("", "12.5.1", "unknown"),
    ("550.54.15", "", "unknown"),
])
def test_driver_verdicts(driver, cuda, verdict):
    assert nvidia.driver_verdict(driver, cuda)[0] == verdict
