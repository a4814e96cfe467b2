"""Evaluation while training, --eval_only, --keep_best and hvd-export --best (real hvd-pretrain runs)."""

import json
import os

import pytest

from proc import BIN, run

HVD_PRETRAIN = os.path.join(BIN, "hvd-pretrain")
HVD_EXPORT = os.path.join(BIN, "hvd-export")


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _end_digest(run_dir):
    ends = [r for r in _records(os.path.join(run_dir, "ranks", "0.jsonl")) if r.get("event") == "end"]
    return ends[-1]["weights_sha256"]


def _fails_with_one_line(cmd, *needles, timeout=150):
    result = run(cmd, timeout=timeout, check=False)
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.timeout(700)
def test_evaluating_leaves_training_unchanged_and_keeps_the_best(tiny_split_data, evaluated_run, tmp_path):
    from conftest import tiny_train_flags

    # evaluated_run (conftest, read only): these flags with eval_every=1, eval_examples=24,
    # keep_best=eval/mlm_loss and keep_checkpoints=1; the dashboard tests chart it too.
    with_eval, out, without = evaluated_run["run_dir"], evaluated_run["output"], str(tmp_path / "without")
    run([HVD_PRETRAIN] + tiny_train_flags(tiny_split_data, without, steps=4, eval_every=0), timeout=180)
    # The weights after 4 steps are bitwise the same with and without evaluation after every step.
    assert _end_digest(with_eval) == _end_digest(without)
    assert not [r for r in _records(os.path.join(without, "metrics.jsonl")) if r.get("event") == "eval"]

    evals = [r for r in _records(os.path.join(with_eval, "metrics.jsonl")) if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [0, 1, 2, 3, 4]
    for r in evals:
        m = r["eval"]
        assert m["examples"] == 24 and m["nsp_targets"] == 24 and m["mlm_targets"] > 24
        assert m["mlm_perplexity"] == pytest.approx(2.718281828459045 ** m["mlm_loss"], rel=1e-9)
        assert m["loss"] == pytest.approx(m["mlm_loss"] + m["nsp_loss"], rel=1e-9)
        assert 0 <= m["mlm_accuracy"] <= 1 and 0 <= m["nsp_accuracy"] <= 1 and m["seconds"] > 0
    assert "eval step 0 | loss" in out and "eval step 4 | loss" in out
    # The same weights give the same numbers at every evaluation of a fixed eval set: steps 0 and 4 differ.
    assert evals[0]["eval"]["mlm_loss"] != evals[-1]["eval"]["mlm_loss"]

    # --keep_best: the checkpoint of the lowest eval/mlm_loss of steps 1-4, beside a rotation of one.
    best_step = min(evals[1:], key=lambda r: r["eval"]["mlm_loss"])["step"]
    checkpoints = os.path.join(with_eval, "checkpoints")
    assert sorted(os.listdir(checkpoints)) == ["best", "ckpt-000000004"]
    assert os.listdir(os.path.join(checkpoints, "best")) == ["ckpt-%09d" % best_step]
    with open(os.path.join(checkpoints, "best", "ckpt-%09d" % best_step, "state.json")) as f:
        state = json.load(f)
    assert state["keep_best"]["metric"] == "eval/mlm_loss" and state["keep_best"]["direction"] == "min"
    assert state["keep_best"]["value"] == min(r["eval"]["mlm_loss"] for r in evals[1:])

    # TensorBoard has the eval/* scalars.
    from hvd_pretrain.tfcompat import tf
    tags = set()
    for name in os.listdir(os.path.join(with_eval, "tb")):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(with_eval, "tb", name)):
            tags |= {v.tag for v in event.summary.value}
    assert {"eval/mlm_accuracy", "eval/mlm_perplexity", "eval/nsp_accuracy", "eval/loss"} <= tags

    # --eval_only on the best checkpoint reproduces the number recorded during training.
    result_file = str(tmp_path / "best.json")
    out = run([HVD_PRETRAIN, "--eval_only", "--checkpoint=%s" % os.path.join(checkpoints, "best"),
               "--data_dir=%s" % tiny_split_data["data_dir"], "--eval_examples=24", "--micro_batch_size=5",
               "--eval_output=%s" % result_file, "--threads=1"], timeout=120).stdout
    assert "eval/mlm_accuracy" in out
    with open(result_file) as f:
        result = json.load(f)
    recorded = next(r["eval"] for r in evals if r["step"] == best_step)
    assert result["step"] == best_step and result["eval_data"] == os.path.join(tiny_split_data["data_dir"], "eval")
    for key in ("mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"):
        assert result["eval"][key] == pytest.approx(recorded[key], rel=1e-5, abs=1e-7), key

    # hvd-export --best exports that checkpoint.
    out = run([HVD_EXPORT, "--run_dir=%s" % with_eval, "--best", "--out=%s" % (tmp_path / "exported")],
              timeout=120).stdout
    assert "best/ckpt-%09d" % best_step in out and os.path.isfile(tmp_path / "exported" / "config.json")

    # --eval_only --init_from a transformers directory (the exported best) gives the checkpoint's numbers.
    hf_file = str(tmp_path / "hf.json")
    run([HVD_PRETRAIN, "--eval_only", "--init_from=%s" % (tmp_path / "exported"),
         "--data_dir=%s" % tiny_split_data["data_dir"], "--eval_examples=24", "--micro_batch_size=8",
         "--eval_output=%s" % hf_file, "--threads=1", "--run_dir=%s" % (tmp_path / "hf_run")], timeout=120)
    with open(hf_file) as f:
        from_hf = json.load(f)
    assert from_hf["init_from"] == str(tmp_path / "exported")
    for key in ("mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"):
        assert from_hf["eval"][key] == pytest.approx(result["eval"][key], rel=1e-5, abs=1e-7), key


@pytest.mark.timeout(300)
def test_eval_flag_errors_are_one_line(tiny_split_data, tiny_data, tmp_path):
    from conftest import tiny_train_flags

    _fails_with_one_line([HVD_PRETRAIN, "--keep_best=eval/mlm_acuracy"], "unknown metric", "eval/mlm_accuracy")
    _fails_with_one_line([HVD_PRETRAIN, "--keep_best=eval/mlm_accuracy", "--eval_every=0"], "needs evaluation")
    _fails_with_one_line([HVD_PRETRAIN, "--keep_best=eval/mlm_accuracy:up"], "neither max nor min")
    _fails_with_one_line([HVD_PRETRAIN] + tiny_train_flags(tiny_data, str(tmp_path / "a"), eval_every=2),
                         "--eval_every=2 needs held-out data", "--eval_fraction")
    _fails_with_one_line([HVD_PRETRAIN] + tiny_train_flags(tiny_split_data, str(tmp_path / "b"),
                                                           keep_best="eval/rtd_accuracy"),
                         "reports no eval/rtd_accuracy")
    _fails_with_one_line([HVD_PRETRAIN] + tiny_train_flags(tiny_split_data, str(tmp_path / "c"),
                                                           eval_data_dir=tiny_split_data["data_dir"] + "/missing"),
                         "does not exist")
    os.makedirs(tmp_path / "empty_run")
    _fails_with_one_line([HVD_PRETRAIN, "--eval_only", "--run_dir=%s" % (tmp_path / "empty_run"),
                          "--data_dir=%s" % tiny_split_data["data_dir"]], "--run_dir=", "no complete checkpoint")
    _fails_with_one_line([HVD_EXPORT, "--run_dir=%s" % (tmp_path / "a"), "--best", "--out=%s" % (tmp_path / "x")],
                         "no best checkpoint")
