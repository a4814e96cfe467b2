"""Rule library for new-word discovery: word-shape vetoes and domain pattern files.

A rule directory holds `*.rules` text files. Each non-blank line that does not start
with `#` is `ACTION NAME ARGUMENT`, separated by whitespace:

    edge     function   的 了 着 过 是 在 ...   candidates may not begin or end with these
    propose  drug       [\\u4e00-\\u9fff]{1,6}(?:霉素|酸钠)   matches propose candidates
    allow    model_no   [A-Z]{1,4}-?\\d{2,5}    full matches are exempt from shape vetoes
    veto     ordinal    ^第[一二三四五六七八九十]+$   candidates it matches (re.search) are removed

Shape vetoes, always on: whitespace anywhere; and, unless a propose or allow rule fully
matches the candidate, punctuation, digits-only, Latin-only, or no CJK character at all.

A propose match is tried at every start inside the match (the pattern must still match
the shorter string), so the rule gives the shape and the counts choose the left boundary.
"""

import collections
import dataclasses
import math
import os
import re
import unicodedata

from hvd_pretrain.vocab.newwords import textio
from hvd_pretrain.errors import DataError

ACTIONS = ("edge", "propose", "allow", "veto")
DEFAULT_RULES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rules")
DOMINANCE = 0.8


class RuleFileError(DataError):
    """A rule file or directory is malformed; the message names file and line."""


@dataclasses.dataclass
class Rule:
    action: str
    name: str
    argument: str
    where: str                  # "file:line"
    pattern: object = None      # compiled regex for propose/allow/veto


def parse_rule_file(path):
    """Parse one rule file; raise RuleFileError naming the file and line on any problem."""
    rules = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise RuleFileError("%s: not UTF-8 text (%s)" % (path, e.reason)) from e
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = "%s:%d" % (path, lineno)
        parts = text.split(None, 2)
        if len(parts) < 3:
            raise RuleFileError("%s: expected 'ACTION NAME ARGUMENT', got %r" % (where, text))
        action, name, argument = parts
        if action not in ACTIONS:
            raise RuleFileError("%s: unknown action %r; use one of %s" % (where, action, ", ".join(ACTIONS)))
        rule = Rule(action=action, name=name, argument=argument, where=where)
        if action != "edge":
            try:
                rule.pattern = re.compile(argument)
            except re.error as e:
                raise RuleFileError("%s: bad regular expression %r: %s" % (where, argument, e)) from e
            if action == "propose" and rule.pattern.fullmatch(""):
                raise RuleFileError("%s: propose pattern %r matches the empty string" % (where, argument))
        rules.append(rule)
    return rules


def load_rules(dirs):
    """All rules of the `*.rules` files in `dirs` (sorted by file name within a directory)."""
    rules = []
    for d in dirs:
        if not os.path.isdir(d):
            raise RuleFileError("rules directory %s does not exist" % d)
        files = sorted(f for f in os.listdir(d) if f.endswith(".rules"))
        if not files:
            raise RuleFileError("rules directory %s has no *.rules files" % d)
        for name in files:
            rules.extend(parse_rule_file(os.path.join(d, name)))
    return rules


def _is_punct(ch):
    return unicodedata.category(ch)[0] in "PSZC"


class RuleSet:
    """Vetoes and exemptions compiled from a list of rules."""

    def __init__(self, rules):
        self.rules = list(rules)
        self.edge = {}
        for r in self.rules:
            if r.action == "edge":
                for ch in r.argument.replace(" ", "").replace("\t", ""):
                    self.edge.setdefault(ch, r.name)
        self.exempt = [r for r in self.rules if r.action in ("propose", "allow")]
        self.vetoes = [r for r in self.rules if r.action == "veto"]
        self.proposals = [r for r in self.rules if r.action == "propose"]

    def exempt_rule(self, word):
        """Name of the first propose/allow rule that fully matches `word`, or ''."""
        for r in self.exempt:
            if r.pattern.fullmatch(word):
                return r.name
        return ""

    @staticmethod
    def known_compound(word, known):
        """'' or why `word` is a phrase of known words rather than a new word:
        'known_words' when it splits into two known words of two or more characters
        (经济发展 = 经济 + 发展); 'known_word_plus_char' when it is a known word of two or
        more characters plus one known character (记者 + 刘, 副 + 主任)."""
        for k in range(1, len(word)):
            left, right = word[:k], word[k:]
            if left in known and right in known:
                if len(left) >= 2 and len(right) >= 2:
                    return "known_words"
                if max(len(left), len(right)) >= 2:
                    return "known_word_plus_char"
        return ""

    def veto(self, word):
        """Why `word` is rejected ('' when it is not): 'shape:...', 'edge:NAME', 'veto:NAME'."""
        if any(ch.isspace() for ch in word):
            return "shape:space"
        if word[0] in self.edge:
            return "edge:" + self.edge[word[0]]
        if word[-1] in self.edge:
            return "edge:" + self.edge[word[-1]]
        for r in self.vetoes:
            if r.pattern.search(word):
                return "veto:" + r.name
        if not self.exempt_rule(word):
            if any(_is_punct(ch) for ch in word):
                return "shape:punctuation"
            if all(ch.isdigit() for ch in word):
                return "shape:digits"
            if all(ch.isascii() and ch.isalpha() or "\uff21" <= ch <= "\uff5a" for ch in word):
                return "shape:latin"
            if not any(textio.is_cjk_char(ch) for ch in word):
                return "shape:no_cjk"
        return ""

    def proposer(self):
        return Proposer([(r.name, r.pattern) for r in self.proposals]) if self.proposals else None


