"""benchmarks/gpu_acceptance.py: the one-line no-GPU path, and how it picks batches and presets."""

import os
import sys

import proc
from hvd_pretrain import nvidia

SCRIPT = os.path.join(proc.REPO, "benchmarks", "gpu_acceptance.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import gpu_acceptance  # noqa: E402


def _script(tmp_path, nvidia_smi=None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if nvidia_smi:
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n" + nvidia_smi)
        (bin_dir / "nvidia-smi").chmod(0o755)
    env = proc.test_env(PATH="%s:/usr/bin:/bin" % bin_dir)
    return proc.run([sys.executable, SCRIPT], timeout=60, env=env, check=False)


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path):
    res = _script(tmp_path)
    assert res.returncode == 0, res.stdout
    assert res.stdout.strip().splitlines() == [
        "no NVIDIA GPU on this machine (nvidia-smi is missing or lists none): the GPU acceptance run needs a GPU "
        "node; nothing was run"]


def test_nvidia_smi_listing_no_gpu_is_the_same_line(tmp_path):
    res = _script(tmp_path, "exit 0\n")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 1 and "no NVIDIA GPU" in res.stdout


def test_a_failing_nvidia_smi_is_one_line_and_exit_1(tmp_path):
    res = _script(tmp_path, "echo 'Failed to initialize NVML: Driver/library version mismatch'; exit 9\n")
    assert res.returncode == 1 and len(res.stdout.strip().splitlines()) == 1 and "mismatch" in res.stdout


def gpu(name, mib):
    return nvidia.Gpu(0, name, "555.42.06", mib, "8.0")


def test_presets_from_nvidia_smi_names():
    assert gpu_acceptance.gpu_preset(gpu("NVIDIA A100-SXM4-80GB", 81920)) == "A100-80G"
    assert gpu_acceptance.gpu_preset(gpu("NVIDIA A100-PCIE-40GB", 40960)) == "A100-40G"
    assert gpu_acceptance.gpu_preset(gpu("Tesla V100-SXM2-32GB", 32510)) == "V100-32G"
    assert gpu_acceptance.gpu_preset(gpu("Tesla V100-PCIE-16GB", 16160)) == "V100-16G"
    assert gpu_acceptance.gpu_preset(gpu("NVIDIA H100 80GB HBM3", 81559)) == "H100"
    assert gpu_acceptance.gpu_preset(gpu("NVIDIA GeForce RTX 4090", 24564)) is None


def test_nvidias_batch_sizes_or_what_fits():
    # NVIDIA's TF2 BERT-large rows (plan/published.py): A100-80G 312 at 128 and 40 at 512; V100-32G 60 and 10.
    batch, source, row = gpu_acceptance.choose_batch("large", 128, gpu("A100-SXM4-80GB", 81920), "A100-80G")
    assert (batch, source, row.sequences_per_sec) == (312, "NVIDIA's", 485.59)
    assert gpu_acceptance.choose_batch("large", 512, gpu("V100-SXM2-32GB", 32510), "V100-32G")[:2] == (10, "NVIDIA's")
    batch, source, row = gpu_acceptance.choose_batch("large", 128, gpu("A100-PCIE-40GB", 40960), "A100-40G")
    assert row.per_gpu_batch == 312 and (batch == 312) == (source == "NVIDIA's") and batch >= 1
    batch, source, row = gpu_acceptance.choose_batch("base", 128, gpu("RTX 4090", 24564), None)
    assert row is None and source.startswith("largest that fits") and batch > 1
