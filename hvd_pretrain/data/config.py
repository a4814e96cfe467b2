"""DataConfig: every option of pre-training data creation, validated in one place."""

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from hvd_pretrain.errors import DataError

OBJECTIVES = ("nsp", "sop", "none")
MASKING_MODES = ("static", "dynamic")
SEGMENTERS = ("none", "jieba")


@dataclass
class DataConfig:
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    sentence_objective: str = "nsp"  # nsp | sop | none
    seed: int = 12345
    num_shards: int = 0  # 0: one shard per ~32 MB of input text, at least 8
    whole_word_masking: bool = False
    ngram_max: int = 1  # n-gram masking: spans of 1..ngram_max words, p(n) ∝ 1/n
    masking: str = "static"  # static: masked once at creation; dynamic: masked in tf.data every epoch
    segmenter: str = "none"  # none | jieba: word boundaries for whole-word masking of Chinese
    wwm_dict: str = ""  # jieba user dictionary (one word per line, optional frequency and tag)
    max_line_bytes: int = 100_000  # longer lines are skipped and counted
    packing: bool = False  # fill sequences: whole sentences of consecutive documents (none), same-label pairs (nsp/sop)
    mask_prob: float = 0.8  # of the chosen positions: replaced by [MASK] ...
    random_prob: float = 0.1  # ... by a random token; the rest keep their token

    def validate(self):
        def need(ok, flag, value, what):
            if not ok:
                raise DataError("--%s=%s is invalid: %s" % (flag, value, what))

        need(self.max_seq_length >= 8, "max_seq_length", self.max_seq_length, "use at least 8")
        need(1 <= self.max_predictions_per_seq <= self.max_seq_length, "max_predictions_per_seq",
             self.max_predictions_per_seq, "use 1..max_seq_length")
        need(0.0 < self.masked_lm_prob < 1.0, "masked_lm_prob", self.masked_lm_prob, "use a value in (0, 1)")
        need(0.0 <= self.short_seq_prob <= 1.0, "short_seq_prob", self.short_seq_prob, "use a value in [0, 1]")
        need(self.dupe_factor >= 1, "dupe_factor", self.dupe_factor, "use at least 1")
        need(self.sentence_objective in OBJECTIVES, "sentence_objective", self.sentence_objective,
             "choose one of " + ", ".join(OBJECTIVES))
        need(self.num_shards >= 0, "num_shards", self.num_shards, "use 0 (automatic) or a positive count")
        need(1 <= self.ngram_max <= 8, "ngram_max", self.ngram_max, "use 1..8")
        need(self.masking in MASKING_MODES, "masking", self.masking, "choose one of " + ", ".join(MASKING_MODES))
        need(self.segmenter in SEGMENTERS, "segmenter", self.segmenter, "choose one of " + ", ".join(SEGMENTERS))
        need(self.max_line_bytes >= 16, "max_line_bytes", self.max_line_bytes, "use at least 16")
        need(0.0 <= self.mask_prob and 0.0 <= self.random_prob and self.mask_prob + self.random_prob <= 1.0,
             "mask_prob", "%s/%s" % (self.mask_prob, self.random_prob), "mask_prob + random_prob must be <= 1")
        if self.segmenter == "jieba" and not self.whole_word_masking:
            raise DataError("--segmenter=jieba only matters with --whole_word_masking; add it or drop the segmenter")
        if self.wwm_dict and self.segmenter != "jieba":
            raise DataError("--wwm_dict=%s needs --segmenter=jieba (it is a jieba user dictionary)" % self.wwm_dict)
        return self

    def as_dict(self):
        return asdict(self)

    def fingerprint(self):
        """Hash of every option that changes the records (all of them)."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
