"""The batch/step plan: per-rank batch x accumulation x world size, and what it implies."""

from dataclasses import asdict, dataclass

from hvd_pretrain.errors import ConfigError


@dataclass(frozen=True)
class BatchPlan:
    per_rank_batch: int
    accum_steps: int
    world_size: int
    num_train_steps: int
    warmup_steps: int
    max_seq_length: int

    @property
    def global_batch(self):
        """Examples per optimizer step, over all ranks and micro-batches."""
        return self.per_rank_batch * self.accum_steps * self.world_size

    @property
    def micro_steps(self):
        return self.num_train_steps * self.accum_steps

    @property
    def examples(self):
        return self.num_train_steps * self.global_batch

    @property
    def tokens(self):
        """Padded tokens over the whole run."""
        return self.examples * self.max_seq_length

    def to_dict(self):
        d = asdict(self)
        d.update(global_batch=self.global_batch, examples=self.examples, tokens=self.tokens,
                 micro_steps=self.micro_steps)
        return d

    def describe(self, num_instances=None):
        lines = [
            "batch plan: %d per rank x %d accumulation x %d ranks = global batch %d"
            % (self.per_rank_batch, self.accum_steps, self.world_size, self.global_batch),
            "            %d optimizer steps (%d warmup), %d micro-steps per rank"
            % (self.num_train_steps, self.warmup_steps, self.micro_steps),
            "            %d examples, %d tokens at seq %d"
            % (self.examples, self.tokens, self.max_seq_length),
        ]
        if num_instances:
            lines.append("            %.2f epochs over %d instances" % (self.examples / num_instances, num_instances))
        return "\n".join(lines)


def budget_steps(cfg, world_size, num_instances=None):
    """(num_train_steps, warmup_steps, note) for a run whose length is a budget of examples or epochs.

    The optimizer steps follow from the effective global batch, so changing the number of ranks or
    accum_steps keeps the examples seen constant. Without a budget, --num_train_steps is taken as is.
    """
    global_batch = cfg.per_rank_batch * cfg.accum_steps * world_size
    if not cfg.budgeted:
        return cfg.num_train_steps, cfg.resolved_warmup_steps(), None
    if cfg.train_epochs:
        if not num_instances:
            raise ConfigError("--train_epochs needs the data's instance count (manifest.json); give --train_examples")
        examples = int(round(cfg.train_epochs * num_instances))
        what = "%g epochs x %d instances = %d examples" % (cfg.train_epochs, num_instances, examples)
    else:
        examples = cfg.train_examples
        what = "%d examples" % examples
    steps = max(1, -(-examples // global_batch))
    warmup = cfg.warmup_steps if cfg.warmup_steps >= 0 else int(round(cfg.warmup_proportion * steps))
    note = ("steps from the budget: %s / global batch %d = %d optimizer steps (%d warmup)"
            % (what, global_batch, steps, warmup))
    return steps, min(warmup, steps), note
