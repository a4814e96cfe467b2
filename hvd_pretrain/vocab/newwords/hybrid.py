"""New-word discovery end to end: count, score, apply rules, drop known words, rank.

Methods:
- stats:  statistical candidates above the thresholds;
- rules:  strings proposed by the propose patterns (count >= min_count), minus vetoes;
- hybrid: statistical candidates that pass the rule vetoes, plus rule proposals with
          statistical support (branching entropy >= rule_min_entropy on both sides).
          With jieba's dictionary as the base, the filters of segmented.py also apply:
          fragments of known words and phrases with a function word at an edge are
          removed, and a known word + unknown rest is replaced by the rest; the new
          words jieba's HMM finds in context join the candidates, and words it never
          yields as one piece are ranked last (hmmwords.py).
Words the base dictionary already knows are removed in every method.
"""

import dataclasses
import importlib.util
import math
import os
import resource
import time

import numpy as np

from hvd_pretrain.vocab.newwords import counting, hmmwords, ngrams, rules, scoring, segmented, textio
from hvd_pretrain.errors import ConfigError

METHODS = ("stats", "rules", "hybrid")
MIN_CJK_RATIO = 0.05


@dataclasses.dataclass
class NewWordsConfig:
    method: str = "hybrid"
    max_len: int = 4
    thresholds: scoring.Thresholds = dataclasses.field(default_factory=scoring.Thresholds)
    rule_min_entropy: float = 0.0        # 0: half of the resolved min_entropy
    rules_dirs: list = dataclasses.field(default_factory=lambda: [rules.DEFAULT_RULES_DIR])
    base_dict: str = "jieba"             # path, "jieba" (its dict.txt) or "" for none
    count_config: counting.CountConfig = dataclasses.field(default_factory=counting.CountConfig)
    min_cjk_ratio: float = MIN_CJK_RATIO
    veto_compounds: bool = True          # hybrid: drop phrases made of known words
    compound_keep_cohesion: float = 6.0  # ... but keep known word + char if this tightly bound
    segmented_filters: bool = True       # hybrid with base_dict jieba: the filters of segmented.py
    fragment_share: float = segmented.FRAGMENT_SHARE  # ... a fragment starts or ends inside a unit this often
    hmm_words: bool = True               # hybrid with base_dict jieba: the words of jieba's HMM (hmmwords.py)


@dataclasses.dataclass
class NewWordsResult:
    words: list                       # ranked scoring.Candidate
    method: str
    thresholds: scoring.Thresholds
    corpus: counting.CorpusStats
    input_files: list
    warnings: list
    stage_counts: dict                # how many candidates each stage kept or removed
    vetoes: dict                      # veto reason -> count
    timings: dict                     # seconds per stage
    memory: dict                      # peak RSS (bytes) of the parent and of the workers
    counting: dict                    # entries, prunes, budget