def _neighbour(ch):
    """Same neighbour classes as pass 2: CJK itself, one symbol per digit/Latin class,
    '' (boundary) otherwise."""
    if textio.is_cjk_char(ch):
        return ch
    if ch.isdigit():
        return "0"
    if ch.isascii() and ch.isalpha() or "\uff21" <= ch <= "\uff5a":
        return "a"
    return ""


class ProposalCounts:
    """Counts of rule-proposed strings and of their neighbour characters ('' = boundary)."""

    def __init__(self):
        self.count = collections.Counter()
        self.left = collections.Counter()
        self.right = collections.Counter()
        self.rule = {}

    def update(self, other):
        self.count.update(other.count)
        self.left.update(other.left)
        self.right.update(other.right)
        for word, name in other.rule.items():
            self.rule.setdefault(word, name)

    def prune(self, floor):
        drop = {w for w, c in self.count.items() if c < floor}
        if not drop:
            return
        for w in drop:
            del self.count[w]
            self.rule.pop(w, None)
        for side in (self.left, self.right):
            for key in [k for k in side if k[0] in drop]:
                del side[key]

    def entropies(self):
        """{word: (left entropy, right entropy)} with the same boundary convention as pass 2."""
        out = {}
        for side_index, side in enumerate((self.left, self.right)):
            groups = collections.defaultdict(list)
            for (word, ch), c in side.items():
                groups[word].append((ch, c))
            for word, items in groups.items():
                total = sum(c for _, c in items)
                h = 0.0
                for ch, c in items:
                    h += (c / total) * math.log(total) if ch == "" else -(c / total) * math.log(c / total)
                out.setdefault(word, [0.0, 0.0])[side_index] = h
        return {w: tuple(v) for w, v in out.items()}

    def select(self, min_count, dominance=DOMINANCE):
        """Proposed strings with count >= min_count whose left boundary is a real one:
        not dominated by a longer proposal that contains them, and dominating the shorter
        proposal they contain (if any)."""
        longest_ext = collections.Counter()
        for w, c in self.count.items():
            if len(w) > 1:
                longest_ext[w[1:]] = max(longest_ext[w[1:]], c)
        keep = []
        for w, c in self.count.items():
            if len(w) < 2 or c < min_count or longest_ext.get(w, 0) >= dominance * c:
                continue
            shorter = self.count.get(w[1:], 0)
            if shorter and c < dominance * shorter:
                continue
            keep.append(w)
        return keep


class Proposer:
    """Runs the propose patterns over text; picklable, used inside the pass-1 workers."""

    def __init__(self, patterns):
        self.patterns = patterns

    def empty(self):
        return ProposalCounts()

    def count_lines(self, lines):
        counts = ProposalCounts()
        text = "\n".join(lines)
        for name, pattern in self.patterns:
            for m in pattern.finditer(text):
                start, end = m.span()
                right = _neighbour(text[end]) if end < len(text) else ""
                for s in range(start, end):
                    if s > start and not pattern.fullmatch(text, s, end):
                        continue
                    word = text[s:end]
                    left = _neighbour(text[s - 1]) if s > 0 else ""
                    counts.count[word] += 1
                    counts.left[(word, left)] += 1
                    counts.right[(word, right)] += 1
                    counts.rule.setdefault(word, name)
        return counts
