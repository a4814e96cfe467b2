"""Elastic training: ranks may leave and join while the job runs.

Launched as ``horovodrun -np N --min-np A --max-np B --host-discovery-script S
hvd-pretrain --elastic ...``. Horovod's driver starts a worker for every slot
the script reports and tells the running workers when the set changes.

How a run survives a change of world size:

* Every ``--elastic_commit_every`` optimizer steps (and at every checkpoint)
  the state is *committed*: a host-memory copy of the model, optimizer and
  loss-scale variables plus the step counters. The commit is also where a
  worker learns that hosts were added or removed; all workers learn it at
  the same commit, because the news is broadcast from rank 0.
* On a change, every worker re-initialises Horovod in the new world. Workers
  whose slot was removed exit. A worker that failed mid-step rolls back to
  the last commit (``restore``); a clean change needs no rollback.
* The surviving rank 0 then broadcasts the variables and counters
  (``sync``) to every worker, including new ones, which have built their
  model but done no collective operation before this point.
* The batch plan is recomputed for the new world size: ``accum_steps``
  changes so that the global batch stays what it was at launch, when it
  divides; otherwise the nearest accumulation is used and a warning names
  the new global batch. The learning-rate schedule counts optimizer steps,
  so it carries on where it was.
* Each worker rebuilds its input pipeline for its new rank and world size
  from the committed data position (data/cursor.py): the examples of the
  epoch no rank has read are dealt again, so each is still read once.

Horovod's own TensorFlowState does not broadcast variables on sync in eager
mode, and its Keras state calls ``optimizer.variables()``, which Keras 2
optimizers do not have; ``TrainingState`` below tracks an explicit list of
variables instead.
"""

import faulthandler

from horovod.common.elastic import ObjectState, run_fn
from horovod.common.exceptions import HorovodInternalError

from hvd_pretrain.tfcompat import tf
from hvd_pretrain.train.session import exit_code_of
from hvd_pretrain.train.signals import StopRequest


class TrainingState(ObjectState):
    """Committed training state: a fixed list of variables plus picklable counters.

    Counters are keyword arguments and become attributes (``state.phase_examples``).
    """

    def __init__(self, hvd, variables, **counters):
        self._hvd = hvd
        self.variables = list(variables)
        self._values = [v.numpy() for v in self.variables]
        super().__init__(bcast_object=hvd.broadcast_object, get_rank=hvd.rank, **counters)

    def save(self):
        self._values = [v.numpy() for v in self.variables]
        super().save()

    def restore(self):
        for var, value in zip(self.variables, self._values):
            var.assign(value)
        super().restore()

    def sync(self):
        self._hvd.broadcast_variables(self.variables, root_rank=0)
        self._values = [v.numpy() for v in self.variables]
        super().sync()


def accum_for_world(target_global_batch, per_rank_batch, world_size):
    """(accum_steps, global_batch, note) keeping the global batch at the target when it divides.

    When it does not divide, the accumulation that comes closest is used and the note says
    which global batch the run now trains with.
    """
    per_step = per_rank_batch * world_size
    if target_global_batch % per_step == 0:
        accum = target_global_batch // per_step
        return accum, target_global_batch, None
    accum = max(1, int(round(target_global_batch / float(per_step))))
    global_batch = accum * per_step
    note = ("warning: global batch %d does not divide over %d ranks x batch %d; training with accum %d ="
            " global batch %d until the world size changes again"
            % (target_global_batch, world_size, per_rank_batch, accum, global_batch))
    return accum, global_batch, note


def _is_horovod_failure(error):
    """A TensorFlow op error raised by a Horovod collective because a peer went away."""
    return isinstance(error, tf.errors.OpError) and "Horovod" in (error.message or "")


def run(hvd, state, train_fn):
    """Run ``train_fn(state)`` until it returns, re-entering it after every change of world size."""

    def guarded(state_):
        try:
            return train_fn(state_)
        except tf.errors.OpError as e:
            if _is_horovod_failure(e):
                raise HorovodInternalError(e) from e
            raise

    def reset():
        hvd.shutdown()
        # A worker whose slot was removed is stopped inside init by Horovod itself (an uncaught
        # C++ "has been removed from elastic job" error, exit 134, which the driver expects).
        # Without faulthandler that is two lines of output instead of a Python stack dump.
        dumping = faulthandler.is_enabled()
        faulthandler.disable()
        hvd.init()
        if dumping:
            faulthandler.enable()

    return run_fn(guarded, reset)(state)


def train_elastic(session, plan, start_step):
    """The training loop of an elastic job (see the module docstring). Returns the exit code."""
    hvd, cfg = session.hvd, session.cfg
    state = TrainingState(hvd, session.state_variables(), phase_examples=(start_step - session.offset)
                          * plan.global_batch, target_global_batch=plan.global_batch, entries=0,
                          data_cursor=(session.resolved.get("resume_state") or {}).get("data_cursor"))
    state.register_reset_callbacks([session.stepper.clear])
    stop = StopRequest().install()

    def train_fn(state):
        size = hvd.size()
        accum, _, note = accum_for_world(state.target_global_batch, cfg.per_rank_batch, size)
        if note:
            session.say(note)
        current = session.plan(size, accum)
        session.stepper.reconfigure(size, accum)
        step = int(session.optimizer.iterations.numpy())
        first = state.entries == 0
        state.entries += 1
        if not first:
            session.say("elastic: world size is now %d; %s" % (size, current.describe().splitlines()[0]))

        def commit(step, phase_examples, checkpoint_step):
            if step % cfg.elastic_commit_every == 0 or checkpoint_step:
                state.phase_examples = phase_examples
                state.data_cursor = session.cursor.to_dict()
                state.commit()  # raises HostsUpdatedInterrupt on every rank when the hosts changed

        event = "start" if first and step == session.offset else ("resume" if first else "elastic_reset")
        return session.run_world(current, step, state.phase_examples, stop, event, commit,
                                 cursor=state.data_cursor, entries=state.entries)

    try:
        return exit_code_of(hvd, lambda: run(hvd, state, train_fn))
    finally:
        stop.uninstall()
