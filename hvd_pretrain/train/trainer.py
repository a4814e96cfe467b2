"""The pre-training loop under Horovod.

    init -> (rank 0) prepare data, check checkpoint -> broadcast decision
    -> build model + optimizer slots -> (rank 0) restore -> broadcast state
    -> loop: N micro-batches -> accumulate + allreduce -> clip -> apply
             -> log window -> (rank 0) checkpoint -> stop on signal
"""

import os
import sys
import time

from hvd_pretrain.rundir import RunDir, append_jsonl, write_json_atomic
from hvd_pretrain.tfcompat import keras, tf
from hvd_pretrain.train import distributed
from hvd_pretrain.train.accumulate import AccumulatingStep, HorovodCommunicator
from hvd_pretrain.train.checkpoint import CheckpointMismatch, CheckpointWriter, check_compatible, latest_checkpoint
from hvd_pretrain.train.metrics import MetricsLogger
from hvd_pretrain.train.optimization import current_lr, make_optimizer
from hvd_pretrain.train.plan import BatchPlan
from hvd_pretrain.train.prepare import PrepareError, prepare
from hvd_pretrain.train.signals import StopRequest

EXIT_CONFIG = 2


class TrainingError(Exception):
    """A problem found while training (one-line message)."""


def _error(msg):
    print("error: " + msg, file=sys.stderr, flush=True)


def _resolve(model_config, train_config, data_config, source, world_size, printer):
    """Rank 0: prepare data, settle the vocab and sequence length, check the checkpoint. Returns a dict."""
    rundir = RunDir(train_config.run_dir).ensure()
    prepared = prepare(rundir, data_config, source["vocab_size"], source["input_files"], source["data_dir"],
                       source["vocab_dir"], printer=printer)
    data_vocab = prepared["vocab_size"]
    if data_vocab and source["vocab_size_set"] and data_vocab != source["vocab_size"]:
        raise TrainingError("--vocab_size=%d does not match the vocab of the data (%d pieces in %s); drop the flag"
                            " or rebuild the data" % (source["vocab_size"], data_vocab,
                                                      prepared["vocab_dir"] or prepared["data_dir"]))
    if not data_vocab:
        data_vocab = source["vocab_size"]
    seq = prepared["max_seq_length"] or train_config.max_seq_length
    if prepared["max_seq_length"] and source["max_seq_length_set"] and seq != train_config.max_seq_length:
        raise TrainingError("--max_seq_length=%d differs from the data's %d (%s); rebuild the data or drop the flag"
                            % (train_config.max_seq_length, seq, prepared["data_dir"]))
    if seq > model_config.max_position_embeddings:
        raise TrainingError("--max_seq_length=%d exceeds the model's max_position_embeddings=%d; lower it or raise"
                            " --max_position_embeddings" % (seq, model_config.max_position_embeddings))
    preds = prepared["max_predictions"] or train_config.max_predictions_per_seq
    if len(prepared["files"]) < world_size:
        raise TrainingError("%s has %d shard(s) for %d ranks; every rank needs its own shards: recreate the data"
                            " with --num_shards >= %d" % (prepared["data_dir"], len(prepared["files"]),
                                                           world_size, world_size))
    resolved = dict(prepared, vocab_size=data_vocab, max_seq_length=seq, max_predictions=preds)
    model_config.vocab_size = data_vocab
    model_config.validate()
    step, path = latest_checkpoint(rundir.checkpoints)
    if path:
        check_compatible(path, model_config)
    resolved["checkpoint"] = path
    return resolved


def _dummy_features(cfg):
    """Zero features of the training shapes: enough to create the model's variables."""
    b, seq, preds = 1, cfg.max_seq_length, cfg.max_predictions_per_seq
    ints = lambda *shape: tf.zeros(shape, tf.int32)  # noqa: E731
    return dict(input_ids=ints(b, seq), input_mask=tf.ones((b, seq), tf.int32), segment_ids=ints(b, seq),
                masked_lm_positions=ints(b, preds), masked_lm_ids=ints(b, preds),
                masked_lm_weights=tf.ones((b, preds), tf.float32), next_sentence_labels=ints(b))


def _report_corrupt(files, exc):
    """Name the damaged shard: re-read this rank's shards with CRC checks (only on the error path)."""
    from hvd_pretrain.data import DataError, verify_shards
    try:
        verify_shards(files)
        _error("corrupt TFRecord data in %s: %s; recreate the shards"
               % (", ".join(files), str(exc.message).splitlines()[0]))
    except DataError as e:
        _error(str(e).splitlines()[0])
    return EXIT_CONFIG


