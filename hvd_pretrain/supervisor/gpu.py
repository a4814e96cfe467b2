"""`hvd-job doctor`'s GPU checks: would this run use the GPUs, all of them, and NCCL?

- gpus: GPUs nvidia-smi lists against those TensorFlow sees;
- nccl: Horovod's NCCL operations, when there are GPUs;
- driver: a driver new enough for the CUDA version TensorFlow was built with;
- gpu-ranks: one GPU per local rank (-np, or the hostfile's slots);
- nccl-iface, nccl-ib: on multi-host runs, NCCL_SOCKET_IFNAME and InfiniBand devices.

No TensorFlow in this process: TensorFlow and Horovod are asked in a child Python
(probe_python) and nvidia-smi is run with a timeout. Every probe is a parameter of
gpu_checks(), so tests pass stubs.
"""

import json
import os
import re
import subprocess
import sys

from hvd_pretrain import nvidia
from hvd_pretrain.supervisor.doctor import FAIL, OK, WARN, Check, is_local_host

PROBE_CODE = r"""
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
out = {}
try:
    import tensorflow as tf
    out["tf_version"] = tf.__version__
    out["tf_gpus"] = len(tf.config.list_physical_devices("GPU"))
    info = tf.sysconfig.get_build_info()
    out["cuda_version"] = str(info.get("cuda_version", ""))
    out["cudnn_version"] = str(info.get("cudnn_version", ""))
except Exception as e:
    out["tf_error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:200]
try:
    import horovod.tensorflow as hvd
    out["nccl"] = int(hvd.nccl_built())
except Exception as e:
    out["horovod_error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:200]
print("HVD_PROBE " + json.dumps(out))
"""
INSTALL_FIX = "make install GPU=1 (tensorflow[and-cuda] and Horovod with NCCL), or make install HOROVOD=system " \
              "in NVIDIA's TensorFlow container"


def probe_python(python=None, timeout=240):
    """What TensorFlow and Horovod report in a child Python: {tf_version, tf_gpus, cuda_version,
    cudnn_version, nccl} (or tf_error / horovod_error), or {"error": why} when the child fails."""
    try:
        out = subprocess.run([python or sys.executable, "-c", PROBE_CODE], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "the TensorFlow probe did not finish within %ss" % timeout}
    except OSError as e:
        return {"error": "cannot run %s: %s" % (python or sys.executable, e)}
    for line in out.stdout.splitlines():
        if line.startswith("HVD_PROBE "):
            return json.loads(line[len("HVD_PROBE "):])
    tail = [line for line in (out.stderr or out.stdout).splitlines() if line.strip()]
    return {"error": "the TensorFlow probe exited %s: %s" % (out.returncode, tail[-1][:200] if tail else "no output")}


