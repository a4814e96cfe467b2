"""Outputs of new-word discovery: ranked TSV, jieba user dictionary, report (Markdown + JSON).

The report also carries a memory model: how much RAM a run on a 1 GB corpus needs with
the same settings, extrapolated from the parts this run measured.
"""

import collections
import dataclasses
import json
import math
import os

from hvd_pretrain.vocab.newwords import counting

TSV_NAME = "newwords.tsv"
USERDICT_NAME = "userdict.txt"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
TSV_COLUMNS = ("word", "freq", "cohesion", "left_entropy", "right_entropy", "rule", "source", "score", "hmm_share")
GB = 1 << 30
MB = 1 << 20


def _fmt(x):
    return "" if isinstance(x, float) and math.isnan(x) else ("%.4f" % x if isinstance(x, float) else str(x))


def write_tsv(path, words):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(TSV_COLUMNS) + "\n")
        for c in words:
            f.write("\t".join(_fmt(getattr(c, col)) for col in TSV_COLUMNS) + "\n")


def read_tsv(path):
    """The rows of a ranked TSV as dicts (for tools and tests)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def write_userdict(path, words):
    """One word per line. With no frequency given, jieba computes for each word the
    frequency that keeps it in one piece, which is what whole-word masking needs."""
    with open(path, "w", encoding="utf-8") as f:
        for c in words:
            f.write(c.word + "\n")


def counts_by_length(words):
    return dict(sorted(collections.Counter(len(c.word) for c in words).items()))


def memory_model(result, target_bytes=GB):
    """Estimated peak RSS (bytes) of the parent and the workers for a `target_bytes`
    corpus, from this run's measurements; linear in corpus size where it grows."""
    c = result.counting
    scale = target_bytes / max(c["input_bytes"], 1)
    cfg = counting.CountConfig(memory_budget_bytes=0)
    pass1_budget = counting.max_entries_for(cfg, target_bytes) * counting.BYTES_PER_ENTRY * counting.MERGE_OVERHEAD
    candidates = result.stage_counts.get("stats_candidates", 0) * scale
    pairs = result.stage_counts.get("pass2_neighbour_pairs", 0) * scale
    # per candidate: hash 8, count 8, string about 90, neighbour pairs 12 each, doubled for merges
    pass2 = candidates * (8 + 8 + 90) + pairs * counting.BYTES_PER_ENTRY * counting.MERGE_OVERHEAD
    base = 120 * MB
    worker = result.memory.get("largest_worker_bytes", 0) or 150 * MB
    # per candidate in each worker: its hash 8, hash index 4 x 16, seen flag 1
    workers = c["workers"] * (worker + candidates * 73) if c["workers"] > 1 else 0
    parent = base + max(pass1_budget, pass2)
    return {"corpus_bytes": target_bytes, "pass1_table_bytes": int(pass1_budget), "pass2_bytes": int(pass2),
            "parent_bytes": int(parent), "workers_bytes": int(workers), "total_bytes": int(parent + workers)}


def report_dict(result, quality=None):
    words = result.words
    corpus = dataclasses.asdict(result.corpus)
    out = {
        "method": result.method, "input_files": result.input_files, "corpus": corpus,
        "thresholds": dataclasses.asdict(result.thresholds), "words": len(words),
        "counts_by_length": counts_by_length(words),
        "top_words": [{"word": c.word, "freq": c.freq, "score": round(c.score, 3), "rule": c.rule}
                      for c in words[:30]],
        "stages": result.stage_counts, "vetoes": result.vetoes, "warnings": result.warnings,
        "timings_sec": {k: round(v, 3) for k, v in result.timings.items()},
        "mb_per_min": round(result.corpus.bytes / MB / max(result.timings["total"], 1e-9) * 60, 1),
        "memory": result.memory, "counting": result.counting,
        "memory_model_1gb": memory_model(result),
    }
    if quality:
        out["quality"] = quality
    return out


def render_markdown(rep):
    lines = ["# New words: %s" % rep["method"], ""]
    corpus = rep["corpus"]
    lines.append("Input: %d file(s), %.1f MB, %d lines (%d skipped: not UTF-8), %d CJK characters."
                 % (len(rep["input_files"]), corpus["bytes"] / MB, corpus["lines"], corpus["bad_lines"],
                    corpus["cjk_chars"]))
    t = rep["thresholds"]
    lines.append("Thresholds: min_count=%d, min_cohesion=%.2f, min_entropy=%.2f."
                 % (t["min_count"], t["min_cohesion"], t["min_entropy"]))
    for w in rep["warnings"]:
        lines.append("")
        lines.append("WARNING: " + w)
    lines += ["", "## Words by length", "", "| length | words |", "| --- | --- |"]
    lines += ["| %s | %d |" % (n, k) for n, k in rep["counts_by_length"].items()]
    lines += ["", "Total: %d words." % rep["words"], "", "## Top words", ""]
    lines.append("  ".join("%s(%d)" % (w["word"], w["freq"]) for w in rep["top_words"]) or "(none)")
    q = rep.get("quality")
    if q:
        lines += ["", "## Quality against %s" % q["reference"], ""]
        lines.append("precision@k: " + ", ".join("@%s %s" % (k, "-" if v is None else "%.3f" % v)
                                                  for k, v in q["precision_at"].items()))
        lines += ["", "| length | correct | words | precision |", "| --- | --- | --- | --- |"]
        for n, (hit, total) in q["precision_by_length"].items():
            lines.append("| %s | %d | %d | %.3f |" % (n, hit, total, hit / total if total else 0))
        if q.get("recall") is not None:
            lines.append("")
            lines.append("recall of reference words seen >= %d times: %.3f (%d words)"
                         % (q["recall_min_freq"], q["recall"], q["recall_targets"]))
    mem, model = rep["memory"], rep["memory_model_1gb"]
    lines += ["", "## Time and memory", ""]
    lines.append("Time: %s s total (%s), %.1f MB/min." % (
        rep["timings_sec"]["total"], ", ".join("%s %s s" % kv for kv in rep["timings_sec"].items() if kv[0] != "total"),
        rep["mb_per_min"]))
    lines.append("Peak RSS: parent %.0f MB, largest worker %.0f MB; pass-1 table peak %d entries "
                 "(cap %d), %d prune(s)." % (mem["parent_bytes"] / MB, mem["largest_worker_bytes"] / MB,
                                            rep["counting"]["peak_entries"], rep["counting"]["max_entries"],
                                            len(rep["counting"]["prunes"])))
    lines.append("Memory model for a 1 GB corpus: pass-1 table %.1f GB, pass 2 %.1f GB, parent %.1f GB, "
                 "workers %.1f GB, total %.1f GB." % tuple(model[k] / GB for k in (
                     "pass1_table_bytes", "pass2_bytes", "parent_bytes", "workers_bytes", "total_bytes")))
    return "\n".join(lines) + "\n"


def write_outputs(out_dir, result, quality=None):
    """Write TSV, user dictionary and report into `out_dir`; return {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"tsv": os.path.join(out_dir, TSV_NAME), "userdict": os.path.join(out_dir, USERDICT_NAME),
             "report_md": os.path.join(out_dir, REPORT_MD), "report_json": os.path.join(out_dir, REPORT_JSON)}
    write_tsv(paths["tsv"], result.words)
    write_userdict(paths["userdict"], result.words)
    rep = report_dict(result, quality)
    with open(paths["report_json"], "w", encoding="utf-8") as f:
        json.dump(rep, f, ensure_ascii=False, indent=1)
    with open(paths["report_md"], "w", encoding="utf-8") as f:
        f.write(render_markdown(rep))
    return paths
