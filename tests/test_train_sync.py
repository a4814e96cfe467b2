"""The trainer's loop waits for the device once per read point, and its windows, checkpoints,
skip counts and stops stay what a per-step read would give.

Session.run_steps runs in this process on a tiny BERT with a one-rank stand-in for Horovod. Every
device-to-host read is counted twice: by the trainer's own helper (train/window.py `to_host`) and by
TensorFlow's eager tensor read itself, so a read that bypasses the helper is counted too.
"""

import json
import math
import types

import numpy as np
import pytest

from hvd_pretrain.models.config import preset
from hvd_pretrain.train.config import TrainConfig

SEQ, PREDS, VOCAB, BATCH = 16, 3, 100, 2


class OneRank:
    """Horovod for a world of one: collectives are identities."""

    Sum = "sum"
    Compression = types.SimpleNamespace(none=None, fp16=None)

    def size(self):
        return 1

    def rank(self):
        return 0

    def allreduce(self, tensor, op=None, name=None):
        return tensor

    def grouped_allreduce(self, tensors, op=None, compression=None):
        return list(tensors)

    def broadcast_object(self, obj, root_rank=0, name=None):
        return obj


class Cursor:
    def advanced(self, examples):
        return self

    def to_dict(self):
        return {}


class Exhausted(Exception):
    pass


class Stop:
    def __init__(self, at=None):
        self.at, self.calls = at, 0

    @property
    def requested(self):
        self.calls += 1
        return self.at is not None and self.calls >= self.at

    def exit_code(self):
        return 143


def micro_batch(seed, bad=False):
    import tensorflow as tf
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, VOCAB, size=(BATCH, SEQ)).astype(np.int32)
    weights = np.ones((BATCH, PREDS), np.float32)
    if bad:
        weights[0, 0] = np.inf  # an infinite loss: its gradient is not finite
    return dict(input_ids=tf.constant(ids), input_mask=tf.ones((BATCH, SEQ), tf.int32),
                segment_ids=tf.zeros((BATCH, SEQ), tf.int32),
                masked_lm_positions=tf.constant(np.tile(np.arange(1, PREDS + 1), (BATCH, 1)).astype(np.int32)),
                masked_lm_ids=tf.constant(ids[:, 1:PREDS + 1]), masked_lm_weights=tf.constant(weights),
                next_sentence_labels=tf.constant((np.arange(BATCH) % 2).astype(np.int32)))


def batches(steps, accum, bad=(), first=0):
    """accum micro-batches per step for `steps` steps, then Exhausted; steps in `bad` (0-based) are non-finite."""
    for s in range(first, first + steps):
        for m in range(accum):
            yield micro_batch(1000 * s + m, bad=s in bad)
    raise Exhausted()


def make_session(tmp_path, **train):
    from hvd_pretrain.train.session import Session
    cfg = TrainConfig(run_dir=str(tmp_path), max_seq_length=SEQ, max_predictions_per_seq=PREDS, per_rank_batch=BATCH,
                      warmup_steps=0, **dict(dict(num_train_steps=100, log_every=4, save_checkpoints_steps=1000),
                                             **train))
    model = preset("tiny", vocab_size=VOCAB, max_position_embeddings=SEQ, hidden_dropout=0.0, attention_dropout=0.0)
    spec = types.SimpleNamespace(model=model, train=cfg)
    session = Session(OneRank(), spec, {"step_offset": 0}, printer=lambda *a, **k: None).build()
    session.rundir.ensure()
    session.cursor = Cursor()
    return session


def logger_for(session):
    from hvd_pretrain.train.metrics import MetricsLogger
    cfg = session.cfg
    plan = session.plan(1, cfg.accum_steps)
    return plan, MetricsLogger(session.rundir, 0, plan, True, printer=lambda *a: None, end_step=session.end_step)


def run(session, iterator, step, stop=None):
    """run_steps until the iterator is exhausted: its result, or None."""
    plan, logger = logger_for(session)
    try:
        return session.run_steps(plan, iterator, logger, step, 0, stop or Stop())
    except Exhausted:
        return None


def optimizer_step(session):
    return int(session.optimizer.iterations.numpy())


def windows(session):
    with open(session.rundir.metrics) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if "loss" in r], [r for r in records if "event" in r]