def nccl_version(code):
    """Horovod's nccl_built() code as a version: 22105 -> '2.21.5' (NCCL >= 2.9), 2708 -> '2.7.8'."""
    code = int(code)
    if code >= 10000:
        return "%d.%d.%d" % (code // 10000, code % 10000 // 100, code % 100)
    return "%d.%d.%d" % (code // 1000, code % 1000 // 100, code % 100)


def _names(gpus):
    counts = {}
    for g in gpus:
        counts[g.name] = counts.get(g.name, 0) + 1
    return ", ".join("%s x%d" % kv for kv in counts.items())


def check_visibility(gpus, probe, env=os.environ):
    if "error" in probe or "tf_error" in probe:
        return Check("gpus", FAIL, "nvidia-smi lists %d GPUs (%s); TensorFlow could not be asked: %s"
                     % (len(gpus), _names(gpus), probe.get("error") or probe.get("tf_error")),
                     "activate the environment that has TensorFlow, or " + INSTALL_FIX)
    seen, hidden = int(probe.get("tf_gpus", 0)), env.get("CUDA_VISIBLE_DEVICES")
    message = "nvidia-smi lists %d GPUs (%s); TensorFlow %s sees %d" % (
        len(gpus), _names(gpus), probe.get("tf_version", "?"), seen)
    if hidden is not None:
        message += " (CUDA_VISIBLE_DEVICES=%s)" % hidden
    if seen == 0:
        return Check("gpus", FAIL, message + ": training would run on the CPU",
                     INSTALL_FIX + "; a TensorFlow without CUDA libraries, or CUDA_VISIBLE_DEVICES='', hides them")
    if seen < len(gpus):
        return Check("gpus", WARN, message + ": %d GPUs unused" % (len(gpus) - seen),
                     "unset or widen CUDA_VISIBLE_DEVICES" if hidden is not None else
                     "look for GPUs in use by other processes or in a bad state (nvidia-smi -q)")
    return Check("gpus", OK, message)


def check_nccl(probe):
    if "nccl" not in probe:
        return Check("nccl", FAIL, "Horovod could not be asked about NCCL: %s"
                     % (probe.get("horovod_error") or probe.get("error") or "no answer"),
                     "activate the environment that has Horovod, or " + INSTALL_FIX)
    if not probe["nccl"]:
        return Check("nccl", FAIL, "Horovod was built without NCCL: GPU gradients would be reduced through host "
                     "memory (hvd-pretrain refuses to start unless --allow_cpu)", INSTALL_FIX)
    return Check("nccl", OK, "Horovod has NCCL %s operations" % nccl_version(probe["nccl"]))


def check_driver(gpus, probe):
    driver, cuda = gpus[0].driver if gpus else "", probe.get("cuda_version", "")
    verdict, needed = nvidia.driver_verdict(driver, cuda)
    where = "driver %s, TensorFlow built with CUDA %s" % (driver or "unknown", cuda or "unknown")
    if verdict == "too_old":
        return Check("driver", FAIL, "%s: CUDA %s needs a driver >= %s (NVIDIA's minor version compatibility "
                     "table)" % (where, cuda.split(".")[0], needed),
                     "upgrade the NVIDIA driver to >= %s, or run in a container with CUDA's forward "
                     "compatibility package" % needed)
    if verdict == "limited":
        return Check("driver", WARN, "%s: older than the CUDA %s toolkit's driver %s; CUDA runs in minor version "
                     "compatibility (PTX from a newer ptxas cannot load; XLA compiles more slowly)"
                     % (where, ".".join(cuda.split(".")[:2]), needed),
                     "upgrade the NVIDIA driver to >= %s" % needed)
    if verdict == "unknown":
        return Check("driver", WARN, where + ": cannot tell whether the driver is new enough",
                     "compare nvidia-smi's driver with NVIDIA's CUDA release notes (CUDA 12 needs >= 525.60.13)")
    return Check("driver", OK, where + " (needs >= %s)" % needed)


def parse_slots(path):
    """[(host, slots or None)] from a hostfile ('host slots=N' or 'host:N'; # comments)."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            first = line.split()[0]
            match = re.search(r"\bslots\s*=\s*(\d+)", line) or re.search(r":(\d+)$", first)
            rows.append((first.split(":")[0], int(match.group(1)) if match else None))
    return rows


def check_ranks(gpus, local_ranks, source):
    if local_ranks is None:
        return Check("gpu-ranks", OK, "ranks per host unknown (give --np or a hostfile with slots=N to check "
                     "them against the %d GPUs)" % len(gpus))
    message = "%d local ranks (%s), %d GPUs on this host" % (local_ranks, source, len(gpus))
    if local_ranks > len(gpus):
        return Check("gpu-ranks", FAIL, message + ": ranks would share GPUs (out of memory, or kernels run "
                     "in turn)", "run at most %d ranks per host (-np, or slots=%d in the hostfile)"
                     % (len(gpus), len(gpus)))
    if local_ranks < len(gpus):
        return Check("gpu-ranks", WARN, message + ": %d GPUs idle" % (len(gpus) - local_ranks),
                     "run %d ranks per host (slots=%d) to use every GPU" % (len(gpus), len(gpus)))
    return Check("gpu-ranks", OK, message + ": one GPU per rank")


def interfaces_matching(spec, names):
    """Interfaces NCCL_SOCKET_IFNAME selects: comma-separated prefixes, '=' for exact names,
    a leading '^' to exclude (NCCL environment variable documentation)."""
    exclude = spec.startswith("^")
    parts = [p for p in spec.lstrip("^").split(",") if p]

    def hit(name):
        return any(name == p[1:] if p.startswith("=") else name.startswith(p) for p in parts)
    return [n for n in names if hit(n) != exclude]


def check_socket_ifname(env=os.environ, net_dir="/sys/class/net"):
    names = sorted(os.listdir(net_dir)) if os.path.isdir(net_dir) else []
    spec = env.get("NCCL_SOCKET_IFNAME", "")
    if not spec:
        return Check("nccl-iface", WARN, "NCCL_SOCKET_IFNAME is not set: NCCL picks an interface itself and may "
                     "take a slow or unroutable one (interfaces here: %s)" % (", ".join(names) or "none"),
                     "export NCCL_SOCKET_IFNAME=<the cluster network's interface> before horovodrun, which passes its "
                     "environment to every rank (with mpirun, add -x NCCL_SOCKET_IFNAME)")
    chosen = [n for n in interfaces_matching(spec, names) if n != "lo" or spec.lstrip("^=") == "lo"]
    if not chosen:
        return Check("nccl-iface", FAIL, "NCCL_SOCKET_IFNAME=%s matches no interface here (have: %s)"
                     % (spec, ", ".join(names) or "none"), "set it to an interface listed by `ip -br link`")
    return Check("nccl-iface", OK, "NCCL_SOCKET_IFNAME=%s selects %s" % (spec, ", ".join(chosen)))


def check_infiniband(env=os.environ, ib_dir="/sys/class/infiniband"):
    devices = sorted(os.listdir(ib_dir)) if os.path.isdir(ib_dir) else []
    disabled = env.get("NCCL_IB_DISABLE", "0") not in ("", "0")
    if devices and disabled:
        return Check("nccl-ib", WARN, "InfiniBand devices %s present but NCCL_IB_DISABLE=%s: NCCL uses TCP "
                     "sockets between hosts" % (", ".join(devices), env["NCCL_IB_DISABLE"]),
                     "unset NCCL_IB_DISABLE to use InfiniBand")
    if devices:
        return Check("nccl-ib", OK, "InfiniBand devices for NCCL: %s" % ", ".join(devices))
    if disabled:
        return Check("nccl-ib", OK, "no InfiniBand devices; NCCL_IB_DISABLE=%s: TCP sockets between hosts"
                     % env["NCCL_IB_DISABLE"])
    return Check("nccl-ib", WARN, "no InfiniBand devices under %s: NCCL uses TCP sockets between hosts "
                 "(the allreduce is then often the bottleneck)" % ib_dir,
                 "on an InfiniBand cluster load the drivers (rdma-core, mlx5_ib) and mount /sys/class/infiniband "
                 "into containers; on Ethernet set NCCL_IB_DISABLE=1 to say so")


def gpu_checks(hostfile=None, np=None, smi=nvidia.query_gpus, probe=probe_python, env=None,
               net_dir="/sys/class/net", ib_dir="/sys/class/infiniband", is_local=is_local_host):
    """The GPU checks as a list of Check. smi() -> (gpus, problem) as nvidia.query_gpus;
    probe() -> dict as probe_python. np: ranks on this host (default: the hostfile's slots)."""
    env = os.environ if env is None else env
    gpus, problem = smi()
    if problem:
        return [Check("gpus", FAIL, "nvidia-smi fails: %s" % problem,
                      "fix the NVIDIA driver (a driver/library version mismatch needs the kernel module reloaded "
                      "or a reboot), or GPU=0 / --allow_cpu for a CPU run")]
    if not gpus:
        return [Check("gpu", OK, "no NVIDIA GPU on this host (no nvidia-smi, or it lists none): the GPU checks "
                      "do not apply")]
    facts = probe()
    checks = [check_visibility(gpus, facts, env), check_nccl(facts), check_driver(gpus, facts)]
    rows = parse_slots(hostfile) if hostfile else []
    if np is not None:
        local, source = int(np), "--np"
    else:
        here = [slots for host, slots in rows if is_local(host) and slots]
        known = [slots for _, slots in rows if slots]
        local, source = ((here[0], "this host's slots in the hostfile") if here else
                         (max(known), "the hostfile's largest slots") if known else (None, ""))
    checks.append(check_ranks(gpus, local, source))
    if len({host for host, _ in rows}) > 1:
        checks += [check_socket_ifname(env, net_dir), check_infiniband(env, ib_dir)]
    return checks

