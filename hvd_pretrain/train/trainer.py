"""The pre-training loop under Horovod.

    init -> start-up decisions (rank 0 resolves and broadcasts; with --elastic
            every worker reads them itself)
    -> plan (steps from a budget when given) -> build model + optimizer slots
    -> restore -> broadcast state (with --elastic: the elastic state's sync)
    -> loop: N micro-batches -> accumulate + allreduce -> clip -> apply
             -> log window -> (rank 0) checkpoint -> stop on signal
"""

import os
import time

from hvd_pretrain.rundir import RunDir, append_jsonl, write_json_atomic
from hvd_pretrain.tfcompat import keras, tf
from hvd_pretrain.train import distributed
from hvd_pretrain.train.accumulate import AccumulatingStep, DynamicLossScale, HorovodCommunicator
from hvd_pretrain.train.checkpoint import CheckpointWriter, latest_checkpoint
from hvd_pretrain.train.metrics import MetricsLogger
from hvd_pretrain.train.nonfinite import NonFiniteTraining, SkippedStepGuard
from hvd_pretrain.train.optimization import current_lr, make_optimizer, make_schedule
from hvd_pretrain.train.plan import BatchPlan, budget_steps
from hvd_pretrain.train.resolve import EXIT_CONFIG, ResolveError, print_error, resolve
from hvd_pretrain.train.signals import StopRequest

POLICIES = {"fp16": "mixed_float16", "bf16": "mixed_bfloat16"}


def _quiet(*args, **kwargs):
    pass


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


def _peak_estimate(cfg, is_root):
    """Per-rank peak for MFU: --peak_tflops, a --gpu_type preset, or on CPU the best measured matmul rate."""
    from hvd_pretrain.train.peak import PeakEstimate, measure_matmul_peak, peak_cache_path
    if cfg.peak_tflops:
        return PeakEstimate(fixed=cfg.peak_tflops * 1e12, source="--peak_tflops")
    if cfg.gpu_type:
        from hvd_pretrain.plan.hardware import get_gpu, peak_flops
        return PeakEstimate(fixed=peak_flops(get_gpu(cfg.gpu_type), cfg.precision),
                            source="%s %s datasheet" % (cfg.gpu_type, cfg.precision))
    if tf.config.list_physical_devices("GPU") or not is_root:
        return None
    from hvd_pretrain.corpus import cache_root
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return PeakEstimate(measure=lambda: measure_matmul_peak(tf, n=512, repeats=3, min_seconds=0.2),
                        source="best fp32 matmul rate measured on this host, re-measured as training goes",
                        cache_path=peak_cache_path(cache_root(), threads, tf.__version__))


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


def _startup(hvd, model_config, cfg, data_config, source, say):
    """(error line or None, resolved). Rank 0 decides and broadcasts; elastic workers decide alone."""
    if cfg.elastic:
        # A worker that joins later must not wait in a collective the running workers never enter,
        # so every worker reads the (already prepared) data and checkpoint state itself.
        if not source["data_dir"]:
            return ("--elastic needs --data_dir: workers that join a running job cannot wait for the data to be"
                    " built; create it first with `hvd-data create`"), None
        try:
            return None, resolve(model_config, cfg, data_config, source, hvd.size(), say, rank=hvd.rank())
        except ResolveError as e:
            return str(e).splitlines()[0], None
    status, resolved = None, None
    if hvd.rank() == 0:
        try:
            resolved = resolve(model_config, cfg, data_config, source, hvd.size(), say)
        except ResolveError as e:
            status = str(e).splitlines()[0]
    return hvd.broadcast_object((status, resolved), root_rank=0, name="resolve")


