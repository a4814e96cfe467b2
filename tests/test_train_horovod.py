"""Real horovodrun -np 2 training under MPI (Gloo runs: tests/test_train_families.py)."""

import json
import os

import pytest

from proc import BIN, run

pytestmark = pytest.mark.horovod


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def final_digest(run_dir, rank):
    ends = [r for r in _records(os.path.join(run_dir, "ranks", "%d.jsonl" % rank)) if r.get("event") == "end"]
    assert ends, "rank %d wrote no final record" % rank
    return ends[-1]["weights_sha256"]


@pytest.mark.timeout(240)
def test_two_ranks_train_and_end_with_identical_weights(tmp_path, tiny_flags, controller="--mpi"):
    run_dir = tmp_path / "run"
    # peak_tflops=0: the CPU default, the MFU denominator measured on this host (other tiny runs fix it).
    out = run([os.path.join(BIN, "horovodrun"), "-np", "2", controller, os.path.join(BIN, "hvd-pretrain")]
              + tiny_flags(run_dir, steps=4, peak_tflops=0), timeout=220).stdout
    assert "batch plan: 4 per rank x 1 accumulation x 2 ranks = global batch 8" in out
    metrics = [r for r in _records(run_dir / "metrics.jsonl") if "global_step_per_sec" in r]
    assert [r["step"] for r in metrics] == [2, 4]
    last = metrics[-1]
    assert last["world_size"] == 2 and last["global_batch"] == 8
    assert last["global_step_per_sec"] > 0 and last["examples_per_sec"] > 0 and last["tokens_per_sec"] > 0
    # examples/sec is the global batch times step/sec, both totals over the same wall time.
    assert last["examples_per_sec"] == pytest.approx(8 * last["global_step_per_sec"], rel=1e-6)
    assert last["ranks"]["slowest_rank"] in (0, 1)
    assert "measured on this host" in out and last["peak_tflops_per_rank"] > 0 and 0 < last["mfu"] <= 1
    assert "step 4/4" in out and "step/s" in out and "examples/s" in out and "tokens/s" in out
    # Both ranks hold bitwise-identical weights after training.
    assert final_digest(str(run_dir), 0) == final_digest(str(run_dir), 1)
    assert os.path.isdir(run_dir / "checkpoints" / "ckpt-000000004")
