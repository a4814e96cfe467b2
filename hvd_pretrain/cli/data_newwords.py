"""hvd-data newwords: discover new Chinese words in a raw corpus for whole-word masking.

    hvd-data newwords --input_files=corpus.txt --method=hybrid --out=runs/x/newwords

writes newwords.tsv (ranked), userdict.txt (for `hvd-data create --wwm_dict=...`),
report.md and report.json. Thresholds left at 0 are derived from the corpus size.
"""

import glob
import os
import sys

from absl import flags

from hvd_pretrain.cli import options
from hvd_pretrain.inputs import InputConfig
from hvd_pretrain.vocab.newwords import counting, evaluation, hybrid, report, rules, scoring, segmented, textio
from hvd_pretrain.cli.entry import entry
from hvd_pretrain.errors import ConfigError, DataError


def define_flags(fv):
    flags.DEFINE_list("input_files", [], "Corpus files (comma-separated, globs allowed): UTF-8 text, one sentence or "
                      "paragraph per line, or JSON Lines or Parquet; compressed or not.",
                      flag_values=fv)
    options.define(InputConfig, fv)
    flags.DEFINE_enum("method", "hybrid", hybrid.METHODS, "stats, rules or hybrid (statistics filtered "
                      "by rules, plus rule proposals with statistical support).", flag_values=fv)
    flags.DEFINE_string("out", "", "Output directory.", flag_values=fv)
    flags.DEFINE_integer("max_len", 4, "Longest statistical candidate, 2..6.", flag_values=fv)
    flags.DEFINE_integer("min_count", 0, "Minimum frequency; 0: 5 per million CJK characters scaled by "
                         "sqrt(size / 1M), at least 5.", flag_values=fv)
    flags.DEFINE_float("min_cohesion", 0.0, "Minimum cohesion (PMI of the weakest split, nats); "
                       "0: 2.0-3.0 depending on corpus size.", flag_values=fv)
    flags.DEFINE_float("min_entropy", 0.0, "Minimum of left/right branching entropy (nats); 0: 1.0 "
                       "plus 0.1 per decade above 1M CJK characters.", flag_values=fv)
    flags.DEFINE_float("rule_min_entropy", 0.0, "Hybrid: minimum branching entropy of rule proposals; "
                       "0: half of min_entropy.", flag_values=fv)
    flags.DEFINE_string("rules_dir", rules.DEFAULT_RULES_DIR, "Directory of *.rules files.", flag_values=fv)
    flags.DEFINE_list("extra_rules_dirs", [], "More directories of *.rules files (your domain patterns).",
                      flag_values=fv)
    flags.DEFINE_string("base_dict", "jieba", "Known words to remove: 'jieba' (its dict.txt), 'none', or "
                        "a file with one word per line (first field).", flag_values=fv)
    flags.DEFINE_boolean("veto_compounds", True, "Hybrid: drop candidates that split into two known words, "
                         "or into a known word and one character (unless cohesion >= "
                         "--compound_keep_cohesion).", flag_values=fv)
    flags.DEFINE_boolean("segmented_filters", True, "Hybrid with --base_dict=jieba: drop fragments of known words"
                         " and phrases by jieba's segmentation of each candidate and its neighbours.", flag_values=fv)
    flags.DEFINE_float("fragment_share", segmented.FRAGMENT_SHARE, "Hybrid with --segmented_filters: a candidate"
                       " is a fragment when at least this share of its occurrences start or end inside a word"
                       " jieba knows (0 < share <= 1; lower drops more).", flag_values=fv)
    flags.DEFINE_boolean("hmm_words", True, "Hybrid with --segmented_filters: add the new words jieba's HMM"
                         " finds in context, and rank words it never yields as one piece last (one more pass"
                         " over the input, in the main process).", flag_values=fv)
    flags.DEFINE_float("compound_keep_cohesion", 6.0, "Hybrid: a known word plus one character is kept "
                       "when its cohesion reaches this (e.g. a name such as 杜拉拉).", flag_values=fv)
    flags.DEFINE_integer("workers", min(2, os.cpu_count() or 1), "Counting processes (1: in process).",
                         flag_values=fv)
    flags.DEFINE_float("chunk_mb", 0.25, "Input chunk per task, MB.", flag_values=fv)
    flags.DEFINE_integer("memory_budget_mb", 0, "Pass-1 count table budget; 0: 4x the input size, "
                         "at least 48 MB. Rare n-grams are pruned to stay inside it.", flag_values=fv)
    flags.DEFINE_string("reference", "", "Optional segmented text (word/tag or space-separated words) to "
                        "score the output against: precision@k, by length, recall.", flag_values=fv)
    flags.DEFINE_integer("recall_min_freq", 10, "Recall counts reference words seen at least this often.",
                         flag_values=fv)
    flags.DEFINE_boolean("quiet", False, "Only print errors and warnings.", flag_values=fv)


