"""hvd-job doctor's GPU checks with stubbed nvidia-smi, TensorFlow probe, /sys and hostfiles."""

import tempfile

import pytest

from hvd_pretrain import nvidia
from hvd_pretrain.supervisor import doctor, gpu

OK, WARN, FAIL = doctor.OK, doctor.WARN, doctor.FAIL


def a100s(n, driver="555.42.06"):
    return [nvidia.Gpu(i, "NVIDIA A100-SXM4-80GB", driver, 81920, "8.0") for i in range(n)]


def probe(tf_gpus=8, nccl=22105, cuda="12.5.1", **extra):
    return dict({"tf_version": "2.18.1", "tf_gpus": tf_gpus, "cuda_version": cuda, "cudnn_version": "9",
                 "nccl": nccl}, **extra)


def run(tmp_path, gpus=None, facts=None, problem=None, hostfile=None, np=None, env=None, nets=("lo", "ib0"),
        ib=("mlx5_0",)):
    sys_dir = tempfile.mkdtemp(dir=tmp_path)  # a /sys of its own for each call
    net_dir, ib_dir = tmp_path / sys_dir / "net", tmp_path / sys_dir / "ib"
    for base, names in ((net_dir, nets), (ib_dir, ib)):
        base.mkdir()
        for name in names:
            (base / name).mkdir(exist_ok=True)
    gpus = a100s(8) if gpus is None else gpus
    checks = gpu.gpu_checks(hostfile=hostfile, np=np, smi=lambda: (gpus, problem),
                            probe=lambda: probe() if facts is None else facts, env=env or {},
                            net_dir=str(net_dir), ib_dir=str(ib_dir), is_local=lambda h: h == "node1")
    assert all(c.level in (OK, WARN, FAIL) and c.message for c in checks)
    assert all(c.fix for c in checks if c.level != OK)
    return {c.name: c for c in checks}


def hosts(tmp_path, text):
    path = tmp_path / "hosts"
    path.write_text(text)
    return str(path)


def test_no_gpu_host_gets_one_ok_line(tmp_path):
    checks = run(tmp_path, gpus=[], facts={"error": "must not be asked"})
    assert list(checks) == ["gpu"] and checks["gpu"].level == OK


def test_a_healthy_multi_host_gpu_node(tmp_path):
    checks = run(tmp_path, hostfile=hosts(tmp_path, "node1 slots=8\nnode2 slots=8\n"),
                 env={"NCCL_SOCKET_IFNAME": "ib0"})
    assert {name: c.level for name, c in checks.items()} == {
        "gpus": OK, "nccl": OK, "driver": OK, "gpu-ranks": OK, "nccl-iface": OK, "nccl-ib": OK}
    assert "NCCL 2.21.5" in checks["nccl"].message
    assert "8 local ranks (this host's slots" in checks["gpu-ranks"].message
    assert "selects ib0" in checks["nccl-iface"].message