class CountReads:
    """Counts every read of an eager tensor's value (numpy(), float(), bool(), np.asarray) in a block."""

    def __init__(self, monkeypatch):
        from tensorflow.python.framework import ops
        from hvd_pretrain.train import window
        self.helper = window.HOST_READS
        self.all, self.active = 0, False
        original = ops._EagerTensorBase._numpy

        def counted(tensor):
            self.all += self.active
            return original(tensor)
        monkeypatch.setattr(ops._EagerTensorBase, "_numpy", counted)

    def __enter__(self):
        self.all, self.start, self.active = 0, self.helper.count, True
        return self

    def __exit__(self, *exc):
        self.active = False
        self.by_helper = self.helper.count - self.start


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_one_read_per_window_skips_on_the_grid_guard_and_stop(tmp_path, monkeypatch):
    session = make_session(tmp_path, accum_steps=2, max_consecutive_skipped_steps=3)
    run(session, batches(4, 2), 0)  # the first window traces every function
    counter = CountReads(monkeypatch)
    with counter:
        run(session, batches(12, 2, first=4), 4)
    assert optimizer_step(session) == 16
    logged, _ = windows(session)
    assert [w["step"] for w in logged] == [4, 8, 12, 16]
    print("MEASURED host reads for 3 logging windows of 4 steps: helper %d, all eager reads %d"
          % (counter.by_helper, counter.all))
    assert counter.by_helper == 3 and counter.all == 3

    # Attempts 16..29 with 20 and 25 skipped: the counter reaches 28 after 14 attempts.
    with counter:
        run(session, batches(14, 2, bad=(20, 25), first=16), 16)
    assert optimizer_step(session) == 28
    logged, _ = windows(session)
    assert [w["step"] for w in logged][4:] == [20, 24, 28]
    assert [w["skipped_steps"] for w in logged][4:] == [0, 1, 1]
    assert all(math.isfinite(w["loss"]) for w in logged)
    # One read per window, plus one per read that found the counter short of the grid.
    assert counter.by_helper == counter.all == 3 + 2

    # A stop asked during a step is taken at the next read point, the same step on every rank.
    code, stopped_at, _ = run(session, batches(40, 2, first=28), 28, stop=Stop(at=3))  # asked in step 31
    assert code == 143 and stopped_at == optimizer_step(session) == 32  # at most --log_every steps later
    _, events = windows(session)
    assert [e["event"] for e in events][-2:] == ["checkpoint", "stopped"] and events[-1]["step"] == 32

    # Three skipped steps in a row, then finite steps again: the guard still stops at the read.
    from hvd_pretrain.train.nonfinite import NonFiniteTraining
    with pytest.raises(NonFiniteTraining, match="3 consecutive"):
        run(session, batches(8, 2, bad=(32, 33, 34), first=32), 32)
    assert optimizer_step(session) == 33
    _, events = windows(session)
    assert events[-1]["event"] == "stopped" and events[-1]["reason"] == "non-finite"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_windows_from_the_device_equal_per_step_reads(tmp_path):
    """Device sums read once per window give the window a per-step read of every step gives."""
    from hvd_pretrain.train.metrics import WindowMeter
    session = make_session(tmp_path / "device", accum_steps=2)
    run(session, batches(8, 2), 0)
    reference = make_session(tmp_path / "host", accum_steps=2)
    it = batches(8, 2)
    meters, meter = [], WindowMeter()
    for step in range(1, 9):
        info = reference.stepper.step([next(it), next(it)])
        meter.add(0.0, 0.0, info)
        if step % 4 == 0:
            meters.append((meter, info["grad_norm"]))
            meter = WindowMeter()
    logged, _ = windows(session)
    assert [w["step"] for w in logged] == [4, 8]
    global_batch = 2 * BATCH
    for record, (m, norm) in zip(logged, meters):
        assert record["loss"] == pytest.approx(m.loss_sum / 4, rel=1e-6)
        for name in ("mlm", "nsp"):
            assert record["losses"][name] == pytest.approx(m.objective_sums[name] / 4, rel=1e-6)
            assert record["accuracy"][name] == pytest.approx(m.accuracy_sums[name] / 4, rel=1e-6)
        nonpad = record["tokens_per_sec_nonpad"] / record["examples_per_sec"] * 4 * global_batch
        assert nonpad == pytest.approx(m.nonpad_tokens) and m.nonpad_tokens == 4 * global_batch * SEQ
        assert record["grad_norm"] == pytest.approx(norm, rel=1e-5)
        assert record["skipped_steps"] == 0
    for a, b in zip(session.model.trainable_variables, reference.model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