def train(model_config, train_config, data_config, source, printer=print):
    """Run (or resume) pre-training. Returns the process exit code."""
    hvd = distributed.init_horovod(train_config.threads)
    rank, size = hvd.rank(), hvd.size()
    is_root = rank == 0
    say = printer if is_root else (lambda *a, **k: None)

    status, resolved = None, None
    if is_root:
        try:
            resolved = _resolve(model_config, train_config, data_config, source, size, say)
        except (PrepareError, TrainingError, CheckpointMismatch, ValueError) as e:
            status = str(e).splitlines()[0]
    status, resolved = hvd.broadcast_object((status, resolved), root_rank=0, name="resolve")
    if status:
        if is_root:
            _error(status)
        return EXIT_CONFIG
    model_config.vocab_size = resolved["vocab_size"]
    train_config.max_seq_length = resolved["max_seq_length"]
    train_config.max_predictions_per_seq = resolved["max_predictions"]

    rundir = RunDir(train_config.run_dir)
    plan = BatchPlan(train_config.per_rank_batch, train_config.accum_steps, size, train_config.num_train_steps,
                     train_config.resolved_warmup_steps(), train_config.max_seq_length)
    say(plan.describe(resolved.get("num_instances")))
    if is_root:
        write_json_atomic(rundir.plan, dict(plan.to_dict(), model=model_config.to_dict(), train=train_config.to_dict(),
                                            data=resolved, max_predictions=train_config.max_predictions_per_seq))

    from hvd_pretrain.models import build_pretrainer
    keras.utils.set_random_seed(train_config.seed)
    model = build_pretrainer(model_config)
    optimizer = make_optimizer(train_config)
    comm = HorovodCommunicator(hvd)
    stepper = AccumulatingStep(model, optimizer, comm, train_config.accum_steps, train_config.clip_norm)

    model.loss_sums(_dummy_features(train_config), training=False)  # creates the model's variables
    optimizer.build(model.trainable_variables)
    stepper.build()
    writer = CheckpointWriter(rundir.checkpoints, model, optimizer, model_config, keep=train_config.keep_checkpoints)
    if is_root and resolved.get("checkpoint"):
        writer.restore(resolved["checkpoint"])
    distributed.broadcast_state(hvd, model, optimizer)
    start_step = int(optimizer.iterations.numpy())
    if start_step >= plan.num_train_steps:
        say("training already complete at step %d (%s); nothing to do" % (start_step, rundir.checkpoints))
        return 0
    if start_step:
        say("resumed from %s at step %d" % (resolved["checkpoint"], start_step))

    from hvd_pretrain.data import DataError, make_dataset, shards_for_rank
    files = shards_for_rank(resolved["files"], rank, size)  # what make_dataset reads on this rank
    try:
        # A resumed run reads its shards in a new order, fixed by the seed and the resume step.
        dataset = make_dataset(resolved["files"], train_config.per_rank_batch, train_config.max_seq_length,
                               train_config.max_predictions_per_seq, rank=rank, world=size,
                               seed=train_config.seed + start_step)
    except DataError as e:
        _error(str(e).splitlines()[0])
        return EXIT_CONFIG
    iterator = iter(dataset)

    tb = tf.summary.create_file_writer(rundir.tensorboard) if is_root else None
    logger = MetricsLogger(rundir, rank, plan, is_root, gather=distributed.gather_rows(hvd), tb_writer=tb,
                           printer=say)
    logger.event("resume" if start_step else "start", start_step, world_size=size, pid=os.getpid())
    stop = StopRequest().install()
    step, info = start_step, None
    try:
        while step < plan.num_train_steps:
            t0 = time.time()
            micro = [next(iterator) for _ in range(train_config.accum_steps)]
            t1 = time.time()
            info = stepper.step(micro, stop=stop.requested)
            step = int(optimizer.iterations.numpy())
            logger.window.add(time.time() - t0, t1 - t0, info)
            last = step >= plan.num_train_steps or info["stop"]
            if step % train_config.log_every == 0 or last:
                logger.log_window(step, current_lr(optimizer), {"grad_norm": info["grad_norm"]})
            if is_root and (step % train_config.save_checkpoints_steps == 0 or last):
                path = writer.save(step, {"examples_seen": step * plan.global_batch, "plan": plan.to_dict()})
                logger.event("checkpoint", step, path=path)
            if info["stop"]:
                signum = stop.signum or 15
                say("stopping at step %d on signal %d; checkpoint written" % (step, signum))
                logger.event("stopped", step, signal=signum)
                return 128 + signum
    except tf.errors.DataLossError as e:
        return _report_corrupt(files, e)
    finally:
        stop.uninstall()
    logger.event("end", step)
    # Every rank records a digest of its final weights: ranks that diverged show up as different digests.
    append_jsonl(rundir.rank_log(rank), {"time": time.time(), "rank": rank, "step": step, "event": "end",
                                         "weights_sha256": distributed.weights_digest(model)})
    if is_root:
        ckpt = latest_checkpoint(rundir.checkpoints)[1]
        print("done: %d steps. checkpoint: %s | metrics: %s | tensorboard: %s"
              % (step, ckpt, rundir.metrics, rundir.tensorboard), flush=True)
    return 0