def test_tensorflow_seeing_no_gpu_fails(tmp_path):
    checks = run(tmp_path, facts=probe(tf_gpus=0), env={"CUDA_VISIBLE_DEVICES": ""})
    assert checks["gpus"].level == FAIL and "TensorFlow 2.18.1 sees 0" in checks["gpus"].message
    assert "make install GPU=1" in checks["gpus"].fix
    checks = run(tmp_path, facts=probe(tf_gpus=4), env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert checks["gpus"].level == WARN and "4 GPUs unused" in checks["gpus"].message
    checks = run(tmp_path, facts={"error": "the TensorFlow probe exited 1: ImportError: libcudnn.so.9"})
    assert checks["gpus"].level == FAIL and "libcudnn" in checks["gpus"].message


def test_horovod_without_nccl_fails(tmp_path):
    checks = run(tmp_path, facts=probe(nccl=0))
    assert checks["nccl"].level == FAIL and "without NCCL" in checks["nccl"].message
    assert "HOROVOD=system" in checks["nccl"].fix
    checks = run(tmp_path, facts={k: v for k, v in probe().items() if k != "nccl"} | {"horovod_error": "x"})
    assert checks["nccl"].level == FAIL


@pytest.mark.parametrize("driver, level, needed", [
    ("555.42.06", OK, "555.42.02"),
    ("535.104.05", WARN, "555.42.02"),  # minor version compatibility only
    ("470.82.01", FAIL, "525.60.13"),  # below CUDA 12's minimum
])
def test_driver_against_tensorflows_cuda(tmp_path, driver, level, needed):
    checks = run(tmp_path, gpus=a100s(8, driver))
    assert checks["driver"].level == level and needed in checks["driver"].message + checks["driver"].fix


def test_driver_unknown_cuda_warns(tmp_path):
    checks = run(tmp_path, facts=probe(cuda=""))
    assert checks["driver"].level == WARN


def test_one_gpu_per_local_rank(tmp_path):
    assert run(tmp_path, np=8)["gpu-ranks"].level == OK
    over = run(tmp_path, np=16)["gpu-ranks"]
    assert over.level == FAIL and "share GPUs" in over.message and "slots=8" in over.fix
    under = run(tmp_path, gpus=a100s(4), facts=probe(tf_gpus=4), hostfile=hosts(tmp_path, "node1:2\n"))["gpu-ranks"]
    assert under.level == WARN and "2 GPUs idle" in under.message
    # The doctor run from a login node: the hostfile's largest slots stand for every host.
    remote = run(tmp_path, hostfile=hosts(tmp_path, "gpu7 slots=8\ngpu8 slots=8\n"))["gpu-ranks"]
    assert remote.level == OK and "largest slots" in remote.message
    assert "unknown" in run(tmp_path)["gpu-ranks"].message
    assert "nccl-iface" not in run(tmp_path, hostfile=hosts(tmp_path, "node1 slots=8\n"))  # one host


def test_nccl_network_settings_on_multi_host_runs(tmp_path):
    two = hosts(tmp_path, "node1 slots=8\nnode2 slots=8\n")
    unset = run(tmp_path, hostfile=two)
    assert unset["nccl-iface"].level == WARN and "export NCCL_SOCKET_IFNAME=" in unset["nccl-iface"].fix
    assert "before horovodrun" in unset["nccl-iface"].fix  # horovodrun passes its environment; it has no -x
    wrong = run(tmp_path, hostfile=two, env={"NCCL_SOCKET_IFNAME": "ens9"}, nets=("lo", "eth0"))
    assert wrong["nccl-iface"].level == FAIL and "have: eth0, lo" in wrong["nccl-iface"].message
    excluded = run(tmp_path, hostfile=two, env={"NCCL_SOCKET_IFNAME": "^docker,lo"}, nets=("lo", "eth0", "docker0"))
    assert excluded["nccl-iface"].level == OK and excluded["nccl-iface"].message.endswith("selects eth0")
    no_ib = run(tmp_path, hostfile=two, env={"NCCL_SOCKET_IFNAME": "=eth0"}, nets=("eth0",), ib=())
    assert no_ib["nccl-iface"].level == OK and no_ib["nccl-ib"].level == WARN
    assert "NCCL_IB_DISABLE=1" in no_ib["nccl-ib"].fix
    said = run(tmp_path, hostfile=two, env={"NCCL_IB_DISABLE": "1"}, ib=())
    assert said["nccl-ib"].level == OK
    off = run(tmp_path, hostfile=two, env={"NCCL_IB_DISABLE": "1"})
    assert off["nccl-ib"].level == WARN and "mlx5_0" in off["nccl-ib"].message


def test_nvidia_smi_failing_is_one_fail(tmp_path):
    checks = run(tmp_path, gpus=[], problem="Failed to initialize NVML: Driver/library version mismatch")
    assert list(checks) == ["gpus"] and checks["gpus"].level == FAIL and "mismatch" in checks["gpus"].message


def test_helpers():
    assert gpu.nccl_version(22105) == "2.21.5" and gpu.nccl_version(2708) == "2.7.8"
    assert gpu.interfaces_matching("eth", ["eth0", "eth1", "ib0"]) == ["eth0", "eth1"]
    assert gpu.interfaces_matching("=eth", ["eth", "eth0"]) == ["eth"]
    assert gpu.interfaces_matching("^lo,docker", ["lo", "docker0", "ens3"]) == ["ens3"]


def test_run_checks_reports_the_gpu_group_on_this_machine(tmp_path):
    names = [c.name for c in doctor.run_checks(str(tmp_path), skip=("horovod", "kerberos", "mpi", "logind"))]
    assert "gpu" in names or "gpus" in names
    assert "gpu" not in [c.name for c in doctor.run_checks(str(tmp_path), skip=doctor.CHECKS)]


def test_the_probe_runs_in_a_child_python(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'HVD_PROBE {\"tf_gpus\": 2, \"nccl\": 0}'\n")
    fake.chmod(0o755)
    assert gpu.probe_python(str(fake), timeout=10) == {"tf_gpus": 2, "nccl": 0}
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'ImportError: libcudart.so.12' >&2\nexit 1\n")
    broken.chmod(0o755)
    assert "libcudart" in gpu.probe_python(str(broken), timeout=10)["error"]
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    assert "within 1s" in gpu.probe_python(str(hang), timeout=1)["error"]
