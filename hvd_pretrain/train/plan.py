"""The batch/step plan: per-rank batch x accumulation x world size, and what it implies."""

from dataclasses import asdict, dataclass


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
