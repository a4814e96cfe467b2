"""Trainer pieces in one process: schedule, accumulation bookkeeping, checkpoints, plan, metrics."""

import json
import os

import numpy as np
import pytest

from batches import synthetic_batch as _micro
from hvd_pretrain.models.config import preset
from hvd_pretrain.rundir import RunDir
from hvd_pretrain.errors import ConfigError
from hvd_pretrain.train.config import TrainConfig
from hvd_pretrain.train.metrics import MetricsLogger, straggler_summary
from hvd_pretrain.train.plan import BatchPlan


def test_plan_arithmetic():
    plan = BatchPlan(per_rank_batch=32, accum_steps=4, world_size=32, num_train_steps=7038, warmup_steps=2000,
                     max_seq_length=128)
    assert plan.global_batch == 32 * 4 * 32 == 4096
    assert plan.micro_steps == 7038 * 4
    assert plan.examples == 7038 * 4096
    assert plan.tokens == 7038 * 4096 * 128
    assert "global batch 4096" in plan.describe(num_instances=1000)


@pytest.mark.parametrize("flag,value", [("accum_steps", 0), ("per_rank_batch", 0), ("num_train_steps", -1),
                                        ("log_every", 0)])
def test_train_config_refuses_non_positive(flag, value):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{flag: value}).validate()
    assert "=%r" % value in str(e.value)


def test_warmup_then_linear_decay():
    from hvd_pretrain.train.optimization import make_schedule
    s = make_schedule(TrainConfig(num_train_steps=110, warmup_steps=10, learning_rate=1e-3))
    lrs = [float(s(i)) for i in range(111)]
    assert lrs[0] == pytest.approx(1e-4)          # update 0 uses 1/10 of the peak
    assert lrs[9] == pytest.approx(1e-3)          # the last warmup update reaches the peak
    assert lrs[10] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(5e-4)         # halfway through the decay
    assert lrs[110] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def _tiny_model(vocab=100, seq=16):
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.tfcompat import keras
    keras.utils.set_random_seed(3)
    config = preset("tiny", vocab_size=vocab, max_position_embeddings=seq, hidden_dropout=0.0,
                    attention_dropout=0.0)
    return config, build_pretrainer(config)


def test_schedule_advances_once_per_optimizer_step_not_per_micro_batch():
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator
    from hvd_pretrain.train.optimization import current_lr, make_optimizer
    cfg = TrainConfig(num_train_steps=10, warmup_steps=5, learning_rate=1e-3, accum_steps=3)
    _, model = _tiny_model()
    micro = [_micro(2, seed=i) for i in range(3)]
    model.loss_sums(micro[0], training=False)
    opt = make_optimizer(cfg)
    step = AccumulatingStep(model, opt, LocalCommunicator(), accum_steps=3, clip_norm=1.0)
    info = step.step(micro)
    assert int(opt.iterations.numpy()) == 1
    # Next update is number 1: 2/5 of the peak. Counting micro-batches would give 4/5.
    assert current_lr(opt) == pytest.approx(4e-4)
    assert info["counts"]["mlm"] == 3 * 2 * 3 and info["counts"]["nsp"] == 6
    assert info["nonpad_tokens"] == 3 * 2 * 16
    step.step([_micro(2, seed=10 + i) for i in range(3)])
    assert int(opt.iterations.numpy()) == 2
    with pytest.raises(ValueError):
        step.step(micro[:2])


def test_clipping_happens_after_reduction_and_reports_the_raw_norm():
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator
    _, model = _tiny_model()
    micro = [_micro(4)]
    model.loss_sums(micro[0], training=False)
    before = [v.numpy().copy() for v in model.trainable_variables]
    opt = keras.optimizers.SGD(learning_rate=1.0)
    step = AccumulatingStep(model, opt, LocalCommunicator(), accum_steps=1, clip_norm=1e-3)
    grads, info = step.compute_gradients(micro)
    raw = float(np.sqrt(sum(float(np.sum(g.numpy() ** 2)) for g in grads)))
    norm = step.apply(grads)
    assert norm == pytest.approx(raw, rel=1e-5) and raw > 1e-3
    moved = np.sqrt(sum(np.sum((v.numpy() - b) ** 2) for v, b in zip(model.trainable_variables, before)))
    assert moved == pytest.approx(1e-3, rel=1e-3)  # SGD lr 1 moves by exactly the clipped norm