def expand_input_files(items):
    """Comma-separated items; each may be a glob. A glob that matches nothing is an error."""
    files = []
    for item in items:
        if any(ch in item for ch in "*?["):
            matched = sorted(glob.glob(item))
            if not matched:
                raise textio.InputError("--input_files=%s matches no file" % item)
            files.extend(matched)
        else:
            files.append(item)
    return files


def config_from_flags(fv):
    if not fv.input_files:
        raise ConfigError("--input_files is required")
    if not fv.out:
        raise ConfigError("--out is required (output directory)")
    if not 2 <= fv.max_len <= 6:
        raise ConfigError("--max_len=%d is out of range; use 2..6" % fv.max_len)
    if fv.chunk_mb <= 0 or fv.workers < 1:
        raise ConfigError("--chunk_mb must be > 0 and --workers >= 1")
    base = "" if fv.base_dict.lower() == "none" else fv.base_dict
    reading = InputConfig(**options.read(InputConfig, fv, {f.name for f, _, _ in InputConfig.options()})).validate()
    return hybrid.NewWordsConfig(
        method=fv.method, max_len=fv.max_len,
        thresholds=scoring.Thresholds(fv.min_count, fv.min_cohesion, fv.min_entropy),
        rule_min_entropy=fv.rule_min_entropy, rules_dirs=[fv.rules_dir] + list(fv.extra_rules_dirs),
        base_dict=base, veto_compounds=fv.veto_compounds, compound_keep_cohesion=fv.compound_keep_cohesion,
        segmented_filters=fv.segmented_filters, fragment_share=fv.fragment_share, hmm_words=fv.hmm_words,
        count_config=counting.CountConfig(workers=fv.workers, chunk_bytes=int(fv.chunk_mb * (1 << 20)),
                                          memory_budget_bytes=fv.memory_budget_mb << 20, reading=reading))


@entry
def main(argv):
    fv = flags.FlagValues()
    define_flags(fv)
    prog = argv[0] if argv else "hvd-data newwords"
    if any(a in ("-h", "--help", "-help", "--helpshort") for a in argv[1:]):
        print("usage: %s --input_files=F[,F...] --method=stats|rules|hybrid --out=DIR [flags]\n" % prog)
        print(__doc__.strip() + "\n")
        print(fv.module_help(sys.modules[__name__]) if fv.flags_by_module_dict() else fv.get_help())
        return 0
    try:
        rest = fv(list(argv))
    except flags.Error as e:
        raise ConfigError("%s: %s" % (prog, e)) from None
    if len(rest) > 1:
        raise ConfigError("%s: unexpected arguments %s; every option is a --flag" % (prog, " ".join(rest[1:])))
    log = (lambda msg: None) if fv.quiet else (lambda msg: print(msg, flush=True))
    try:
        config = config_from_flags(fv)
        result = hybrid.discover(expand_input_files(fv.input_files), config, log=log)
        quality = None
        if fv.reference:
            if not os.path.isfile(fv.reference):
                raise textio.InputError("--reference=%s does not exist" % fv.reference)
            token_counts, lexicon = evaluation.build_reference(fv.reference)
            quality = evaluation.quality(result.words, token_counts, lexicon, hybrid.load_base_dict(config.base_dict),
                                         fv.recall_min_freq, name=fv.reference)
        paths = report.write_outputs(fv.out, result, quality)
    except OSError as e:
        raise DataError("%s: %s" % (getattr(e, "filename", "") or "output", e.strerror or e)) from None
    for w in result.warnings:
        print("warning: %s" % w, file=sys.stderr)
    log("%d new words (%s) in %.1f s; ranked list %s, jieba user dictionary %s, report %s"
        % (len(result.words), config.method, result.timings["total"], paths["tsv"], paths["userdict"],
           paths["report_md"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(["hvd-data newwords"] + sys.argv[1:]))
