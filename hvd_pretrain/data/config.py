"""DataConfig: every option of pre-training data creation, validated in one place."""

import hashlib
import json
from dataclasses import dataclass

from hvd_pretrain.configs import Config, option
from hvd_pretrain.data.segmenter import CALLABLE_SPEC
from hvd_pretrain.errors import DataError

OBJECTIVES = ("nsp", "sop", "none")
MASKING_MODES = ("static", "dynamic")
SEGMENTERS = ("none", "jieba", "pkuseg", "ref_file")  # or MODULE:FUNCTION (see data/segmenter.py)


@dataclass(frozen=True)
class DataConfig(Config):
    max_seq_length: int = option(128, "Tokens per sequence, [CLS]/[SEP] included (the data and the model must"
                                 " agree).")
    max_predictions_per_seq: int = option(20, "At most this many masked positions per sequence (the data and the"
                                          " trainer must agree).")
    masked_lm_prob: float = option(0.15, "Fraction of tokens masked.")
    short_seq_prob: float = option(0.1, "Probability of a shorter target length.")
    dupe_factor: int = option(10, "Passes over the input, each with other splits and masks (Google's default, 10).")
    sentence_objective: str = option("nsp", "Sentence-pair objective: next sentence (BERT), sentence order"
                                     " (ALBERT), or none (one segment).", choices=OBJECTIVES)
    seed: int = option(12345, "Random seed; the output depends on it and not on --num_workers.")
    num_shards: int = option(0, "Output shards (0: one per ~32 MB of text, at least 8). Use at least the number of"
                             " training ranks.")
    whole_word_masking: bool = option(False, "Mask all tokens of a word together.")
    ngram_max: int = option(1, "N-gram masking: spans of up to N words, p(n) ∝ 1/n (1: off).")
    masking: str = option("static", "static: mask now (Google's format); dynamic: store unmasked, mask in the input"
                          " pipeline every epoch.", choices=MASKING_MODES)
    segmenter: str = option("none", "Word segmenter for Chinese whole-word masking: none, jieba, pkuseg, ref_file"
                            " (word boundaries from --ref_file) or MODULE:FUNCTION (a callable from a string to"
                            " its list of words).")
    wwm_dict: str = option("", "User dictionary of the segmenter (jieba's format, or one word per line for"
                           " pkuseg); alone, implies --segmenter=jieba --whole_word_masking.")
    ref_file: str = option("", "Whole-word references in Hugging Face run_mlm_wwm's format: per non-blank input"
                           " line, a JSON list of the token positions ([CLS] = 0) that continue a word; implies"
                           " --segmenter=ref_file --whole_word_masking.")
    pkuseg_model: str = option("", "--segmenter=pkuseg's model: a directory of a trained pkuseg model, or a name"
                               " pkuseg fetches on first use (news, web, medicine, tourism, ...); empty: the"
                               " package's default model.")
    max_line_bytes: int = option(100_000, "Longer lines are skipped (and counted in the manifest).")
    packing: bool = option(False, "Fill each sequence with more text. --sentence_objective=none: whole sentences"
                           " of consecutive documents, separated by [SEP]. nsp/sop: several pairs of the same label,"
                           " [CLS] A1 [SEP] B1 [SEP] A2 [SEP] B2 [SEP] ..., so the sequence's label holds for each"
                           " pair.")
    mask_prob: float = option(0.8, "Of the chosen positions, the fraction replaced by [MASK] (80/10/10 rule).")
    random_prob: float = option(0.1, "Of the chosen positions, the fraction replaced by a random token; the rest"
                                " keep their token.")
    eval_fraction: float = option(0.0, "Hold out this fraction of whole documents (chosen by a hash of their text"
                                  " and --seed) into eval shards under <out>/eval (0: no eval split).")
    eval_documents: int = option(0, "Hold out this many whole documents into eval shards instead of a fraction"
                                 " (0: off).")

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
        need(self.segmenter in SEGMENTERS or CALLABLE_SPEC.match(self.segmenter), "segmenter", self.segmenter,
             "choose one of %s, or MODULE:FUNCTION" % ", ".join(SEGMENTERS))
        need(self.max_line_bytes >= 16, "max_line_bytes", self.max_line_bytes, "use at least 16")
        need(0.0 <= self.mask_prob and 0.0 <= self.random_prob and self.mask_prob + self.random_prob <= 1.0,
             "mask_prob", "%s/%s" % (self.mask_prob, self.random_prob), "mask_prob + random_prob must be <= 1")
        need(0.0 <= self.eval_fraction < 1.0, "eval_fraction", self.eval_fraction, "use a value in [0, 1)")
        need(self.eval_documents >= 0, "eval_documents", self.eval_documents, "use 0 (off) or a positive count")
        if self.eval_fraction and self.eval_documents:
            raise DataError("--eval_fraction=%g and --eval_documents=%d both set; give one"
                            % (self.eval_fraction, self.eval_documents))
        if self.segmenter != "none" and not self.whole_word_masking:
            raise DataError("--segmenter=%s only matters with --whole_word_masking; add it or drop the segmenter"
                            % self.segmenter)
        if self.wwm_dict and self.segmenter not in ("jieba", "pkuseg"):
            raise DataError("--wwm_dict=%s needs --segmenter=jieba or pkuseg (it is their user dictionary)"
                            % self.wwm_dict)
        if bool(self.ref_file) != (self.segmenter == "ref_file"):
            raise DataError("--ref_file and --segmenter=ref_file go together: pass --ref_file=PATH (a reference"
                            " file made from the same input) with --segmenter=ref_file or alone")
        return self

    def fingerprint(self):
        """Hash of every option that changes the records (all of them). Options added later count only when
        set, so data made before they existed keeps its fingerprint."""
        values = self.to_dict()
        for key in ("ref_file", "pkuseg_model", "eval_fraction", "eval_documents"):
            if values[key] == type(self).__dataclass_fields__[key].default:
                del values[key]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
