"""A bound on optimizer steps skipped for non-finite gradients.

A step whose allreduced gradient holds inf or NaN is skipped on every rank
(train/accumulate.py): the weights and the step counter stay where they were.
An fp16 run skips a few steps while its loss scale settles; a run that skips
step after step is stuck: its data holds non-finite values, its learning rate
made it diverge, or fp16 overflows even at the smallest loss scale. Without a
bound such a run would sit at the same step for ever. SkippedStepGuard counts
consecutive skips (identical on every rank, since the decision is) and says
when to stop and why. The trainer checks at each read of its device window
(`check_read`); once a read has seen a skipped step the next read falls where the
limit would be reached, and a run of skips that began between reads is found at
the next read, at most --log_every steps later.
"""

from hvd_pretrain.errors import TrainingError


class NonFiniteTraining(TrainingError):
    """Too many consecutive skipped steps (one-line message naming the likely cause)."""


class SkippedStepGuard:
    """Counts consecutive skipped optimizer steps; `check` raises NonFiniteTraining past the limit.

    limit: consecutive skipped steps allowed (0: no limit).
    precision: "fp32", "fp16" or "bf16"; min_loss_scale: the fp16 loss scale's floor.
    """

    def __init__(self, limit, precision="fp32", min_loss_scale=1.0):
        self.limit = int(limit)
        self.precision = precision
        self.min_loss_scale = float(min_loss_scale)
        self.consecutive = 0
        self.applied = 0  # steps applied since this process started

    def check(self, step, info):
        """Record one optimizer step's outcome (info from AccumulatingStep.step)."""
        if not info.get("skipped"):
            self.consecutive = 0
            self.applied += 1
            return
        self.consecutive += 1
        if self.limit and self.consecutive >= self.limit:
            raise NonFiniteTraining(self.explain(step, info))

    def check_read(self, step, read):
        """Record the steps of one device-window read (train/window.py WindowRead).

        Raises when a run of `limit` skipped steps happened anywhere since the previous read, even if
        an applied step ended it since: the same runs `check` stops, found at the read instead of the step.
        """
        self.applied += read.applied
        self.consecutive = read.consecutive
        if self.limit and read.longest_skip_run >= self.limit:
            self.consecutive = max(self.consecutive, read.longest_skip_run)
            raise NonFiniteTraining(self.explain(step, {"loss": read.skipped_loss, "loss_scale": read.loss_scale}))

    def likely_cause(self, info):
        """The most likely reason for a run of skipped steps, with what to do about it."""
        loss = info.get("loss")
        loss_finite = loss is not None and loss == loss and abs(loss) != float("inf")
        if not loss_finite and self.applied == 0:
            return ("the data: the loss is %s before any update of this run; check the shards with"
                    " `hvd-data inspect --verify` and the inputs for NaN or inf" % loss)
        if not loss_finite:
            return ("the learning rate: the loss became %s after %d applied steps; lower --learning_rate or raise"
                    " --warmup_steps" % (loss, self.applied))
        scale = info.get("loss_scale")
        if self.precision == "fp16" and scale is not None and scale <= self.min_loss_scale:
            return ("the loss scale: fp16 gradients overflow even at loss scale %g; train with --precision=bf16"
                    " or fp32" % scale)
        return ("the learning rate: the loss is finite but its gradients are not; lower --learning_rate or raise"
                " --warmup_steps (from the first step on, check the data for extreme values)")

    def explain(self, step, info):
        return ("%d consecutive optimizer steps skipped for non-finite gradients at step %d (loss %s); likely"
                " cause: %s; --max_consecutive_skipped_steps=%d sets this limit"
                % (self.consecutive, step, info.get("loss"), self.likely_cause(info), self.limit))
