"""One training run on one rank: the model, optimizer, stepper and checkpoints, and the loop.

The run's lifecycle, the same for a fixed world and for an elastic one:

    enter a world (plan: per-rank batch x accum x world size)
    -> build (model, optimizer slots, fp32 accumulators)
    -> restore (checkpoint, --init_from or --init_checkpoint) and make every rank equal
    -> run_world: open this rank's data, log, loop over optimizer steps, finish

`train/trainer.py` drives it for a fixed world, `train/elastic.py` re-enters
`run_world` after every change of world size.
"""

import hashlib
import os
import socket
import time

from hvd_pretrain.models.features import dummy_features
from hvd_pretrain.rundir import RunDir, append_jsonl, write_json_atomic
from hvd_pretrain.tfcompat import keras, tf
from hvd_pretrain.train import distributed
from hvd_pretrain.train.accumulate import AccumulatingStep, DynamicLossScale, HorovodCommunicator
from hvd_pretrain.checkpoint_files import latest_checkpoint
from hvd_pretrain.train.checkpoint import CheckpointWriter
from hvd_pretrain.train.metrics import MetricsLogger
from hvd_pretrain.errors import DataError, UsageError
from hvd_pretrain.train.nonfinite import NonFiniteTraining, SkippedStepGuard
from hvd_pretrain.train.optimization import make_optimizer, make_schedule
from hvd_pretrain.train.plan import BatchPlan
from hvd_pretrain.train.resolve import print_error

POLICIES = {"fp16": "mixed_float16", "bf16": "mixed_bfloat16"}


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
    from hvd_pretrain.cache import cache_root
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return PeakEstimate(measure=lambda: measure_matmul_peak(tf, n=512, repeats=3, min_seconds=0.2),
                        source="best fp32 matmul rate measured on this host, re-measured as training goes",
                        cache_path=peak_cache_path(cache_root(), threads, tf.__version__))


def exit_code_of(hvd, run):
    """run() -> exit code; a UsageError (bad data, non-finite training) is one error line and exit 2.

    Rank 0 prints it, and so does the rank that met bad data (a damaged shard is read by one rank).
    """
    try:
        return run()
    except UsageError as e:
        if hvd.rank() == 0 or isinstance(e, DataError):
            print_error(str(e))
        return e.exit_code


def batch_digest(features):
    """SHA-256 (hex, 16 chars) of a micro-batch's tokens, masked positions and labels."""
    h = hashlib.sha256()
    for name in ("input_ids", "masked_lm_positions", "masked_lm_ids", "next_sentence_labels"):
        if name in features:
            h.update(features[name].numpy().tobytes())
    return h.hexdigest()[:16]


