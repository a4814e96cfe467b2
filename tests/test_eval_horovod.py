"""Evaluation over two Horovod ranks gives the one-rank numbers (each rank evaluates a disjoint slice)."""

import json
import os

import pytest

from proc import BIN, run

pytestmark = pytest.mark.horovod

HVD_PRETRAIN = os.path.join(BIN, "hvd-pretrain")


@pytest.mark.timeout(400)
def test_two_ranks_evaluate_exactly_what_one_rank_does(tiny_data, tmp_path):
    from conftest import tiny_train_flags
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    data_dir = str(tmp_path / "data")
    create_pretraining_data([default_corpus()], tiny_data["vocab_dir"], data_dir,
                            DataConfig(max_seq_length=tiny_data["seq"], max_predictions_per_seq=tiny_data["preds"],
                                       dupe_factor=1, num_shards=2, seed=7, eval_fraction=0.05))
    run_dir = str(tmp_path / "run")
    run([HVD_PRETRAIN] + tiny_train_flags(dict(tiny_data, data_dir=data_dir), run_dir, steps=3, eval_every=0),
        timeout=150)
    results = {}
    for np_ in (1, 2):
        out = str(tmp_path / ("np%d.json" % np_))
        # 101 examples: an odd count, so the ranks' slices differ in size and end in partial batches.
        run([os.path.join(BIN, "horovodrun"), "-np", str(np_), "--gloo", HVD_PRETRAIN, "--eval_only",
             "--run_dir=%s" % run_dir, "--data_dir=%s" % data_dir, "--eval_examples=101", "--micro_batch_size=8",
             "--threads=1", "--eval_output=%s" % out], timeout=150)
        with open(out) as f:
            results[np_] = json.load(f)
    assert results[2]["world_size"] == 2 and results[1]["world_size"] == 1
    one, two = results[1]["eval"], results[2]["eval"]
    assert one["examples"] == two["examples"] == 101 and one["nsp_targets"] == two["nsp_targets"] == 101
    assert one["mlm_targets"] == two["mlm_targets"]
    for key in ("loss", "mlm_loss", "mlm_perplexity", "mlm_accuracy", "nsp_loss", "nsp_accuracy"):
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-9), key