class Session:
    """What one run holds while ranks come and go: configs, model, optimizer, stepper, checkpoints."""

    def __init__(self, hvd, model_config, cfg, resolved, printer):
        self.hvd = hvd
        self.model_config = model_config
        self.cfg = cfg
        self.resolved = resolved
        self.printer = printer
        self.rundir = RunDir(cfg.run_dir)
        self.offset = resolved["step_offset"]
        self.end_step = self.offset + cfg.num_train_steps
        self.compression = hvd.Compression.fp16 if cfg.fp16_allreduce else hvd.Compression.none
        self.tb_writer = None
        self.peak = None

    @property
    def is_root(self):
        return self.hvd.rank() == 0

    def say(self, *args, **kwargs):
        if self.is_root:
            self.printer(*args, **kwargs)

    def plan(self, world_size, accum_steps):
        cfg = self.cfg
        return BatchPlan(cfg.per_rank_batch, accum_steps, world_size, cfg.num_train_steps,
                         cfg.resolved_warmup_steps(), cfg.max_seq_length)

    def write_plan(self, plan):
        write_json_atomic(self.rundir.plan, dict(
            plan.to_dict(), model=self.model_config.to_dict(), train=self.cfg.to_dict(),
            data={k: v for k, v in self.resolved.items() if k != "resume_state"},
            max_predictions=self.cfg.max_predictions_per_seq, step_offset=self.offset))

    def build(self):
        from hvd_pretrain.models import build_pretrainer
        cfg = self.cfg
        if cfg.precision in POLICIES:
            keras.mixed_precision.set_global_policy(POLICIES[cfg.precision])
        keras.utils.set_random_seed(cfg.seed)
        self.model = build_pretrainer(self.model_config)
        self.optimizer = make_optimizer(cfg, make_schedule(cfg, offset=self.offset))
        self.loss_scale = DynamicLossScale() if cfg.precision == "fp16" else None
        self.stepper = AccumulatingStep(self.model, self.optimizer, HorovodCommunicator(self.hvd, self.compression),
                                        cfg.accum_steps, cfg.clip_norm, loss_scale=self.loss_scale,
                                        jit_compile=cfg.xla)
        self.model.loss_sums(_dummy_features(cfg), training=False)  # creates the model's variables
        self.optimizer.build(self.model.trainable_variables)
        self.stepper.build(_dummy_features(cfg))
        self.writer = CheckpointWriter(self.rundir.checkpoints, self.model, self.optimizer, self.model_config,
                                       keep=cfg.keep_checkpoints)
        return self

    def state_variables(self):
        """Everything that must be equal on every rank: model, optimizer slots and step, loss scale."""
        variables = list(self.model.variables) + distributed.optimizer_variables(self.optimizer)
        if self.loss_scale is not None:
            variables += [self.loss_scale.scale, self.loss_scale.good_steps]
        return variables

    def restore(self, source):
        """Load the run's checkpoint, --init_from or --init_checkpoint into this rank's model."""
        resolved, say = self.resolved, self.say
        if resolved.get("checkpoint"):
            self.writer.restore(resolved["checkpoint"])
        elif resolved.get("init_from"):
            from hvd_pretrain.export.importers import describe_missing, load_pretrained
            report = load_pretrained(self.model, resolved["init_from"], source.get("init_from_generator") or None)
            say("initialised from %s: %d tensors loaded%s"
                % (", ".join(report["sources"].values()), report["loaded"],
                   "; not in the checkpoint, starting fresh: %s" % describe_missing(report["missing"])
                   if report["missing"] else ""))
        elif resolved.get("init_checkpoint"):
            self.writer.restore_weights(resolved["init_checkpoint"])
            if self.offset:
                self.optimizer.iterations.assign(self.offset)

    def announce_start(self, start_step):
        resolved = self.resolved
        if resolved.get("checkpoint"):
            self.say("resumed from %s at step %d" % (resolved["checkpoint"], start_step))
        elif resolved.get("init_checkpoint"):
            self.say("initialised from %s (weights only); starting at step %d"
                     % (resolved["init_checkpoint"], start_step))

    def open_data(self, rank, world_size, start_step):
        """This rank's batches. A (re)started run reads its shards in a new order, fixed by the seed and step."""
        from hvd_pretrain.data import make_dataset, shards_for_rank
        from hvd_pretrain.data.pipeline import checked_iterator
        cfg = self.cfg
        files = shards_for_rank(self.resolved["files"], rank, world_size)  # what make_dataset reads here
        if all(os.path.getsize(f) == 0 for f in files):
            # The input pipeline repeats its files: with no record in any of them it would wait for ever.
            from hvd_pretrain.data import DataError
            raise DataError("rank %d of %d has only empty shards (%s); recreate the data with fewer --num_shards or"
                            " more text, or run with fewer ranks" % (rank, world_size, ", ".join(files[:3])))
        dataset = make_dataset(self.resolved["files"], cfg.per_rank_batch, cfg.max_seq_length,
                               cfg.max_predictions_per_seq, rank=rank, world=world_size, seed=cfg.seed + start_step)
        return checked_iterator(dataset, files)  # a damaged shard stops with a DataError naming it

    def logger(self, plan):
        from hvd_pretrain.models.flops import training_flops_per_sequence
        cfg, is_root = self.cfg, self.is_root
        if self.peak is None:
            self.peak = _peak_estimate(cfg, is_root) or False
            if self.peak:
                self.say("MFU against %.2f TFLOP/s per rank (%s)" % (self.peak.flops / 1e12, self.peak.source))
        if is_root and self.tb_writer is None:
            self.tb_writer = tf.summary.create_file_writer(self.rundir.tensorboard)
        return MetricsLogger(self.rundir, self.hvd.rank(), plan, is_root, gather=distributed.gather_rows(self.hvd),
                             tb_writer=self.tb_writer if is_root else None, printer=self.say,
                             end_step=self.end_step,
                             flops_per_example=training_flops_per_sequence(self.model_config, cfg.max_seq_length,
                                                                           cfg.max_predictions_per_seq),
                             peak=self.peak or None)

    def record_weights(self, step, event):
        """Each rank records a digest of its weights: ranks that diverged show up as different digests."""
        rank = self.hvd.rank()
        append_jsonl(self.rundir.rank_log(rank), {"time": time.time(), "rank": rank, "step": int(step),
                                                  "event": event, "pid": os.getpid(),
                                                  "weights_sha256": distributed.weights_digest(self.model)})

    def run_steps(self, plan, iterator, logger, step, phase_examples, stop, after_step=None):
        """Train from `step` to the end. Returns (exit code or None when finished, step, phase examples).

        after_step(step, phase_examples, checkpoint_step) runs on every rank after each optimizer step.
        """
        cfg, hvd, optimizer = self.cfg, self.hvd, self.optimizer
        guard = SkippedStepGuard(cfg.max_consecutive_skipped_steps, cfg.precision)
        while step < self.end_step:
            t0 = time.time()
            micro = [next(iterator) for _ in range(plan.accum_steps)]
            t1 = time.time()
            info = self.stepper.step(micro, stop=stop.requested)
            step = int(optimizer.iterations.numpy())
            phase_examples += 0 if info["skipped"] else plan.global_batch
            logger.window.add(time.time() - t0, t1 - t0, info)
            last = step >= self.end_step or info["stop"]
            try:
                guard.check(step, info)
            except NonFiniteTraining:
                self._log_window(logger, step, info)
                logger.event("stopped", step, reason="non-finite", skipped_steps=guard.consecutive)
                raise
            # A window closes every log_every applied steps, and after log_every skipped steps in a row,
            # so a run that skips step after step stays visible.
            stuck = logger.window.applied == 0 and logger.window.skipped >= cfg.log_every
            if (step % cfg.log_every == 0 and not info["skipped"]) or stuck or last:
                self._log_window(logger, step, info)
            checkpoint_step = (step % cfg.save_checkpoints_steps == 0 and not info["skipped"]) or last
            if checkpoint_step and self.is_root:
                path = self.writer.save(step, {"examples_seen": step * plan.global_batch,
                                               "phase_examples": phase_examples, "step_offset": self.offset,
                                               "plan": plan.to_dict()})
                logger.event("checkpoint", step, path=path)
            if info["stop"]:
                signum = stop.signum or 15
                # Every rank waits here until rank 0's checkpoint is on disk: a launcher that sees the
                # first rank exit may kill the others.
                hvd.broadcast_object(step, root_rank=0, name="stop_barrier")
                self.say("stopping at step %d on signal %d; checkpoint written" % (step, signum))
                logger.event("stopped", step, signal=signum)
                return 128 + signum, step, phase_examples
            if after_step is not None:
                after_step(step, phase_examples, checkpoint_step)
        return None, step, phase_examples

    def _log_window(self, logger, step, info):
        logger.log_window(step, current_lr(self.optimizer), {k: info[k] for k in ("grad_norm", "loss_scale")
                                                              if k in info})

    def finish(self, logger, step):
        self.hvd.broadcast_object(step, root_rank=0, name="end_barrier")  # rank 0's final checkpoint is written
        logger.event("end", step)
        self.record_weights(step, "end")
        if self.is_root:
            ckpt = latest_checkpoint(self.rundir.checkpoints)[1]
            print("done: step %d. checkpoint: %s | metrics: %s | tensorboard: %s"
                  % (step, ckpt, self.rundir.metrics, self.rundir.tensorboard), flush=True)
        return 0


