"""Exact resume: a run stopped with SIGTERM and resumed trains on exactly the batches of a run that never stopped.

Each rank records a digest of every micro-batch (--record_batch_digests), and the final weights must be
bit-identical too: with dropout off (static masking) and with dropout on (dynamic masking), since the
dropout masks are keyed by (seed, optimizer step, micro-batch, rank), all saved or known at a resume.
Static and dynamic masking (masks keyed by seed, epoch, shard, record).
"""

import json
import os
import signal
import time

import numpy as np
import pytest

from proc import BIN, Background, run

HVD_PRETRAIN = os.path.join(BIN, "hvd-pretrain")
STEPS, STOP_AT = 40, 17


@pytest.fixture(scope="module")
def dynamic_data(tiny_data, tmp_path_factory):
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    data_dir = str(tmp_path_factory.mktemp("dynamic") / "data")
    config = DataConfig(max_seq_length=tiny_data["seq"], max_predictions_per_seq=tiny_data["preds"], dupe_factor=1,
                        num_shards=4, seed=7, masking="dynamic")
    create_pretraining_data([default_corpus()], tiny_data["vocab_dir"], data_dir, config, num_workers=1)
    return data_dir


@pytest.fixture(scope="module")
def small_data(tiny_data, corpus_file, tmp_path_factory):
    """tiny_data's vocab and layout (4 shards, seq 64, NSP) on the first ~150 kB of corpus_file: ~1,100
    examples, an epoch short enough to be read to its end."""
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    root = tmp_path_factory.mktemp("small")
    with open(corpus_file, encoding="utf-8") as f:
        text = f.read(150_000)
    corpus = root / "small.txt"
    corpus.write_text(text[:text.rfind("\n\n") + 1], encoding="utf-8")
    data_dir = str(root / "data")
    config = DataConfig(max_seq_length=tiny_data["seq"], max_predictions_per_seq=tiny_data["preds"], dupe_factor=1,
                        num_shards=4, seed=7)
    create_pretraining_data([str(corpus)], tiny_data["vocab_dir"], data_dir, config, num_workers=1)
    return data_dir


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _digests(run_dir):
    by_step = {}
    for record in _jsonl(os.path.join(run_dir, "ranks", "0.batches.jsonl")):
        by_step[record["step"]] = record["digests"]  # a step trained again after a resume: the later one
    return by_step


def _weights(run_dir, step):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints", "ckpt-%09d" % step, "ckpt"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.endswith(".ATTRIBUTES/VARIABLE_VALUE") and "save_counter" not in name}


@pytest.mark.timeout(420)
@pytest.mark.parametrize("masking,dropout", [("static", 0.0), ("dynamic", 0.1)])
def test_stopped_and_resumed_run_sees_the_batches_of_an_uninterrupted_run(tmp_path, tiny_flags, dynamic_data,
                                                                          masking, dropout):
    data = {} if masking == "static" else {"data_dir": dynamic_data}
    flags = dict(steps=STEPS, log_every=1, save_checkpoints_steps=1000, accum_steps=2, hidden_dropout=dropout,
                 attention_dropout=dropout, record_batch_digests=True, **data)
    straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
    run([HVD_PRETRAIN] + tiny_flags(straight, **flags), timeout=180)

    cmd = [HVD_PRETRAIN] + tiny_flags(stopped, **flags)
    with Background(cmd, str(tmp_path / "first.log")) as bg:
        deadline = time.time() + 150
        while time.time() < deadline and not any(
                r.get("step", 0) >= STOP_AT for r in (_jsonl(os.path.join(stopped, "metrics.jsonl"))
                                                      if os.path.exists(os.path.join(stopped, "metrics.jsonl"))
                                                      else [])):
            assert bg.popen.poll() is None, bg.output()[-3000:]
            time.sleep(0.05)
        os.kill(bg.popen.pid, signal.SIGTERM)
        assert bg.wait(60) == 143, bg.output()[-3000:]
    stop_step = [r for r in _jsonl(os.path.join(stopped, "metrics.jsonl")) if r.get("event") == "stopped"][0]["step"]
    assert STOP_AT <= stop_step < STEPS
    resumed = run(cmd, timeout=180).stdout
    assert "resumed from" in resumed and "data starts at epoch 0" not in resumed

    a, b = _digests(straight), _digests(stopped)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    after = [s for s in a if s > stop_step]
    assert len(after) >= STEPS - STOP_AT - 3
    assert all(a[s] == b[s] for s in a), [s for s in a if a[s] != b[s]][:5]
    assert len({d for s in a for d in a[s]}) == 2 * STEPS  # the digests do tell batches apart

    wa, wb = _weights(straight, STEPS), _weights(stopped, STEPS)
    assert wa.keys() == wb.keys() and len(wa) > 10
    worst = max(float(np.max(np.abs(wa[k] - wb[k]))) for k in wa)
    print("MEASURED exact resume (%s masking, dropout %.1f): stop at %d, max |weight diff| at step %d = %g"
          % (masking, dropout, stop_step, STEPS, worst))
    assert worst == 0.0


