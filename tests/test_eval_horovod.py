"""Evaluation over two Horovod ranks gives the one-rank numbers (each rank evaluates a disjoint slice)."""

import json
import os

import pytest

from proc import BIN, run

pytestmark = pytest.mark.horovod

HVD_PRETRAIN = os.path.join(BIN, "hvd-pretrain")


@pytest.mark.timeout(400)
def test_two_ranks_evaluate_exactly_what_one_rank_does(tiny_split_data, tiny_run, tmp_path):
    # The held-out split of tiny_data's corpus (same vocab and sequence length) and the shared 4-step
    # tiny run (conftest, read only).
    data_dir, run_dir = tiny_split_data["data_dir"], tiny_run
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