class Session:
    """What one run holds while ranks come and go: configs, model, optimizer, stepper, checkpoints."""

    def __init__(self, hvd, spec, resolved, printer):
        self.hvd = hvd
        self.spec = spec
        self.model_config = spec.model
        self.cfg = cfg = spec.train
        self.resolved = resolved
        self.printer = printer
        self.rundir = RunDir(cfg.run_dir)
        self.offset = resolved["step_offset"]
        self.end_step = self.offset + cfg.num_train_steps
        self.compression = hvd.Compression.fp16 if cfg.fp16_allreduce else hvd.Compression.none
        self.tb_writer = None
        self.peak = None
        self.cursor = None  # the data position (data/cursor.py), advanced every optimizer step
        self.entry = 1  # which entry into a world this is (an elastic job counts them; see train/elastic.py)

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
            plan.to_dict(), spec=self.spec.to_dict(), model=self.model_config.to_dict(), train=self.cfg.to_dict(),
            data={k: v for k, v in self.resolved.items() if k != "resume_state"},
            max_predictions=self.cfg.max_predictions_per_seq, step_offset=self.offset))

    def build(self):
        from hvd_pretrain.models import build_pretrainer
        cfg = self.cfg
        if cfg.precision in POLICIES:
            keras.mixed_precision.set_global_policy(POLICIES[cfg.precision])
        keras.utils.set_random_seed(cfg.seed)
        self.model = build_pretrainer(self.model_config, recompute=cfg.recompute)
        self.optimizer = make_optimizer(cfg, make_schedule(cfg, offset=self.offset))
        self.loss_scale = DynamicLossScale() if cfg.precision == "fp16" else None
        self.stepper = AccumulatingStep(self.model, self.optimizer, HorovodCommunicator(self.hvd, self.compression),
                                        cfg.accum_steps, cfg.clip_norm, loss_scale=self.loss_scale,
                                        jit_compile=cfg.xla, bucket_mb=cfg.allreduce_bucket_mb, seed=cfg.seed)
        features = dummy_features(1, cfg.max_seq_length, cfg.max_predictions_per_seq, masked_weight=1.0)
        self.model.loss_sums(features, training=False)  # creates the model's variables
        self.optimizer.build(self.model.trainable_variables)
        self.stepper.build(features)
        self.writer = CheckpointWriter(self.rundir.checkpoints, self.model, self.optimizer, self.model_config,
                                       keep=cfg.keep_checkpoints)
        from hvd_pretrain.train.evaluate import periodic_evaluation
        self.evaluation = periodic_evaluation(self)  # None when the run does not evaluate
        return self

    def state_variables(self):
        """Everything that must be equal on every rank: model, optimizer slots and step, loss scale."""
        variables = list(self.model.variables) + distributed.optimizer_variables(self.optimizer)
        if self.loss_scale is not None:
            variables += [self.loss_scale.scale, self.loss_scale.good_steps]
        return variables

    def restore(self):
        """Load the run's checkpoint, --init_from or --init_checkpoint into this rank's model."""
        resolved, say = self.resolved, self.say
        if resolved.get("checkpoint"):
            self.writer.restore(resolved["checkpoint"])
        elif resolved.get("init_from"):
            from hvd_pretrain.export.importers import describe_missing, load_pretrained
            report = load_pretrained(self.model, resolved["init_from"], self.spec.source.init_from_generator or None,
                                     vocab_extension=resolved.get("vocab_extension"))
            say("initialised from %s: %d tensors loaded%s%s"
                % (", ".join(report["sources"].values()), report["loaded"],
                   "; vocab extended (%s), %d tensors resized" % (resolved["vocab_extension"], report["resized"])
                   if report.get("resized") else "",
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

    def run_world(self, plan, step, phase_examples, stop, event, after_step=None, cursor=None, **event_fields):
        """Train in the current world from `step`: open the data, log, loop, and finish at the end step.

        event: "start" or "resume" (a process's first entry) or "elastic_reset" (a new world).
        Returns the exit code (0 when the run is complete, 128 + signal when stopped). Raises
        DataError or NonFiniteTraining; `exit_code_of` turns them into one line and exit 2.
        """
        if step >= self.end_step:
            self.say("training already complete at step %d (%s); nothing to do" % (step, self.rundir.checkpoints))
            return 0
        if event in ("start", "resume"):
            self.announce_start(step)
        iterator = self.open_data(self.hvd.rank(), plan.world_size, cursor)
        self.entry = int(event_fields.get("entries", 1))
        if self.is_root:
            self.write_plan(plan)
        logger = self.metrics_logger(plan)
        logger.event(event, step, world_size=plan.world_size, pid=os.getpid(), global_batch=plan.global_batch,
                     accum_steps=plan.accum_steps, **dict(self.data_position(), **event_fields))
        self.record_weights(step, "start" if event == "resume" else event)
        if self.evaluation is not None and event == "start":
            self.evaluation.evaluate(step, logger)  # the starting point of the curves
        code, step, _ = self.run_steps(plan, iterator, logger, step, phase_examples, stop, after_step)
        return code if code is not None else self.finish(logger, step)

    def open_data(self, rank, world_size, saved_cursor=None):
        """This rank's batches, from the data position saved with the checkpoint (data/cursor.py).

        saved_cursor: a DataCursor dict (an elastic job's last commit); default: the resumed
        checkpoint's. A run resumed with the same world continues the exact stream; another world
        is dealt the rest of the epoch; other data or another --seed starts at epoch 0.
        """
        from hvd_pretrain.data.pipeline import checked_iterator, make_stream_dataset
        cfg = self.cfg
        sources, fresh, matches, restore = self.data_sources(world_size)
        if saved_cursor is None:
            saved_cursor = (self.resolved.get("resume_state") or {}).get("data_cursor")
        cursor = restore(saved_cursor) if saved_cursor else None
        if cursor is not None and not matches(cursor):
            self.say("data: the saved data position belongs to other data, another mix or another --seed;"
                     " starting at epoch 0")
            cursor = None
        if cursor is None:
            if self.resolved.get("checkpoint") and not saved_cursor:
                self.say("data: the checkpoint holds no data position; the data starts at epoch 0")
            cursor = fresh()
        elif cursor.world != world_size:
            self.say("data: the epoch in progress continues on %d ranks instead of %d; its unread examples are"
                     " dealt again" % (world_size, cursor.world))
            cursor = cursor.redealt(world_size)
        self.cursor = cursor
        files = [path for shard_files, _ in sources for path in shard_files]
        dataset = make_stream_dataset(sources, cursor, rank, cfg.per_rank_batch, cfg.max_seq_length,
                                      cfg.max_predictions_per_seq, with_keys=cfg.record_batch_digests)
        return checked_iterator(dataset, files)  # a damaged shard stops with a DataError naming it

    def data_position(self):
        """The data position at the start of a world, for its start/resume/elastic_reset event: data_epoch
        and data_skipped (examples of that epoch no deal could place, data/cursor.py); {} for a mix."""
        cursor = self.cursor
        if not hasattr(cursor, "skipped"):
            return {}
        return {"data_epoch": int(cursor.epoch), "data_skipped": int(cursor.skipped)}

    def data_sources(self, world_size):
        """(sources, fresh(), matches(cursor), restore(dict)) for the run's data: one corpus or a mix."""
        from hvd_pretrain.data import list_shards
        from hvd_pretrain.data.cursor import DataCursor, fingerprint
        from hvd_pretrain.data.mixture import MixtureCursor
        from hvd_pretrain.data.stream import record_counts
        seed = self.cfg.seed
        mixture = self.resolved.get("mixture")
        if not mixture:
            files = list_shards(self.resolved["files"])
            sources = [(files, record_counts(files))]
            return (sources, lambda: DataCursor.start(sources[0][1], files, seed, world_size),
                    lambda c: isinstance(c, DataCursor) and (c.fingerprint, c.seed) == (
                        fingerprint(files, sources[0][1]), seed),
                    DataCursor.from_dict)
        sources = []
        for part in mixture:
            files = list_shards(part["data_dir"])
            sources.append((files, record_counts(files)))
        names, weights = [p["data_dir"] for p in mixture], [p["weight"] for p in mixture]
        prints = [fingerprint(f, c) for f, c in sources]
        return (sources, lambda: MixtureCursor.start(names, weights, sources, seed, world_size),
                lambda c: isinstance(c, MixtureCursor) and c.matches(names, weights, prints, seed),
                lambda d: MixtureCursor.from_dict(d) if "mixture" in d else DataCursor.from_dict(d))

    def peak_estimate(self):
        """The per-rank peak FLOP/s behind MFU (rank 0 measures it on CPU), made once; None without one."""
        if self.peak is None:
            self.peak = _peak_estimate(self.cfg, self.is_root) or False
            if self.peak:
                self.say("MFU against %.2f TFLOP/s per rank (%s)" % (self.peak.flops / 1e12, self.peak.source))
        return self.peak or None

    def tensorboard_writer(self):
        """Rank 0's TensorBoard writer for tb/, opened once; None on other ranks."""
        if self.is_root and self.tb_writer is None:
            self.tb_writer = tf.summary.create_file_writer(self.rundir.tensorboard)
        return self.tb_writer

    def metrics_logger(self, plan):
        """A MetricsLogger for `plan`'s world: metrics.jsonl, ranks/<r>.jsonl and TensorBoard."""
        from hvd_pretrain.models.flops import training_flops_per_sequence
        cfg = self.cfg
        return MetricsLogger(self.rundir, self.hvd.rank(), plan, self.is_root,
                             gather=distributed.gather_rows(self.hvd), tb_writer=self.tensorboard_writer(),
                             printer=self.say, end_step=self.end_step,
                             flops_per_example=training_flops_per_sequence(self.model_config, cfg.max_seq_length,
                                                                           cfg.max_predictions_per_seq),
                             peak=self.peak_estimate())

    def record_weights(self, step, event):
        """Each rank records a digest of its weights: ranks that diverged show up as different digests."""
        rank = self.hvd.rank()
        append_jsonl(self.rundir.rank_log(rank), {"time": time.time(), "rank": rank, "step": int(step),
                                                  "event": event, "pid": os.getpid(), "host": socket.gethostname(),
                                                  "weights_sha256": distributed.weights_digest(self.model)})

    def run_steps(self, plan, iterator, logger, step, phase_examples, stop, after_step=None):
        """Train from `step` to the end. Returns (exit code or None when finished, step, phase examples).

        No step waits for the device. The step's results stay in the stepper's device window, read
        once at each read point: when the optimizer step would reach the next logging window,
        checkpoint, evaluation, elastic commit or the end if no step since the last read was skipped
        (`_steps_to_read`).
        A read that finds skipped steps (the counter did not move) sets the next read that many steps
        later, so windows and checkpoints stay on their step grid; while steps are being skipped, reads
        also fall where the guard's limit or a window of only skipped steps would be reached, so both
        happen at the step a per-step read would find them (one extra read per skipped step at most).
        The stop flag is read there too: a stop is acted on at most min(--log_every,
        --save_checkpoints_steps) optimizer steps after a rank asked for it.

        after_step(step, phase_examples, checkpoint_step) runs on every rank at each read point.
        """
        cfg, hvd, stepper = self.cfg, self.hvd, self.stepper
        guard = SkippedStepGuard(cfg.max_consecutive_skipped_steps, cfg.precision)
        pending, due = 0, self._steps_to_read(step)  # steps run since the last read; steps until the next
        while step < self.end_step:
            t0 = time.time()
            micro = [next(iterator) for _ in range(plan.accum_steps)]
            self.cursor = self.cursor.advanced(plan.accum_steps * cfg.per_rank_batch)
            if cfg.record_batch_digests:  # the step it trains when no step since the last read was skipped
                keys = [b.pop("example_keys").numpy() for b in micro]
                append_jsonl(self.rundir.batch_log(hvd.rank()), {
                    "step": step + pending + 1, "rank": hvd.rank(), "world": plan.world_size, "entry": self.entry,
                    "digests": [batch_digest(b) for b in micro],
                    "examples": [[int(e), int(sh), int(r)] for k in keys for _, e, sh, r in k]})
            t1 = time.time()
            stepper.run(micro, stop=stop.requested)
            pending += 1
            if pending < due:
                logger.window.add_time(time.time() - t0, t1 - t0)
                continue
            read = stepper.window.read(self.optimizer, self.loss_scale)  # the one host read
            previous, step, pending = step, read.step, 0
            phase_examples += read.applied * plan.global_batch
            logger.window.add_read(read)
            logger.window.add_time(time.time() - t0, t1 - t0)
            last = step >= self.end_step or read.stop
            try:
                guard.check_read(step, read)
            except NonFiniteTraining:
                self._log_window(logger, step, read)
                logger.event("stopped", step, reason="non-finite", skipped_steps=guard.consecutive)
                raise
            # A window closes every log_every applied steps, and after log_every skipped steps in a row,
            # so a run that skips step after step stays visible.
            advanced = step > previous
            stuck = logger.window.applied == 0 and logger.window.skipped >= cfg.log_every
            if (advanced and step % cfg.log_every == 0) or stuck or last:
                self._log_window(logger, step, read)
            checkpoint_step = (advanced and step % cfg.save_checkpoints_steps == 0) or last
            if checkpoint_step and self.is_root:
                path = self.writer.save(step, self.checkpoint_state(step, plan, phase_examples))
                logger.event("checkpoint", step, path=path)
            if self.evaluation is not None and not read.stop and self.evaluation.due(step, last):
                self.evaluation.evaluate(step, logger, self.checkpoint_state(step, plan, phase_examples))
            due = self._steps_to_read(step)
            if guard.limit and read.consecutive:  # skipping now: read where the guard's limit would fall
                due = min(due, guard.limit - read.consecutive)
            if logger.window.skipped and not logger.window.applied:  # and where a stuck window would close
                due = min(due, cfg.log_every - logger.window.skipped)
            if read.stop:
                code = stop.exit_code()  # ranks that only saw the stop flag report SIGTERM
                signum = code - 128
                # Every rank waits here until rank 0's checkpoint is on disk: a launcher that sees the
                # first rank exit may kill the others.
                hvd.broadcast_object(step, root_rank=0, name="stop_barrier")
                self.say("stopping at step %d on signal %d; checkpoint written" % (step, signum))
                logger.event("stopped", step, signal=signum)
                return code, step, phase_examples
            if after_step is not None:
                after_step(step, phase_examples, checkpoint_step)
        return None, step, phase_examples

    def checkpoint_state(self, step, plan, phase_examples):
        """What a checkpoint's state.json records besides the step."""
        return {"examples_seen": step * plan.global_batch, "phase_examples": phase_examples,
                "step_offset": self.offset, "plan": plan.to_dict(), "data_cursor": self.cursor.to_dict()}

    def _steps_to_read(self, step):
        """Optimizer steps from `step` to the next read point: the nearest multiple of --log_every,
        --save_checkpoints_steps, the evaluation interval (and --elastic_commit_every with --elastic),
        or the end step."""
        cfg = self.cfg
        grids = [cfg.log_every, cfg.save_checkpoints_steps] + ([cfg.elastic_commit_every] if cfg.elastic else [])
        if self.evaluation is not None:
            grids.append(self.evaluation.every)
        return max(1, min([g - step % g for g in grids] + [self.end_step - step]))

    def _log_window(self, logger, step, read):
        extra = {"grad_norm": read.grad_norm}
        if read.loss_scale is not None:
            extra["loss_scale"] = read.loss_scale
        if hasattr(self.cursor, "corpus_examples"):
            extra["corpus_examples"] = self.cursor.corpus_examples()
        logger.log_window(step, read.lr, extra)

    def finish(self, logger, step):
        self.hvd.broadcast_object(step, root_rank=0, name="end_barrier")  # rank 0's final checkpoint is written
        logger.event("end", step)
        self.record_weights(step, "end")
        if self.is_root:
            ckpt = latest_checkpoint(self.rundir.checkpoints)[1]
            print("done: step %d. checkpoint: %s | metrics: %s | tensorboard: %s"
                  % (step, ckpt, self.rundir.metrics, self.rundir.tensorboard), flush=True)
        return 0
