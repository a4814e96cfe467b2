"""The pre-training loop under Horovod.

    init -> (rank 0) prepare data, read checkpoint state -> broadcast decision
    -> plan (steps from a budget when given) -> build model + optimizer slots
    -> (rank 0) restore -> broadcast state
    -> loop: N micro-batches -> accumulate + allreduce -> clip -> apply
             -> log window -> (rank 0) checkpoint -> stop on signal
"""

import os
import sys
import time

from hvd_pretrain.rundir import RunDir, append_jsonl, write_json_atomic
from hvd_pretrain.tfcompat import keras, tf
from hvd_pretrain.train import distributed
from hvd_pretrain.train.accumulate import AccumulatingStep, DynamicLossScale, HorovodCommunicator
from hvd_pretrain.train.checkpoint import CheckpointWriter, latest_checkpoint
from hvd_pretrain.train.metrics import MetricsLogger
from hvd_pretrain.train.optimization import current_lr, make_optimizer, make_schedule
from hvd_pretrain.train.plan import BatchPlan, budget_steps
from hvd_pretrain.train.resolve import EXIT_CONFIG, ResolveError, resolve
from hvd_pretrain.train.signals import StopRequest

POLICIES = {"fp16": "mixed_float16", "bf16": "mixed_bfloat16"}


def _error(msg):
    print("error: " + msg, file=sys.stderr, flush=True)


def _horovod_env(cfg):
    """Horovod reads these at init: stall check, tensor fusion, cycle time."""
    os.environ.setdefault("HOROVOD_STALL_CHECK_TIME_SECONDS", str(cfg.stall_check_seconds))
    if cfg.stall_shutdown_seconds:
        os.environ.setdefault("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", str(cfg.stall_shutdown_seconds))
    if cfg.fusion_threshold_mb:
        os.environ.setdefault("HOROVOD_FUSION_THRESHOLD", str(cfg.fusion_threshold_mb * 1024 * 1024))
    if cfg.cycle_time_ms:
        os.environ.setdefault("HOROVOD_CYCLE_TIME", str(cfg.cycle_time_ms))


def _dummy_features(cfg):
    """Zero features of the training shapes: enough to create the model's variables."""
    b, seq, preds = 1, cfg.max_seq_length, cfg.max_predictions_per_seq
    ints = lambda *shape: tf.zeros(shape, tf.int32)  # noqa: E731
    return dict(input_ids=ints(b, seq), input_mask=tf.ones((b, seq), tf.int32), segment_ids=ints(b, seq),
                masked_lm_positions=ints(b, preds), masked_lm_ids=ints(b, preds),
                masked_lm_weights=tf.ones((b, preds), tf.float32), next_sentence_labels=ints(b))


def _peak_flops(cfg, is_root):
    """Per-rank peak FLOP/s for MFU: --peak_tflops, a --gpu_type preset, or a measured CPU matmul peak."""
    if cfg.peak_tflops:
        return cfg.peak_tflops * 1e12, "--peak_tflops"
    if cfg.gpu_type:
        from hvd_pretrain.plan.hardware import get_gpu, peak_flops
        return peak_flops(get_gpu(cfg.gpu_type), cfg.precision), "%s %s datasheet" % (cfg.gpu_type, cfg.precision)
    if tf.config.list_physical_devices("GPU") or not is_root:
        return None, None
    from hvd_pretrain.train.peak import measure_matmul_peak
    return measure_matmul_peak(tf, n=512, repeats=3, min_seconds=0.2), "measured fp32 matmul peak of this rank"


def _start_step(resolved, cfg, plan, optimizer, say):
    """The phase's first optimizer step, adjusting the counter when the global batch changed."""
    state = resolved.get("resume_state") or {}
    step = int(optimizer.iterations.numpy())
    old_gb = (state.get("plan") or {}).get("global_batch")
    if not state or old_gb in (None, plan.global_batch):
        return step
    offset = resolved["step_offset"]
    if cfg.budgeted:
        phase_step = int(round(state.get("phase_examples", (step - offset) * old_gb) / plan.global_batch))
        optimizer.iterations.assign(offset + phase_step)
        say("global batch changed from %d to %d: examples seen are kept, resuming at phase step %d of %d"
            % (old_gb, plan.global_batch, phase_step, plan.num_train_steps))
        return offset + phase_step
    say("warning: global batch changed from %d to %d; --num_train_steps is taken as is, so this run sees a"
        " different number of examples (give --train_examples or --train_epochs to keep it)"
        % (old_gb, plan.global_batch))
    return step


