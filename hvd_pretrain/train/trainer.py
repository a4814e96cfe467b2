"""Pre-training under Horovod, start to finish.

    init -> start-up decisions (rank 0 resolves and broadcasts; with --elastic
            every worker reads them itself)
    -> plan (steps from a budget when given) -> build model + optimizer slots
    -> restore -> broadcast state (with --elastic: the elastic state's sync)
    -> loop: N micro-batches -> accumulate + allreduce -> clip -> apply
             -> log window -> (rank 0) checkpoint -> stop on signal

The pieces live in train/session.py; this module only orders them.
"""

import os

from hvd_pretrain.train import devices, distributed
from hvd_pretrain.errors import UsageError
from hvd_pretrain.train.resolve import EXIT_CONFIG, print_error, resolve
from hvd_pretrain.train.session import Session, exit_code_of
from hvd_pretrain.train.signals import StopRequest


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


def _resolve(spec, size, say, rank=0):
    """resolve(), plus the evaluation the run does (evaluate.resolve_eval)."""
    from hvd_pretrain.train.evaluate import resolve_eval
    resolved = resolve(spec, size, say, rank=rank)
    resolved["eval"] = resolve_eval(spec.train, spec.model.replace(vocab_size=resolved["vocab_size"]),
                                    resolved["data_dir"], resolved["max_seq_length"], resolved["max_predictions"])
    return resolved


def _startup(hvd, spec, say):
    """(error line or None, resolved). Rank 0 decides and broadcasts; elastic workers decide alone."""
    if spec.train.elastic:
        # A worker that joins later must not wait in a collective the running workers never enter,
        # so every worker reads the (already prepared) data and checkpoint state itself.
        if not spec.source.data_dir:
            return ("--elastic needs --data_dir: workers that join a running job cannot wait for the data to be"
                    " built; create it first with `hvd-data create`"), None
        try:
            return None, _resolve(spec, hvd.size(), say, rank=hvd.rank())
        except UsageError as e:
            return str(e), None
    status, resolved = None, None
    if hvd.rank() == 0:
        try:
            resolved = _resolve(spec, hvd.size(), say)
        except UsageError as e:
            status = str(e)
    return hvd.broadcast_object((status, resolved), root_rank=0, name="resolve")


def train(spec, printer=print):
    """Run (or resume) pre-training of a RunSpec (train/spec.py). Returns the process exit code."""
    _horovod_env(spec.train)
    hvd = distributed.init_horovod(spec.train.threads)
    size = hvd.size()
    devices.require_devices(spec.train.allow_cpu, size)  # never train on CPU silently beside idle GPUs
    say = printer if hvd.rank() == 0 else _quiet

    status, resolved = _startup(hvd, spec, say)
    if status:
        if hvd.rank() == 0:
            print_error(status)
        return EXIT_CONFIG
    spec, note = spec.resolved(resolved, size)
    if note:
        say(note)
    cfg = spec.train

    session = Session(hvd, spec, resolved, printer)
    plan = session.plan(size, cfg.accum_steps)
    say(plan.describe(resolved.get("num_instances")))
    if session.offset:
        say("            global step continues from %d; this phase ends at step %d"
            % (session.offset, session.end_step))
    session.build()
    if cfg.elastic:
        # Every worker loads the same files; the elastic state's sync then makes rank 0's copy everyone's.
        session.restore()
        start_step = _start_step(resolved, cfg, plan, session.optimizer, say)
        from hvd_pretrain.train.elastic import train_elastic
        return train_elastic(session, plan, start_step)
    if session.is_root:
        session.restore()
    distributed.broadcast_state(hvd, session.model, session.optimizer)
    start_step = _start_step(resolved, cfg, plan, session.optimizer, say)
    stop = StopRequest().install()
    try:
        return exit_code_of(hvd, lambda: session.run_world(
            plan, start_step, (start_step - session.offset) * plan.global_batch, stop,
            "resume" if start_step > session.offset else "start"))
    finally:
        stop.uninstall()
