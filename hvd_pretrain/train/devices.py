"""No silent CPU training: refuse a run whose devices do not match the machine.

Two mistakes cost hours on a GPU cluster before anyone notices the step rate:

- the machine has NVIDIA GPUs but TensorFlow sees none (the plain `tensorflow`
  wheel without CUDA libraries, a CUDA/cuDNN mismatch, CUDA_VISIBLE_DEVICES="")
  and trains on the CPU;
- TensorFlow trains on GPUs but Horovod was built without NCCL, so every
  allreduce copies the gradients through host memory.

check_devices() is pure (it takes the facts); the probes that gather them are
separate and injectable: nvidia-smi in a subprocess with a timeout
(hvd_pretrain.nvidia), TensorFlow's physical device list, Horovod's nccl_built().
"""

import os
from dataclasses import dataclass
from typing import Optional

from hvd_pretrain import nvidia
from hvd_pretrain.errors import ConfigError


@dataclass(frozen=True)
class DeviceFacts:
    gpus_on_machine: int  # GPUs nvidia-smi lists (0: no NVIDIA driver or nvidia-smi)
    tf_gpus: int  # GPUs TensorFlow lists as physical devices
    horovod_nccl: Optional[int]  # Horovod's NCCL version code, 0 = built without NCCL, None = not asked


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else len(value or ())


def check_devices(allow_cpu, gpus_on_machine, tf_gpus, horovod_nccl):
    """None when the devices fit the machine; else raise ConfigError with the fix in one line.

    gpus_on_machine: GPUs nvidia-smi lists (a count or a list). tf_gpus: GPUs TensorFlow
    lists (a count or a list). horovod_nccl: Horovod's nccl_built() (0 or False: no NCCL),
    or None when not relevant (one process) or unknown. allow_cpu (--allow_cpu) turns both
    refusals off.

    Raises ConfigError (exit 2) when the machine has GPUs but TensorFlow sees none, or when
    TensorFlow uses GPUs and Horovod has no NCCL.
    """
    if allow_cpu:
        return None
    machine, visible = _count(gpus_on_machine), _count(tf_gpus)
    if machine > 0 and visible == 0:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise ConfigError(
            "this machine has %d NVIDIA GPU%s (nvidia-smi) but TensorFlow sees none, so training would run on the "
            "CPU: install the GPU flavour (make install GPU=1: tensorflow[and-cuda] with CUDA 12 and cuDNN 9)%s, "
            "run hvd-job doctor for the cause, or pass --allow_cpu to train on the CPU anyway"
            % (machine, "" if machine == 1 else "s",
               "" if hidden is None else ", check CUDA_VISIBLE_DEVICES=%r" % hidden))
    if visible > 0 and horovod_nccl is not None and not horovod_nccl:
        raise ConfigError(
            "TensorFlow trains on %d GPU%s but Horovod was built without NCCL, so every allreduce goes through "
            "host memory: rebuild it with make install GPU=1 (HOROVOD_GPU_OPERATIONS=NCCL), use a Horovod with "
            "NCCL (make install HOROVOD=system in NVIDIA's TensorFlow container), or pass --allow_cpu to run anyway"
            % (visible, "" if visible == 1 else "s"))
    return None


def machine_gpus(run=nvidia.run_program, timeout=20):
    """Number of GPUs nvidia-smi lists (0 without nvidia-smi, or when it fails within `timeout` s)."""
    gpus, _ = nvidia.query_gpus(run=run, timeout=timeout)
    return len(gpus)


def tensorflow_gpus():
    """Names of TensorFlow's physical GPU devices (tf.config.list_physical_devices('GPU'))."""
    from hvd_pretrain.tfcompat import tf
    return [d.name for d in tf.config.list_physical_devices("GPU")]


def horovod_nccl():
    """Horovod's NCCL version code (horovod.tensorflow.nccl_built(); 0: built without NCCL)."""
    import horovod.tensorflow as hvd
    return int(hvd.nccl_built())


def probe_devices(world_size, machine=machine_gpus, tf_probe=tensorflow_gpus, nccl_probe=horovod_nccl):
    """DeviceFacts from the probes; Horovod is asked only when TensorFlow sees GPUs and
    world_size > 1 (one process never allreduces)."""
    visible = _count(tf_probe())
    nccl = nccl_probe() if visible and int(world_size) > 1 else None
    return DeviceFacts(_count(machine()), visible, nccl)


def require_devices(allow_cpu, world_size, machine=machine_gpus, tf_probe=tensorflow_gpus, nccl_probe=horovod_nccl):
    """Probe, then check_devices(); returns the DeviceFacts for the run's log.

    With allow_cpu nothing is probed (returns None). Raises ConfigError as check_devices.
    """
    if allow_cpu:
        return None
    facts = probe_devices(world_size, machine, tf_probe, nccl_probe)
    check_devices(False, facts.gpus_on_machine, facts.tf_gpus, facts.horovod_nccl)
    return facts