def train(model_config, cfg, data_config, source, printer=print):
    """Run (or resume) pre-training. Returns the process exit code."""
    _horovod_env(cfg)
    hvd = distributed.init_horovod(cfg.threads)
    rank, size = hvd.rank(), hvd.size()
    is_root = rank == 0
    say = printer if is_root else (lambda *a, **k: None)

    status, resolved = None, None
    if is_root:
        try:
            resolved = resolve(model_config, cfg, data_config, source, size, say)
        except ResolveError as e:
            status = str(e).splitlines()[0]
    status, resolved = hvd.broadcast_object((status, resolved), root_rank=0, name="resolve")
    if status:
        if is_root:
            _error(status)
        return EXIT_CONFIG
    model_config.vocab_size = resolved["vocab_size"]
    cfg.max_seq_length = resolved["max_seq_length"]
    cfg.max_predictions_per_seq = resolved["max_predictions"]
    cfg.num_train_steps, cfg.warmup_steps, note = budget_steps(cfg, size, resolved.get("num_instances"))
    if note:
        say(note)

    rundir = RunDir(cfg.run_dir)
    plan = BatchPlan(cfg.per_rank_batch, cfg.accum_steps, size, cfg.num_train_steps, cfg.resolved_warmup_steps(),
                     cfg.max_seq_length)
    offset = resolved["step_offset"]
    end_step = offset + plan.num_train_steps
    say(plan.describe(resolved.get("num_instances")))
    if offset:
        say("            global step continues from %d; this phase ends at step %d" % (offset, end_step))
    if is_root:
        write_json_atomic(rundir.plan, dict(plan.to_dict(), model=model_config.to_dict(), train=cfg.to_dict(),
                                            data={k: v for k, v in resolved.items() if k != "resume_state"},
                                            max_predictions=cfg.max_predictions_per_seq, step_offset=offset))

    from hvd_pretrain.models import build_pretrainer
    if cfg.precision in POLICIES:
        keras.mixed_precision.set_global_policy(POLICIES[cfg.precision])
    keras.utils.set_random_seed(cfg.seed)
    model = build_pretrainer(model_config)
    optimizer = make_optimizer(cfg, make_schedule(cfg, offset=offset))
    compression = hvd.Compression.fp16 if cfg.fp16_allreduce else hvd.Compression.none
    loss_scale = DynamicLossScale() if cfg.precision == "fp16" else None
    stepper = AccumulatingStep(model, optimizer, HorovodCommunicator(hvd, compression), cfg.accum_steps,
                               cfg.clip_norm, loss_scale=loss_scale, jit_compile=cfg.xla)
    model.loss_sums(_dummy_features(cfg), training=False)  # creates the model's variables
    optimizer.build(model.trainable_variables)
    stepper.build(_dummy_features(cfg))
    writer = CheckpointWriter(rundir.checkpoints, model, optimizer, model_config, keep=cfg.keep_checkpoints)
    if is_root and resolved.get("checkpoint"):
        writer.restore(resolved["checkpoint"])
    elif is_root and resolved.get("init_from"):
        from hvd_pretrain.export.importers import load_pretrained
        loaded = load_pretrained(model, resolved["init_from"], source.get("init_from_generator") or None)
        say("initialised from %s: %d tensors loaded%s" % (resolved["init_from"], loaded["loaded"],
                                                          ", heads not in the checkpoint start fresh: %s"
                                                          % ", ".join(loaded["missing"]) if loaded["missing"] else ""))
    elif is_root and resolved.get("init_checkpoint"):
        writer.restore_weights(resolved["init_checkpoint"])
        if offset:
            optimizer.iterations.assign(offset)
    distributed.broadcast_state(hvd, model, optimizer)
    start_step = _start_step(resolved, cfg, plan, optimizer, say)
    if start_step >= end_step:
        say("training already complete at step %d (%s); nothing to do" % (start_step, rundir.checkpoints))
        return 0
    if resolved.get("checkpoint"):
        say("resumed from %s at step %d" % (resolved["checkpoint"], start_step))
    elif resolved.get("init_checkpoint"):
        say("initialised from %s (weights only); starting at step %d" % (resolved["init_checkpoint"], start_step))

    from hvd_pretrain.data import DataError, make_dataset, shards_for_rank
    from hvd_pretrain.data.pipeline import checked_iterator
    files = shards_for_rank(resolved["files"], rank, size)  # what make_dataset reads on this rank
    try:
        # A resumed run reads its shards in a new order, fixed by the seed and the resume step.
        dataset = make_dataset(resolved["files"], cfg.per_rank_batch, cfg.max_seq_length,
                               cfg.max_predictions_per_seq, rank=rank, world=size, seed=cfg.seed + start_step)
    except DataError as e:
        _error(str(e).splitlines()[0])
        return EXIT_CONFIG
    iterator = checked_iterator(dataset, files)  # a damaged shard stops with a DataError naming it

    from hvd_pretrain.models.flops import training_flops_per_sequence
    peak, peak_source = _peak_flops(cfg, is_root)
    if peak:
        say("MFU against %.2f TFLOP/s per rank (%s)" % (peak / 1e12, peak_source))
    logger = MetricsLogger(rundir, rank, plan, is_root, gather=distributed.gather_rows(hvd),
                           tb_writer=tf.summary.create_file_writer(rundir.tensorboard) if is_root else None,
                           printer=say, end_step=end_step,
                           flops_per_example=training_flops_per_sequence(model_config, cfg.max_seq_length,
                                                                         cfg.max_predictions_per_seq),
                           peak_flops=peak * size if peak else None)
    logger.event("resume" if start_step > offset else "start", start_step, world_size=size, pid=os.getpid(),
                 global_batch=plan.global_batch)
    append_jsonl(rundir.rank_log(rank), {"time": time.time(), "rank": rank, "step": start_step, "event": "start",
                                         "weights_sha256": distributed.weights_digest(model)})
    stop = StopRequest().install()
    step, phase_examples = start_step, (start_step - offset) * plan.global_batch
    try:
        while step < end_step:
            t0 = time.time()
            micro = [next(iterator) for _ in range(cfg.accum_steps)]
            t1 = time.time()
            info = stepper.step(micro, stop=stop.requested)
            step = int(optimizer.iterations.numpy())
            phase_examples += 0 if info["skipped"] else plan.global_batch
            logger.window.add(time.time() - t0, t1 - t0, info)
            last = step >= end_step or info["stop"]
            if (step % cfg.log_every == 0 and not info["skipped"]) or last:
                logger.log_window(step, current_lr(optimizer), {k: info[k] for k in ("grad_norm", "loss_scale")
                                                                if k in info})
            if is_root and ((step % cfg.save_checkpoints_steps == 0 and not info["skipped"]) or last):
                path = writer.save(step, {"examples_seen": step * plan.global_batch, "phase_examples": phase_examples,
                                          "step_offset": offset, "plan": plan.to_dict()})
                logger.event("checkpoint", step, path=path)
            if info["stop"]:
                signum = stop.signum or 15
                # Every rank waits here until rank 0's checkpoint is on disk: a launcher that sees the
                # first rank exit may kill the others.
                hvd.broadcast_object(step, root_rank=0, name="stop_barrier")
                say("stopping at step %d on signal %d; checkpoint written" % (step, signum))
                logger.event("stopped", step, signal=signum)
                return 128 + signum
    except DataError as e:
        _error(str(e).splitlines()[0])
        return EXIT_CONFIG
    finally:
        stop.uninstall()
    hvd.broadcast_object(step, root_rank=0, name="end_barrier")  # rank 0's final checkpoint is written
    logger.event("end", step)
    # Every rank records a digest of its final weights: ranks that diverged show up as different digests.
    append_jsonl(rundir.rank_log(rank), {"time": time.time(), "rank": rank, "step": step, "event": "end",
                                         "weights_sha256": distributed.weights_digest(model)})
    if is_root:
        ckpt = latest_checkpoint(rundir.checkpoints)[1]
        print("done: step %d. checkpoint: %s | metrics: %s | tensorboard: %s"
              % (step, ckpt, rundir.metrics, rundir.tensorboard), flush=True)
    return 0
