"""Rule library: rule files, vetoes, proposals and their boundaries."""

import random

import pytest

from hvd_pretrain.vocab.newwords import rules
from test_newwords_support import excerpt, insert_at_random


@pytest.fixture(scope="module")
def shipped():
    return rules.RuleSet(rules.load_rules([rules.DEFAULT_RULES_DIR]))


def test_shipped_rule_files_load_and_cover_the_domains(shipped):
    names = {r.name for r in shipped.rules}
    assert {"function", "drug_antibiotic", "statute", "institution", "model_number"} <= names
    assert shipped.proposals and shipped.vetoes and "的" in shipped.edge


@pytest.mark.parametrize("word,reason", [
    ("的经济", "edge:function"), ("发展了", "edge:function"), ("三条", "veto:numeral_measure"),
    ("第十五", "veto:ordinal"), ("书的内容", "veto:inner_particle"), ("服务很好", "veto:inner_particle"), ("经济，", "shape:punctuation"), ("１９９８", "shape:digits"),
    ("abc", "shape:latin"), ("中 国", "shape:space"), ("再就业", ""), ("RTX-3080", ""), ("iPhone13", ""),
])
def test_vetoes(shipped, word, reason):
    assert shipped.veto(word) == reason


def test_known_compounds_are_recognised(shipped):
    known = {"经济", "发展", "增长", "记者", "刘", "就业"}
    assert shipped.known_compound("经济发展", known) == "known_words"
    assert shipped.known_compound("记者刘", known) == "known_word_plus_char"
    assert shipped.known_compound("经济特区", known) == ""
    assert shipped.known_compound("再就业", known) == ""     # 再 is not in this dictionary
    assert shipped.known_compound("刘记", known) == ""       # no part of two characters


@pytest.mark.parametrize("content,message", [
    ("propose  drug  [\\u4e00-\\u9fff]{1,5}霉素\nprepose  x  abc\n", ":2: unknown action 'prepose'"),
    ("# comment\n\nveto  broken  ([abc\n", ":3: bad regular expression"),
    ("edge  function\n", ":1: expected 'ACTION NAME ARGUMENT'"),
    ("propose  empty  a*\n", ":1: propose pattern 'a*' matches the empty string"),
])
def test_malformed_rule_file_names_file_and_line(tmp_path, content, message):
    (tmp_path / "mine.rules").write_text(content, encoding="utf-8")
    with pytest.raises(rules.RuleFileError) as err:
        rules.load_rules([str(tmp_path)])
    assert str(tmp_path / "mine.rules") + message in str(err.value)


def test_missing_or_empty_rule_directory_is_an_error(tmp_path):
    with pytest.raises(rules.RuleFileError, match="does not exist"):
        rules.load_rules([str(tmp_path / "nope")])
    with pytest.raises(rules.RuleFileError, match="has no \\*.rules files"):
        rules.load_rules([str(tmp_path)])


def test_proposals_choose_the_left_boundary_from_counts(shipped):
    """A drug name planted after varied real text: the pattern matches longer strings
    (preceding characters included), the counts pick the real word."""
    rng = random.Random(3)
    lines = insert_at_random(excerpt(1500)[0], "阿莫西林", 30, rng)
    lines = insert_at_random(lines, "头孢克洛", 12, rng)
    counts = shipped.proposer().count_lines(lines)
    assert counts.count["阿莫西林"] >= 30 and counts.count["莫西林"] == counts.count["阿莫西林"]
    chosen = set(counts.select(min_count=5))
    assert "阿莫西林" in chosen
    assert "莫西林" not in chosen
    assert not any(w.endswith("阿莫西林") and w != "阿莫西林" for w in chosen)
    entropies = counts.entropies()
    assert min(entropies["阿莫西林"]) > 1.5   # planted at random places: free on both sides
    assert counts.rule["阿莫西林"] == "drug_antibiotic"


def test_pruning_proposals_drops_rare_strings_and_their_neighbours(shipped):
    counts = shipped.proposer().count_lines(excerpt(1500)[0])
    rare = [w for w, c in counts.count.items() if c < 3]
    assert rare
    counts.prune(3)
    assert all(c >= 3 for c in counts.count.values())
    assert not any(k[0] in rare for k in counts.left)


def test_user_rules_directory_extends_the_library(tmp_path):
    (tmp_path / "mine.rules").write_text("propose  gadget  悟空[0-9]{2}\nveto  no_report  报道$\n", encoding="utf-8")
    ruleset = rules.RuleSet(rules.load_rules([rules.DEFAULT_RULES_DIR, str(tmp_path)]))
    lines = insert_at_random(excerpt(300)[0], "悟空12", 8, random.Random(1))
    counts = ruleset.proposer().count_lines(lines)
    assert counts.count["悟空12"] == 8 and counts.rule["悟空12"] == "gadget"
    assert ruleset.veto("悟空12") == ""          # digits allowed: a propose rule matches it
    assert ruleset.veto("新闻报道") == "veto:no_report"
