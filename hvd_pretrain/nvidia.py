"""What nvidia-smi says about this machine's GPUs, and which driver a CUDA version needs.

No TensorFlow, no Horovod: the job doctor (supervisor) and the trainer's device check
(train/devices.py) both use it. Programs run without a shell and with a timeout; the
runner is a parameter, `run(argv, timeout) -> (returncode or None, output)`, so tests
pass a stub.
"""

import re
import shutil
import subprocess
from dataclasses import dataclass

QUERY = ("index", "name", "driver_version", "memory.total", "compute_cap")
# Minimum Linux driver for CUDA minor version compatibility: an application built with any
# CUDA 12.x toolkit runs on a 12.x-family driver >= 525.60.13 (11.x: >= 450.80.02).
# Source: NVIDIA CUDA Toolkit release notes, table "CUDA Toolkit and Minimum Required Driver
# Version for CUDA Minor Version Compatibility"; NVIDIA CUDA Compatibility guide, "Minor
# Version Compatibility".
MINOR_COMPAT_DRIVER = {11: "450.80.02", 12: "525.60.13"}
# The driver each CUDA 12 toolkit release ships with (release notes, "CUDA Toolkit and
# Corresponding Driver Versions", Linux x86_64, GA releases). Below it, but above the
# minor-compatibility minimum, CUDA runs with a limited feature set: PTX built by a newer
# ptxas cannot be loaded, so XLA compiles kernels serially or falls back.
TOOLKIT_DRIVER = {(12, 0): "525.60.13", (12, 1): "530.30.02", (12, 2): "535.54.03", (12, 3): "545.23.06",
                  (12, 4): "550.54.14", (12, 5): "555.42.02", (12, 6): "560.28.03"}


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    driver: str
    memory_mib: int
    compute_capability: str  # "8.0"; "" when this nvidia-smi cannot report it


def run_program(argv, timeout):
    """(returncode, stdout + stderr) of a program, or (None, reason) when it cannot run."""
    exe = shutil.which(argv[0])
    if not exe:
        return None, "%s not found on PATH" % argv[0]
    try:
        out = subprocess.run([exe] + list(argv[1:]), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "%s did not answer within %ss" % (argv[0], timeout)
    except OSError as e:
        return None, "%s: %s" % (argv[0], e)
    return out.returncode, (out.stdout or "") + (out.stderr or "")


def parse_gpus(text, fields=QUERY):
    """Gpu rows from `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` output."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(fields) or not parts[0].isdigit():
            continue
        row = dict(zip(fields, parts))
        memory = row.get("memory.total", "")
        gpus.append(Gpu(int(row["index"]), row.get("name", ""), row.get("driver_version", ""),
                        int(float(memory)) if re.match(r"^\d+(\.\d+)?$", memory) else 0,
                        row.get("compute_cap", "") if re.match(r"^\d+\.\d+$", row.get("compute_cap", "")) else ""))
    return gpus


def query_gpus(run=run_program, timeout=20):
    """(gpus, problem): the GPUs nvidia-smi lists, and None or why it could not list them.

    No nvidia-smi on PATH means no NVIDIA driver here: ([], None). nvidia-smi that fails
    (a driver/library mismatch, a hung GPU) gives ([], its last output line). Drivers older
    than 510 cannot report compute_cap; the query is repeated without it.
    """
    if run is run_program and not shutil.which("nvidia-smi"):
        return [], None
    for fields in (QUERY, QUERY[:-1]):
        code, text = run(["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"],
                         timeout)
        if code is None and "not found" in text:
            return [], None
        if code == 0:
            return parse_gpus(text, fields), None
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return [], (lines[-1] if lines else "nvidia-smi exited with %s" % code)[:200]


def version_tuple(text):
    """'525.60.13' -> (525, 60, 13); None when it is not a dotted version."""
    if not re.match(r"^\d+(\.\d+)*$", (text or "").strip()):
        return None
    return tuple(int(p) for p in text.strip().split("."))


def driver_verdict(driver, cuda_version):
    """('ok' | 'limited' | 'too_old' | 'unknown', required driver) for a CUDA version such as '12.5.1'.

    too_old: below NVIDIA's minor-version-compatibility minimum (CUDA cannot start);
    limited: at least that minimum but below the driver of that toolkit release.
    """
    have, cuda = version_tuple(driver), version_tuple(cuda_version)
    if have is None or cuda is None or cuda[0] not in MINOR_COMPAT_DRIVER:
        return "unknown", ""
    floor = MINOR_COMPAT_DRIVER[cuda[0]]
    if have < version_tuple(floor):
        return "too_old", floor
    release = TOOLKIT_DRIVER.get(cuda[:2])
    if release and have < version_tuple(release):
        return "limited", release
    return "ok", release or floor