def jieba_dict_path():
    """Path of the dict.txt shipped inside the jieba package (without importing jieba)."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise textio.InputError("--base_dict=jieba needs the jieba package; pip install jieba")
    return os.path.join(list(spec.submodule_search_locations)[0], "dict.txt")


def load_base_dict(spec, only=None):
    """The set of words of a base dictionary (first whitespace-separated field per line).
    With `only`, just the words in it: the membership answers for those queries, without
    holding a 350k-word dictionary in memory."""
    if not spec:
        return set()
    path = jieba_dict_path() if spec == "jieba" else spec
    if not os.path.isfile(path):
        raise textio.InputError("base dictionary %s does not exist; pass --base_dict=PATH, jieba or none" % path)
    words = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if parts and (only is None or parts[0] in only):
                words.add(parts[0])
    return words


def validate(config):
    if config.method not in METHODS:
        raise ConfigError("method %r is not one of %s" % (config.method, ", ".join(METHODS)))
    if not 2 <= config.max_len <= 6:
        raise ConfigError("max_len %d is out of range; use 2..6" % config.max_len)
    if not 0.0 < config.fragment_share <= 1.0:
        raise ConfigError("--fragment_share=%g is out of range; use a share in (0, 1] (default %g)"
                          % (config.fragment_share, segmented.FRAGMENT_SHARE))


def _peak_rss(worker_peak):
    return {"parent_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "largest_worker_bytes": int(worker_peak)}


def _queries(words):
    """Every string whose dictionary membership the filters ask about: the words and
    both parts of each of their splits (for the known-compound veto)."""
    out = set(words)
    for w in words:
        out.update(w[:k] for k in range(1, len(w)))
        out.update(w[k:] for k in range(1, len(w)))
    return out


def _rule_candidates(proposals, selected, entropies, min_support, ruleset, known, vetoes, stage):
    out = []
    for word in selected:
        if word in known:
            stage["rules_known"] += 1
            continue
        reason = ruleset.veto(word)
        if reason:
            vetoes[reason] = vetoes.get(reason, 0) + 1
            continue
        left, right = entropies.get(word, (0.0, 0.0))
        if min_support is not None and min(left, right) < min_support:
            stage["rules_unsupported"] += 1
            continue
        out.append(scoring.Candidate(word=word, freq=proposals.count[word], left_entropy=left,
                                     right_entropy=right, rule=proposals.rule.get(word, ""), source="rules"))
    return out


def discover(input_files, config, log=lambda msg: None):
    """Run new-word discovery on `input_files`; return a NewWordsResult.

    With count_config.workers > 1 the workers start from a fork server, which imports
    the caller's main module: call this from under `if __name__ == "__main__":`.
    """
    validate(config)
    t0 = time.time()
    input_bytes = textio.check_input_files(input_files, config.count_config.reading)
    if input_bytes == 0:
        raise textio.InputError("input is empty: %s hold no bytes; pass files with Chinese text"
                                % ", ".join(input_files))
    use_rules = config.method in ("rules", "hybrid")
    ruleset = rules.RuleSet(rules.load_rules(config.rules_dirs)) if use_rules else rules.RuleSet([])
    if config.base_dict:  # fail before counting if the dictionary is missing
        path = jieba_dict_path() if config.base_dict == "jieba" else config.base_dict
        if not os.path.isfile(path):
            raise textio.InputError("base dictionary %s does not exist; pass --base_dict=PATH, jieba or none"
                                    % path)
    ccfg = dataclasses.replace(config.count_config, max_len=config.max_len)
    timings = {"setup": time.time() - t0}

    log("pass 1: counting n-grams of length 1..%d in %d file(s), %.1f MB"
        % (config.max_len, len(input_files), input_bytes / 1e6))
    pass1 = counting.count_pass1(input_files, ccfg, ruleset.proposer() if use_rules else None, input_bytes)
    timings["pass1"] = pass1.seconds
    worker_peak = pass1.worker_rss
    corpus = pass1.stats
    if corpus.nonspace_chars == 0:
        raise textio.InputError("input is empty: %s contain no text (%d lines, %d not UTF-8)"
                                % (", ".join(input_files), corpus.lines, corpus.bad_lines))
    warnings = []
    if corpus.bad_lines:
        warnings.append("skipped %d line(s) that are not valid UTF-8" % corpus.bad_lines)
    thresholds = scoring.resolve_thresholds(config.thresholds, corpus.cjk_chars)
    stage = {"pass1_entries": sum(len(c) for c, _ in pass1.tables.values()), "stats_candidates": 0,
             "stats_above_thresholds": 0, "stats_known": 0, "stats_vetoed": 0,
             "pass2_neighbour_pairs": 0, "rule_proposals": 0, "rules_known": 0, "rules_unsupported": 0}
    vetoes = {}
    words = []
    cjk_ratio = corpus.cjk_chars / corpus.nonspace_chars
    if cjk_ratio < config.min_cjk_ratio:
        warnings.append("only %.1f%% of the characters are CJK (need %.0f%%): this does not look like "
                        "Chinese text, so no words are proposed" % (100 * cjk_ratio, 100 * config.min_cjk_ratio))
    else:
        stats_words = []
        if config.method in ("stats", "hybrid"):
            candidates = counting.select_candidates(pass1, thresholds.min_count)
            pass1.tables = None  # free the pass-1 table before pass 2 allocates
            counting.release_memory()
            stage["stats_candidates"] = int(sum(len(c) for c in candidates.values()))
            log("pass 2: neighbours of %d candidates (min_count=%d)" % (stage["stats_candidates"], thresholds.min_count))
            stats2, timings["pass2"], worker_rss = counting.count_pass2(input_files, ccfg, candidates)
            worker_peak = max(worker_peak, worker_rss)
            stage["pass2_neighbour_pairs"] = int(sum(s.pairs for s in stats2.values()))
            t = time.time()
            scored = scoring.statistical_candidates(pass1, candidates, stats2, thresholds)
            stage["stats_above_thresholds"] = len(scored)
            timings["scoring"] = time.time() - t
        else:
            scored, candidates, stats2 = [], {}, {}
        selected = pass1.proposals.select(thresholds.min_count) if use_rules and pass1.proposals else []
        seg = hmm = None
        if config.method == "hybrid" and config.base_dict == "jieba" and config.segmented_filters:
            seg = segmented.JiebaSegmentation(jieba_dict_path())
            if config.hmm_words:
                t = time.time()
                log("jieba's HMM words: segmenting the input once more")
                hmm = hmmwords.count_files(seg, input_files, ccfg.reading, config.max_len, ccfg.chunk_bytes)
                scored += _hmm_candidates(hmm, {c.word for c in scored}, candidates, stats2, pass1, thresholds,
                                          stage)
                timings["hmm"] = time.time() - t
        known = load_base_dict(config.base_dict, only=_queries([c.word for c in scored] + selected))
        rests = {}
        if scored:
            t = time.time()
            for cand in scored:
                if cand.word in known:
                    stage["stats_known"] += 1
                    continue
                if config.method == "hybrid":
                    reason = ruleset.veto(cand.word)
                    if not reason and seg is not None:
                        rest = segmented.known_word_rest(cand.word, known)
                        if rest and not ruleset.veto(rest[0]):  # 锦江之星 stays: 之星 is no word
                            rests.setdefault(rest[0], rest[1])
                            reason = "compound:known_word_plus_rest"
                    if not reason and config.veto_compounds:
                        compound = ruleset.known_compound(cand.word, known)
                        if compound == "known_words" or (
                                compound and cand.cohesion < config.compound_keep_cohesion):
                            reason = "compound:" + compound
                    if reason:
                        vetoes[reason] = vetoes.get(reason, 0) + 1
                        stage["stats_vetoed"] += 1
                        continue
                    cand.rule = ruleset.exempt_rule(cand.word)
                stats_words.append(cand)
            if seg is not None:
                have = {c.word for c in stats_words}  # an HMM candidate may also be a rest
                rests = {r: side for r, side in rests.items() if r not in have}
                stats_words += _rest_candidates(rests, known, ruleset, candidates, stats2, pass1, thresholds, stage)
                stats_words = _segmented_filter(stats_words, seg, stats2, vetoes, stage, config.fragment_share)
            timings["filters"] = time.time() - t
        del stats2, candidates
        rule_words = []
        if use_rules and pass1.proposals is not None:
            t = time.time()
            stage["rule_proposals"] = len(pass1.proposals.count)
            support = None
            if config.method == "hybrid":
                support = config.rule_min_entropy or thresholds.min_entropy / 2
            rule_words = _rule_candidates(pass1.proposals, selected, pass1.proposals.entropies(),
                                          support, ruleset, known, vetoes, stage)
            timings["rules"] = time.time() - t
        if seg is not None and rule_words:
            rule_words = _segmented_filter(rule_words, seg, {}, vetoes, stage, config.fragment_share)
        words = _combine(stats_words, rule_words, thresholds)
        if hmm is not None:
            words = hmmwords.rank(words, hmm, seg)
            stage["hmm_share_low"] = sum(hmmwords.ranked_last(c) for c in words)
    timings["total"] = time.time() - t0
    return NewWordsResult(
        words=words, method=config.method, thresholds=thresholds, corpus=corpus,
        input_files=list(input_files), warnings=warnings, stage_counts=stage, vetoes=vetoes,
        timings=timings, memory=_peak_rss(worker_peak),
        counting={"max_entries": pass1.max_entries, "peak_entries": pass1.peak_entries,
                  "prunes": pass1.prunes, "input_bytes": input_bytes, "workers": ccfg.workers,
                  "chunk_bytes": ccfg.chunk_bytes})


def _lookup(word, candidates, stats2, pass1, tables):
    """The pass-2 statistics of `word` as a Candidate (score 0), or None when it is no
    pass-2 candidate. tables: the cohesion tables ({1: unigrams, n: (codes, freq)})."""
    n = len(word)
    codes = candidates.get(n)
    if codes is None or len(codes) == 0:
        return None
    i = int(np.searchsorted(codes, np.uint64(ngrams.hash_string(word))))
    st = stats2[n]
    if i >= len(codes) or st.words[i] != word:
        return None
    freq = int(st.freq[i])
    cohesion = float(scoring.cohesion_of(n, [word], np.array([freq]), tables, pass1.positions)[0])
    return scoring.Candidate(word=word, freq=freq, cohesion=cohesion, left_entropy=float(st.left_entropy[i]),
                             right_entropy=float(st.right_entropy[i]), index=(n, i))


def _tables(pass1, candidates, stats2):
    tables = {1: pass1.unigrams}
    tables.update({n: (candidates[n], stats2[n].freq) for n in candidates})
    return tables


def _rest_candidates(rests, known, ruleset, candidates, stats2, pass1, thresholds, stage):
    """Candidates for the unknown rests of `known word + rest` strings ({rest: side of the
    known word}): a rest is kept when its own cohesion and its branching entropy on the side
    away from the known word pass the thresholds (on the known word's side a word boundary
    is given by the known word)."""
    tables = _tables(pass1, candidates, stats2)
    out = []
    for rest, side in sorted(rests.items()):
        if rest in known or ruleset.veto(rest):
            continue
        cand = _lookup(rest, candidates, stats2, pass1, tables)
        if cand is None:
            continue
        free = cand.right_entropy if side == "left" else cand.left_entropy
        if cand.freq < thresholds.min_count or cand.cohesion < thresholds.min_cohesion or free < thresholds.min_entropy:
            continue
        cand.score = float(scoring.score(cand.freq, cand.cohesion, free))
        out.append(cand)
    stage["rests_proposed"] = len(out)
    return out


def _hmm_candidates(hmm, have, candidates, stats2, pass1, thresholds, stage):
    """Candidates for the pieces jieba's HMM yields at least min_count times that are not
    among `have` and whose cohesion passes the threshold (source 'hmm'). jieba's HMM vouches
    for their boundaries in context, not for the bond of their characters: the cohesion
    threshold still rejects characters that meet by chance, while the freedom enters the
    score floored at its threshold, so they rank among the words that just pass it."""
    tables = _tables(pass1, candidates, stats2)
    out = []
    for word in hmm.select(thresholds.min_count):
        if word in have:
            continue
        cand = _lookup(word, candidates, stats2, pass1, tables)
        if cand is None or cand.cohesion < thresholds.min_cohesion:
            continue
        cand.source = "hmm"
        cand.score = float(scoring.score(cand.freq, cand.cohesion, max(cand.freedom, thresholds.min_entropy)))
        out.append(cand)
    stage["hmm_pieces"] = len(hmm.count)
    stage["hmm_proposed"] = len(out)
    stage["hmm_floor"] = hmm.floor
    return out


def _segmented_filter(words, seg, stats2, vetoes, stage, share=segmented.FRAGMENT_SHARE):
    """`words` without the fragments (start or end share >= `share`) and function-edge
    phrases of segmented.py."""
    seg.load_tags(piece for cand in words for piece in seg.cut(cand.word))
    edges = {}
    for cand in words:
        if cand.index is not None:
            n, i = cand.index
            left = stats2[n].neighbours(i, "left")
            edges[cand.word] = (segmented.crossings(seg, cand.word, left, "left"),
                                segmented.crossings(seg, cand.word, stats2[n].neighbours(i, "right"), "right"),
                                segmented.number_count(left))
    seg.load_tags(piece for side in edges.values() for _, pieces in side[:2] for piece, _ in pieces)  # one read of dict.txt
    out = []
    for cand in words:
        reason = segmented.function_edge(seg, cand.word)
        if not reason and cand.word in edges:
            left, right, numbers = edges[cand.word]
            if segmented.crossing_share(seg, *left, "left", numbers) >= share:
                reason = "fragment:start"
            elif segmented.crossing_share(seg, *right, "right", word=cand.word) >= share:
                reason = "fragment:end"
        if reason:
            vetoes[reason] = vetoes.get(reason, 0) + 1
            stage["segmented_vetoed"] = stage.get("segmented_vetoed", 0) + 1
            continue
        out.append(cand)
    return out


def _combine(stats_words, rule_words, thresholds):
    """One ranked list. A word found both ways keeps its statistics and gets the rule name."""
    by_word = {c.word: c for c in stats_words}
    for c in rule_words:
        if c.word in by_word:
            by_word[c.word].source = "both"
            by_word[c.word].rule = by_word[c.word].rule or c.rule
        else:
            # Rule words are scored as if their cohesion were just at the threshold: the
            # pattern stands in for the cohesion that long strings cannot be measured for.
            freedom = c.freedom if not math.isnan(c.freedom) else 0.0
            c.score = float(scoring.score(c.freq, thresholds.min_cohesion, freedom)) if freedom > 0 \
                else math.log(max(c.freq, 1))
            by_word[c.word] = c
    return sorted(by_word.values(), key=lambda c: (-c.score, -c.freq, c.word))