@pytest.mark.timeout(300)
def test_weighted_mixture_trains_and_reports_each_corpus(tmp_path, tiny_data, tiny_flags, corpus_file):
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    books = str(tmp_path / "books")
    create_pretraining_data([corpus_file], tiny_data["vocab_dir"], books,
                            DataConfig(max_seq_length=tiny_data["seq"], max_predictions_per_seq=tiny_data["preds"],
                                       dupe_factor=1, num_shards=2, seed=9), num_workers=1)
    run_dir = str(tmp_path / "run")
    mix = "%s:0.75,%s:0.25" % (tiny_data["data_dir"], books)
    out = run([HVD_PRETRAIN] + tiny_flags(run_dir, steps=8, log_every=4, data_dir=mix), timeout=240).stdout
    windows = [r for r in _jsonl(os.path.join(run_dir, "metrics.jsonl")) if "corpus_examples" in r]
    assert [w["step"] for w in windows] == [4, 8], out[-2000:]
    seen = windows[-1]["corpus_examples"]
    assert seen == {tiny_data["data_dir"]: 24, books: 8}  # 8 steps x 4 examples, 3:1
    with open(os.path.join(run_dir, "plan.json")) as f:
        plan = json.load(f)
    assert [(p["data_dir"], p["weight"]) for p in plan["data"]["mixture"]] == [(tiny_data["data_dir"], 0.75),
                                                                              (books, 0.25)]

    bad = run([HVD_PRETRAIN] + tiny_flags(str(tmp_path / "bad"), data_dir="%s:1,%s" % (books, books)),
              timeout=120, check=False)
    assert bad.returncode == 2 and "give every data dir a weight" in bad.stdout + (bad.stderr or "")


@pytest.mark.horovod
@pytest.mark.timeout(600)
def test_a_restart_on_fewer_ranks_reads_every_example_of_the_epoch_once(tmp_path, small_data, tiny_flags):
    """2 ranks train part of epoch 0; the run goes on as 1 rank past the epoch's end (example ids counted)."""
    with open(os.path.join(small_data, "manifest.json")) as f:
        total = json.load(f)["num_instances"]
    run_dir, first = str(tmp_path / "run"), 25
    flags = dict(log_every=5, save_checkpoints_steps=1000, record_batch_digests=True, data_dir=small_data)
    run([os.path.join(BIN, "horovodrun"), "-np", "2", "--gloo", HVD_PRETRAIN]
        + tiny_flags(run_dir, steps=first, **flags), timeout=300)
    rest = total - 2 * 4 * first  # examples of epoch 0 no rank has read
    # The single rank takes micro-batches of 32: fewer steps to the epoch's end; the cursor counts examples.
    out = run([HVD_PRETRAIN] + tiny_flags(run_dir, steps=first + rest // 32 + 2, micro_batch_size=32, **flags),
              timeout=300).stdout
    assert "continues on 1 ranks instead of 2" in out

    seen = {0: [], 1: []}
    for rank in (0, 1):
        for record in _jsonl(os.path.join(run_dir, "ranks", "%d.batches.jsonl" % rank)):
            for epoch, shard, index in record["examples"]:
                seen.setdefault(epoch, []).append((shard, index))
    epoch0 = seen[0]
    assert len(epoch0) == len(set(epoch0)), "an example was read twice in epoch 0"
    print("MEASURED world 2 -> 1: %d of %d examples of epoch 0 read once, none twice; %d of epoch 1"
          % (len(epoch0), total, len(seen[1])))
    assert total - len(epoch0) <= 1  # at most world - 1 left over by the first deal (total % 2)
    assert seen[1]  # the single rank went on into epoch 1