def test_checkpoints_are_atomic_keep_n_and_refuse_other_models(tmp_path):
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.checkpoint_files import CheckpointMismatch, check_compatible, latest_checkpoint, list_checkpoints
    from hvd_pretrain.train.checkpoint import CheckpointWriter
    config, model = _tiny_model()
    model.loss_sums(_micro(2), training=False)
    opt = keras.optimizers.AdamW(learning_rate=1e-3)
    opt.build(model.trainable_variables)
    writer = CheckpointWriter(str(tmp_path), model, opt, config, keep=2)
    for step in (1, 2, 3):
        writer.save(step, {"examples_seen": step * 8})
    # A crashed write leaves a temporary directory that is never taken for a checkpoint.
    os.makedirs(tmp_path / ".tmp-ckpt-000000009-1")
    os.makedirs(tmp_path / "ckpt-000000010")  # no state.json: incomplete
    assert [s for s, _ in list_checkpoints(str(tmp_path))] == [2, 3]
    step, path = latest_checkpoint(str(tmp_path))
    assert step == 3
    with open(os.path.join(path, "state.json")) as f:
        assert json.load(f)["examples_seen"] == 24
    saved = model.trainable_variables[0].numpy().copy()
    model.trainable_variables[0].assign(saved * 0)
    writer.restore(path)
    np.testing.assert_array_equal(model.trainable_variables[0].numpy(), saved)
    check_compatible(path, config)
    other = preset("mini", vocab_size=config.vocab_size, max_position_embeddings=16)
    with pytest.raises(CheckpointMismatch, match="hidden_size"):
        check_compatible(path, other)


def test_straggler_summary_names_the_slowest_rank():
    s = straggler_summary([(0.10, 0.01), (0.30, 0.20), (0.12, 0.02)])
    assert s["slowest_rank"] == 1
    assert s["step_time"] == {"min": 0.10, "median": 0.12, "max": 0.30}
    assert s["data_wait"]["max"] == 0.20


def test_throughput_is_total_over_wall_time_not_mean_of_rates(tmp_path, monkeypatch):
    import hvd_pretrain.train.metrics as m
    clock = [1000.0]
    monkeypatch.setattr(m.time, "time", lambda: clock[0])
    rundir = RunDir(str(tmp_path)).ensure()
    plan = BatchPlan(8, 2, 4, 100, 10, 128)  # global batch 64
    logger = MetricsLogger(rundir, 0, plan, True, printer=lambda *a: None)
    # One fast step (0.1 s) and one slow step (1.9 s): 2 steps in 2 s = 1 step/s.
    # (The mean of per-step rates would claim 5.26 step/s.)
    for dt in (0.1, 1.9):
        clock[0] += dt
        logger.window.add(dt, 0.0, {"loss": 2.0, "losses": {"mlm": 1.5, "nsp": 0.5}, "nonpad_tokens": 1000.0})
    record = logger.log_window(step=2, lr=1e-4)
    assert record["global_step_per_sec"] == pytest.approx(1.0)
    assert record["examples_per_sec"] == pytest.approx(64.0)
    assert record["tokens_per_sec"] == pytest.approx(64 * 128.0)
    assert record["tokens_per_sec_nonpad"] == pytest.approx(1000.0)
    assert record["eta_sec"] == pytest.approx(98.0)
    with open(rundir.metrics) as f:
        assert json.loads(f.readline())["step"] == 2
    with open(rundir.rank_log(0)) as f:
        assert json.loads(f.readline())["step_time"] == pytest.approx(1.0)


def test_gradient_groups_follow_backward_and_cover_every_variable_once():
    from hvd_pretrain.train.accumulate import gradient_buckets
    mb = 2 ** 20
    # Forward uses 0 (embeddings), 1, 2, 3 (head): backward produces 3 first, 0 last.
    groups = gradient_buckets([10 * mb, 3 * mb, 3 * mb, 1 * mb], 4)
    assert groups == [[3, 2], [1, 0]]
    assert gradient_buckets([10 * mb, 3 * mb, 3 * mb, 1 * mb], 0) == [[3, 2, 1, 0]]
    # A forward order that differs from the variable order decides the grouping.
    assert gradient_buckets([1 * mb] * 4, 2, forward_order=[0, 2, 1, 3]) == [[3, 1], [2, 0]]


def test_the_bert_model_reduces_its_heads_first_and_its_embeddings_last():
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.models.features import dummy_features
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator
    model = build_pretrainer(preset("tiny", vocab_size=300, num_layers=4))
    features = dummy_features(1, 32, 5, masked_weight=1.0)
    model.loss_sums(features, training=False)
    step = AccumulatingStep(model, keras.optimizers.SGD(0.1), LocalCommunicator(), 1, bucket_mb=0.05).build(features)
    names = [[model.trainable_variables[i].name for i in group] for group in step._buckets]
    assert len(names) > 3
    assert sorted(i for group in step._buckets for i in group) == list(range(len(model.trainable_variables)))
    assert "nsp_head" in names[0][0] and any("word_embeddings" in n for n in names[-1])
    # Blocks come last to first: the first group holding a block holds the last one.
    blocks = [int(n.split("block_")[1].split("/")[0]) for group in names for n in group if "block_" in n]
    assert blocks == sorted(blocks, reverse=True) and blocks[0] == 3
