"""Every model family trains under the real trainer and horovodrun -np 2 (Gloo); ELECTRA learns to detect."""

import json
import os

import numpy as np
import pytest

from conftest import tiny_train_flags
from proc import BIN, run
from test_train_horovod import final_digest

pytestmark = pytest.mark.slow  # real training runs: left out of `make test-fast`


def _windows(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if "losses" in r]


@pytest.mark.horovod
@pytest.mark.timeout(300)
@pytest.mark.parametrize("family", ["bert", "albert", "electra"])
def test_family_loss_decreases_under_horovodrun(family, tmp_path, tiny_data, tiny_sop_data):
    data = tiny_sop_data if family == "albert" else tiny_data
    run_dir = str(tmp_path / "run")
    flags = tiny_train_flags(data, run_dir, steps=30, log_every=5, save_checkpoints_steps=30, micro_batch_size=8,
                             learning_rate=2e-3, warmup_steps=3, accum_steps=2)
    out = run([os.path.join(BIN, "horovodrun"), "-np", "2", "--gloo", os.path.join(BIN, "hvd-pretrain"),
               "--model=" + family] + flags, timeout=280).stdout
    assert "global batch 32" in out
    windows = _windows(run_dir)
    assert [w["step"] for w in windows] == [5, 10, 15, 20, 25, 30]
    expected = {"bert": {"mlm", "nsp"}, "albert": {"mlm", "sop"}, "electra": {"mlm", "rtd"}}[family]
    assert set(windows[0]["losses"]) == expected
    first, last = windows[0], windows[-1]
    assert last["losses"]["mlm"] < first["losses"]["mlm"] - 0.3, (first["losses"], last["losses"])
    assert last["loss"] < first["loss"]
    # Both ranks end with bitwise-identical weights.
    assert final_digest(run_dir, 0) == final_digest(run_dir, 1)
    assert last["world_size"] == 2 and last["accum_steps"] == 2 and last["global_batch"] == 32
    assert last["examples_per_sec"] == pytest.approx(32 * last["global_step_per_sec"], rel=1e-6)
    assert last["ranks"]["slowest_rank"] in (0, 1)


@pytest.mark.horovod
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sharing", ["ffn", "attention"])
def test_albert_partial_sharing_modes_train_under_horovodrun(sharing, tmp_path, tiny_sop_data):
    run_dir = str(tmp_path / "run")
    flags = tiny_train_flags(tiny_sop_data, run_dir, steps=10, log_every=5, save_checkpoints_steps=10,
                             micro_batch_size=8, learning_rate=2e-3, warmup_steps=2)
    out = run([os.path.join(BIN, "horovodrun"), "-np", "2", "--gloo", os.path.join(BIN, "hvd-pretrain"),
               "--model=albert", "--sharing=" + sharing] + flags, timeout=280).stdout
    assert "step 10/10" in out
    with open(os.path.join(run_dir, "plan.json")) as f:
        assert json.load(f)["model"]["sharing"] == sharing
    windows = _windows(run_dir)
    assert windows[-1]["losses"]["mlm"] < windows[0]["losses"]["mlm"]
    assert final_digest(run_dir, 0) == final_digest(run_dir, 1)


@pytest.mark.timeout(300)
def test_electra_discriminator_beats_the_all_original_baseline(tiny_data):
    """A few real batches, trained on repeatedly: replaced tokens become detectable."""
    from hvd_pretrain.data import make_dataset
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.models.config import preset
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator

    keras.utils.set_random_seed(5)
    ds = make_dataset(tiny_data["data_dir"], 16, tiny_data["seq"], tiny_data["preds"], shuffle=False, repeat=False)
    batches = [b for _, b in zip(range(4), ds)]
    config = preset("electra-tiny", vocab_size=tiny_data["vocab_size"], hidden_dropout=0.0, attention_dropout=0.0)
    model = build_pretrainer(config)
    model.loss_sums(batches[0], training=False)
    # At 2e-3 the tiny discriminator often collapses to "all original" on these batches (2 of 3 seeds);
    # at 1e-3 seeds 1, 2 and 5 all detect 45-47% of the replaced tokens after 160 steps.
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    step = AccumulatingStep(model, optimizer, LocalCommunicator(), accum_steps=1, clip_norm=1.0)
    step.build(batches[0])
    history = [step.step([batches[i % 4]]) for i in range(160)]
    last = history[-20:]
    accuracy = np.mean([h["accuracy"]["rtd"] for h in last])
    baseline = np.mean([h["accuracy"]["rtd_all_original_baseline"] for h in last])
    first = np.mean([h["losses"]["rtd"] for h in history[:10]])
    replaced = sum(h["metrics"]["rtd_replaced"] for h in last)
    detected = sum(h["metrics"]["rtd_replaced_correct"] for h in last)
    assert np.mean([h["losses"]["rtd"] for h in last]) < first
    # Predicting "original" everywhere scores the baseline and detects no replaced token.
    assert accuracy > baseline, (accuracy, baseline)
    assert detected / replaced > 0.05, (detected, replaced)
