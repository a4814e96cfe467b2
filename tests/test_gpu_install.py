"""`make install`'s choice of flavour, read from `make install-plan` with stub nvidia-smi and nvcc.

Nothing is installed: install-plan only prints, `make -n` only lists commands, and a plan
that cannot work stops make while it reads the Makefile, before any recipe.
"""

import os

import pytest

import proc

SYSTEM_PATH = "/usr/bin:/bin"  # not /usr/local/bin: the tests decide which nvcc exists
NVIDIA_SMI = """#!/bin/sh
echo "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1)"
echo "GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-2)"
"""
NVCC = """#!/bin/sh
case "$*" in
  *--dryrun*) echo "#\\$ _HERE_=%(bin)s" ;;
  *) echo "Cuda compilation tools, release %(release)s, V%(release)s.131" ;;
esac
"""


def stubs(tmp_path, gpus=True, nvcc="12.4"):
    """A PATH with the stub programs asked for; nvcc lives in its own CUDA-like tree."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if gpus:
        (bin_dir / "nvidia-smi").write_text(NVIDIA_SMI)
        (bin_dir / "nvidia-smi").chmod(0o755)
    if nvcc:
        cuda_bin = tmp_path / "cuda" / "bin"
        cuda_bin.mkdir(parents=True, exist_ok=True)
        (cuda_bin / "nvcc").write_text(NVCC % {"bin": cuda_bin, "release": nvcc})
        (cuda_bin / "nvcc").chmod(0o755)
        if not (bin_dir / "nvcc").exists():
            (bin_dir / "nvcc").symlink_to(cuda_bin / "nvcc")
    return str(bin_dir) + ":" + SYSTEM_PATH


def make(tmp_path, *args, path=None, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("GPU", "HOROVOD", "CUDA_HOME", "NCCL_HOME",
                                                                      "CUDA_ARCHS", "MAKEFLAGS", "MAKELEVEL")}
    environment.update(PATH=path or SYSTEM_PATH, CUDA_SEARCH=str(tmp_path / "no-cuda"), **env)
    return proc.run(["make", "--no-print-directory", *args], timeout=60, env=environment, check=False)


def plan_of(result):
    assert result.returncode == 0, result.stdout
    return dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)


def test_cpu_flavour_without_gpus_is_todays_install(tmp_path):
    plan = plan_of(make(tmp_path, "install-plan"))
    assert plan["flavour"].strip().startswith("cpu (no GPU listed by nvidia-smi")
    assert plan["packages"].strip().startswith("tensorflow==2.18.1 ")
    assert plan["wheel dir"].strip().endswith("/wheels/horovod-0.28.1-tf2.18.1-" + os.path.basename(
        plan["wheel dir"].strip()).split("-")[-1])
    assert "NCCL" not in plan["horovod env"]


def test_gpu_flavour_when_nvidia_smi_lists_gpus(tmp_path):
    plan = plan_of(make(tmp_path, "install-plan", path=stubs(tmp_path)))
    assert plan["flavour"].strip().startswith("gpu (nvidia-smi lists 2 GPUs")
    assert plan["packages"].strip().startswith("tensorflow[and-cuda]==2.18.1 ")
    env = plan["horovod env"].split()
    assert "HOROVOD_GPU_OPERATIONS=NCCL" in env and "HOROVOD_BUILD_CUDA_CC_LIST=70,80,90" in env
    assert "HOROVOD_CUDA_HOME=%s" % (tmp_path / "cuda") in env and "HOROVOD_NCCL_LINK=SHARED" in env
    wheel_dir = plan["wheel dir"].strip()
    assert wheel_dir.endswith("-cuda12.4-nccl-cc70_80_90")
    assert "HOROVOD_NCCL_HOME=%s/nccl" % wheel_dir in env and "nvidia-nccl-cu12" in plan["nccl"]
    cpu = plan_of(make(tmp_path, "install-plan", path=stubs(tmp_path), GPU="0"))
    assert cpu["flavour"].strip() == "cpu (GPU=0)" and cpu["wheel dir"] != plan["wheel dir"]


def test_overrides_arch_list_nccl_home_and_forced_gpu(tmp_path):
    nccl = tmp_path / "nccl"
    (nccl / "include").mkdir(parents=True)
    (nccl / "include" / "nccl.h").write_text("#define NCCL_MAJOR 2\n")
    plan = plan_of(make(tmp_path, "install-plan", "GPU=1", "CUDA_ARCHS=8.0 9.0", path=stubs(tmp_path, gpus=False),
                        NCCL_HOME=str(nccl)))
    assert plan["flavour"].strip().startswith("gpu (GPU=1 (0 GPUs listed")
    assert "HOROVOD_BUILD_CUDA_CC_LIST=80,90" in plan["horovod env"]
    assert "HOROVOD_NCCL_HOME=%s" % nccl in plan["horovod env"] and plan["nccl"].strip() == "NCCL_HOME=%s" % nccl
    assert plan["wheel dir"].strip().endswith("-nccl-cc80_90")


@pytest.mark.parametrize("target", ["install-plan", "install"])
def test_gpu_node_without_nvcc_stops_with_one_line(tmp_path, target):
    res = make(tmp_path, target, path=stubs(tmp_path, nvcc=None))
    lines = res.stdout.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1, res.stdout
    assert "needs nvcc" in lines[0] and "CUDA_HOME" in lines[0] and "HOROVOD=system" in lines[0]


@pytest.mark.parametrize("args, env, words", [
    (["install-plan"], {"NCCL_HOME": "/nowhere"}, "NCCL_HOME=/nowhere has no include/nccl.h"),
    (["install-plan", "GPU=maybe"], {}, "GPU=maybe is not one of 1, 0"),
    (["install-plan", "HOROVOD=mine"], {}, "HOROVOD=mine is not one of build, system"),
    (["install-plan", "CUDA_ARCHS=sm_80"], {}, "CUDA_ARCHS='sm_80' is not a list"),
])
def test_bad_settings_stop_with_one_line(tmp_path, args, env, words):
    res = make(tmp_path, *args, path=stubs(tmp_path), **env)
    assert res.returncode != 0 and len(res.stdout.strip().splitlines()) == 1 and words in res.stdout, res.stdout


def test_an_nvcc_of_another_cuda_major_is_refused(tmp_path):
    res = make(tmp_path, "install-plan", path=stubs(tmp_path, nvcc="13.0"))
    assert res.returncode != 0 and "is CUDA 13.0 but tensorflow 2.18.1 is built for CUDA 12" in res.stdout


def test_horovod_system_builds_nothing(tmp_path):
    plan = plan_of(make(tmp_path, "install-plan", "HOROVOD=system", path=stubs(tmp_path, nvcc=None)))
    assert plan["flavour"].strip().startswith("system-gpu (nvidia-smi lists 2 GPUs")
    assert "checked for TensorFlow ops and NCCL; nothing is built" in plan["horovod"]
    listed = make(tmp_path, "-n", "install", "HOROVOD=system", path=stubs(tmp_path, nvcc=None)).stdout
    assert "check-system" in listed and "pip wheel" not in listed and "--no-deps -e ." in listed


def test_gpu_install_commands(tmp_path):
    listed = make(tmp_path, "-n", "install", path=stubs(tmp_path), VENV=str(tmp_path / "venv")).stdout
    assert '"tensorflow[and-cuda]==2.18.1"' in listed
    assert "tools/install_plan.sh nccl-home" in listed and "HOROVOD_GPU_OPERATIONS=NCCL" in listed
    assert "LDFLAGS='-Wl,-rpath,$ORIGIN/../../nvidia/nccl/lib'" in listed
    assert "--force-reinstall" in listed  # a CPU Horovod in the venv is replaced by the NCCL wheel


def fake_python(tmp_path, body):
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_check_system_reads_horovods_build(tmp_path):
    script = os.path.join(proc.REPO, "tools", "install_plan.sh")
    gpu_path = stubs(tmp_path, nvcc=None)

    def check(body, path):
        env = dict(os.environ, PATH=path)
        return proc.run([script, "check-system", fake_python(tmp_path, body)], timeout=30, env=env, check=False)
    ok = check("echo 22105\n", gpu_path)
    assert ok.returncode == 0 and "NCCL version code 22105" in ok.stdout
    no_nccl = check("echo 0\n", gpu_path)
    assert no_nccl.returncode == 1 and "has no NCCL operations" in no_nccl.stdout
    assert check("echo 0\n", SYSTEM_PATH).returncode == 0  # no GPU: NCCL not needed
    broken = check("echo 'ModuleNotFoundError: No module named horovod' >&2; exit 1\n", gpu_path)
    assert broken.returncode == 1 and len(broken.stdout.strip().splitlines()) == 1
    assert "No module named horovod" in broken.stdout and "HOROVOD_WITH_TENSORFLOW=1" in broken.stdout
