"""hvd-plan: output, searches and one-line usage errors (exit 2)."""

import json
import os
import sys

import pytest

import proc
from hvd_pretrain.cli import plan as cli


def run_cli(capsys, *args):
    rc = cli.run(["hvd-plan", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_prediction_text(capsys):
    rc, out, err = run_cli(capsys, "--preset=base", "--gpu_type=V100-16G", "--nodes=4", "--micro_batch_size=64",
                           "--accum_steps=4", "--precision=fp16")
    assert rc == 0 and err == ""
    for needle in ("memory per GPU", "fits", "micro-step", "allreduce", "global step/s", "sequences/s",
                   "scaling efficiency", "assumptions:", "NVIDIA DeepLearningExamples"):
        assert needle in out


def test_overlap_is_the_default_and_nooverlap_turns_it_off(capsys):
    args = ["--json", "--preset=base", "--gpu_type=V100-16G", "--nodes=4", "--network=eth-25g"]
    on = json.loads(run_cli(capsys, *args)[1])
    off = json.loads(run_cli(capsys, *args, "--nooverlap")[1])
    assert on["inputs"]["overlap"] and not off["inputs"]["overlap"]
    assert on["allreduce"]["buckets"] > 1 == off["allreduce"]["buckets"]
    assert on["allreduce"]["exposed_sec"] < off["allreduce"]["exposed_sec"]
    slow = json.loads(run_cli(capsys, *args, "--cycle_time_ms=5", "--fusion_threshold_mb=32")[1])["allreduce"]
    assert slow["cycle_sec"] == 0.005 and slow["fusion_bytes"] == 32 * 1024 ** 2


def test_json_with_searches(capsys):
    rc, out, _ = run_cli(capsys, "--json", "--preset=base", "--gpu_type=V100-16G", "--nodes=4",
                         "--target_global_batch=8192", "--step_rate=1.3,1.9")
    assert rc == 0
    data = json.loads(out)
    assert data["inputs"]["world_size"] == 32
    assert data["best_accum"]["best"]["accum_steps"] == 2
    assert all(1.3 <= r["global_step_per_sec"] <= 1.9 for r in data["consistent_plans"])


def test_validate_table(capsys):
    rc, out, _ = run_cli(capsys, "--validate")
    assert rc == 0
    assert out.count("%") == len(cli.published.VALIDATION) and "110280.7" in out


def test_model_config_file(tmp_path, capsys):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"family": "bert", "hidden_size": 256, "num_layers": 4, "num_heads": 4,
                                "intermediate_size": 1024}))
    rc, out, _ = run_cli(capsys, "--model_config=%s" % path, "--gpu_type=A100-40G")
    assert rc == 0 and "plan: bert seq 128" in out


@pytest.mark.parametrize("args,flag", [
    (["--gpu_type=K80"], "--gpu_type="),
    (["--preset=huge"], "--preset="),
    (["--interconnect=infiniband"], "--interconnect="),
    (["--network=token-ring", "--nodes=2"], "--network="),
    (["--precision=fp8"], "--precision="),
    (["--precision=bf16", "--gpu_type=V100-32G"], "--precision="),
    (["--micro_batch_size=0"], "--micro_batch_size="),
    (["--max_seq_length=4096"], "--max_seq_length="),
    (["--step_rate=fast"], "--step_rate="),
    (["--target_global_batch=1000", "--nodes=4"], "--target_global_batch="),
    (["--allreduce=tree"], "--allreduce="),
    (["--fusion_threshold_mb=0"], "--fusion_threshold_mb="),
    (["--cycle_time_ms=-1"], "--cycle_time_ms="),
    (["--model_config=/nonexistent/model.json"], "--model_config="),
    (["--max_seq_length=abc"], "max_seq_length"),
    (["--no_such_flag"], "no_such_flag"),
])
def test_bad_input_is_one_line_naming_the_flag(capsys, args, flag):
    rc, out, err = run_cli(capsys, *args)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], err


def test_help(capsys):
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0 and "--target_global_batch" in out


@pytest.mark.timeout(60)
def test_console_script_runs_without_tensorflow():
    code = ("import sys; from hvd_pretrain.cli import plan; rc = plan.run(['hvd-plan', '--gpu_type=H100', "
            "'--nodes=2', '--precision=bf16']); sys.exit(rc or (3 if 'tensorflow' in sys.modules else 0))")
    result = proc.run([sys.executable, "-c", code], timeout=50)
    assert "H100" in result.stdout and "A100 efficiency reused" in result.stdout
    script = os.path.join(os.path.dirname(sys.executable), "hvd-plan")
    assert os.path.exists(script), "hvd-plan console script is not installed next to %s" % sys.executable
    result = proc.run([script, "--gpu_type=K80"], timeout=50, check=False)
    assert result.returncode == 2 and "--gpu_type='K80'" in result.stdout