def train(model_config, cfg, data_config, source, printer=print):
    """Run (or resume) pre-training. Returns the process exit code."""
    _horovod_env(cfg)
    hvd = distributed.init_horovod(cfg.threads)
    size = hvd.size()
    say = printer if hvd.rank() == 0 else _quiet

    status, resolved = _startup(hvd, model_config, cfg, data_config, source, say)
    if status:
        if hvd.rank() == 0:
            print_error(status)
        return EXIT_CONFIG
    model_config.vocab_size = resolved["vocab_size"]
    cfg.max_seq_length = resolved["max_seq_length"]
    cfg.max_predictions_per_seq = resolved["max_predictions"]
    cfg.num_train_steps, cfg.warmup_steps, note = budget_steps(cfg, size, resolved.get("num_instances"))
    if note:
        say(note)

    session = Session(hvd, model_config, cfg, resolved, printer)
    plan = session.plan(size, cfg.accum_steps)
    say(plan.describe(resolved.get("num_instances")))
    if session.offset:
        say("            global step continues from %d; this phase ends at step %d"
            % (session.offset, session.end_step))
    if session.is_root:
        session.write_plan(plan)
    session.build()
    if cfg.elastic:
        # Every worker loads the same files; the elastic state's sync then makes rank 0's copy everyone's.
        session.restore(source)
        start_step = _start_step(resolved, cfg, plan, session.optimizer, say)
        from hvd_pretrain.train.elastic import train_elastic
        return train_elastic(session, plan, start_step)
    if session.is_root:
        session.restore(source)
    distributed.broadcast_state(hvd, session.model, session.optimizer)
    start_step = _start_step(resolved, cfg, plan, session.optimizer, say)
    if start_step >= session.end_step:
        say("training already complete at step %d (%s); nothing to do" % (start_step, session.rundir.checkpoints))
        return 0
    session.announce_start(start_step)

    from hvd_pretrain.data import DataError
    rank = hvd.rank()
    try:
        iterator = session.open_data(rank, size, start_step)
    except DataError as e:
        print_error(str(e).splitlines()[0])
        return EXIT_CONFIG
    logger = session.logger(plan)
    logger.event("resume" if start_step > session.offset else "start", start_step, world_size=size,
                 pid=os.getpid(), global_batch=plan.global_batch)
    session.record_weights(start_step, "start")
    stop = StopRequest().install()
    try:
        code, step, _ = session.run_steps(plan, iterator, logger, start_step,
                                          (start_step - session.offset) * plan.global_batch, stop)
    except (DataError, NonFiniteTraining) as e:
        if session.is_root or isinstance(e, DataError):
            print_error(str(e).splitlines()[0])
        return EXIT_CONFIG
    finally:
        stop.uninstall()
    if code is not None:
        return code
    return session.finish(logger, step)
