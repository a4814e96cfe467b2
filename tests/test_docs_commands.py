"""The commands in README.md and docs/*.md are real, and the short ones run as written.

Convention (the test enforces it):

* Every fenced code block names its language. Blocks marked ```sh hold commands and
  nothing else: one command per line (a trailing backslash continues it), `#` starts a
  comment, no prompts, pipes or redirections, since each command is run without a shell.
  Output, diagrams and file layouts go in ```text blocks, Python in ```python blocks.
* Every command names a real program: one of our tools, horovodrun, or a few system
  programs (make, python, bash, ...). Leading VAR=value words set its environment.
* Every flag given to one of our tools or to horovodrun is listed by that program's
  `--help` (for hvd-data, hvd-job and hvd-monitor: the subcommand's `--help`). The command
  after horovodrun's own options, and after `--` of `hvd-job start`, is checked the same way.
  `make` targets must exist in the Makefile, and scripts given to python or bash in the repo.
* Flags written in prose (`--name` in backticks) must belong to one of those programs too,
  or be listed in OTHER_PROGRAM_FLAGS below.
* These commands are run, each in a fresh temporary directory (with `jobs/` linked in):
  `--help`, every `hvd-plan`, every `hvd-pretrain ... --dry_run`. A block preceded by the
  line `<!-- test: runs -->` is run whole, command after command, in one directory.
* Relative links (and their #anchors) in README.md, BENCHMARKS.md and docs/*.md resolve.
"""

import os
import re
import shlex

import pytest

from docstools import (_FENCE, DOC_FILES, DOCS, LANGUAGES, LINKED_FILES, README, REPO, RUNS_MARK, RUNS_TIMEOUT,
                       SHORT_TIMEOUT, Command, all_blocks, all_commands, block_commands, command_problems,
                       every_known_flag, fenced_blocks, is_short, prose_flags, run_documented, workdir)

COMMANDS = all_commands()
SHORT = [c for c in COMMANDS if is_short(c) and not c.runs]
MARKED = [b for b in all_blocks() if b.language == "sh" and b.runs]


# ---- the documents ----------------------------------------------------------------------------------

def test_the_documents_hold_commands():
    assert os.path.isdir(os.path.join(REPO, "docs")) and DOCS
    assert len(COMMANDS) >= 40, [c.where for c in COMMANDS]
    assert len(SHORT) >= 10 and MARKED
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 400, "README.md is a map: keep the detail in docs/"
    for needle in ("make install", "make demo", "make test"):
        assert needle in readme
    for path in DOCS:
        assert "docs/%s" % os.path.basename(path) in readme, "README.md does not link %s" % path


def test_every_fenced_block_names_its_language():
    bad = [(b.where, b.language) for b in all_blocks() if b.language not in LANGUAGES]
    assert not bad, "fenced blocks need one of %s: %s" % (sorted(LANGUAGES), bad)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_command_names_real_programs_and_flags(command):
    problems = command_problems(command.argv)
    assert not problems, "%s: `%s`:\n  %s" % (command.where, command.text, "\n  ".join(problems))


def test_flags_in_prose_exist():
    known = every_known_flag()
    bad = ["%s:%d %s" % (os.path.relpath(path, REPO), line, flag)
           for path in DOC_FILES for line, flag in prose_flags(path) if flag not in known]
    assert not bad, "flags named in the text that no program defines:\n  " + "\n  ".join(bad)


def github_anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path):
    seen, out = {}, set()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    in_fence = None  # a line starting with '#' inside a code block is not a heading
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m:
            in_fence = None if in_fence and line.strip().startswith(in_fence) else (in_fence or m.group(1))
            continue
        if in_fence:
            continue
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if h:
            base = github_anchor(h.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else "%s-%d" % (base, n))
    return out


def test_links_resolve():
    bad = []
    for path in LINKED_FILES:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for number, line in enumerate(text.splitlines(), start=1):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                linked = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                where = "%s:%d %s" % (os.path.relpath(path, REPO), number, target)
                if not os.path.exists(linked):
                    bad.append(where + " (no such file)")
                elif anchor and linked.endswith(".md") and anchor not in anchors_of(linked):
                    bad.append(where + " (no such heading)")
    assert not bad, "broken links:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("command", SHORT, ids=[c.where for c in SHORT])
def test_short_command_runs(command, tmp_path):
    run_documented(command, workdir(tmp_path), SHORT_TIMEOUT)


@pytest.mark.parametrize("block", MARKED, ids=[b.where for b in MARKED])
def test_marked_block_runs(block, tmp_path):
    cwd = workdir(tmp_path)
    for command in block_commands(block):
        run_documented(command, cwd, RUNS_TIMEOUT)


# ---- the checker itself -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, complaint", [
    ("hvd-pretrain --no_such_flag=1", "hvd-pretrain has no flag --no_such_flag"),
    ("hvd-pretrain --train_batchsize=4 --dry_run", "has no flag --train_batchsize"),
    ("hvd-data creat --out=x", "hvd-data has no subcommand creat"),
    ("hvd-data create --progres", "hvd-data create has no flag --progres"),
    ("hvd-job start x --stall-timout 5 -- horovodrun -np 2 hvd-pretrain", "hvd-job start has no flag --stall-timout"),
    ("hvd-job start x -- horovodrun -np 2 hvd-pretrain --xlaa", "hvd-pretrain has no flag --xlaa"),
    ("horovodrun --min_np 2 hvd-pretrain", "horovodrun has no flag --min_np"),
    ("hvd-pretrian --help", "hvd-pretrian is not a known program"),
    ("hvd-monitor top --onse", "hvd-monitor top has no flag --onse"),
    ("make tests", "make target tests is not in the Makefile"),
    ("bash jobs/no_such_script.sh", "jobs/no_such_script.sh does not exist"),
    ("hvd-plan --model=base | head", "shell syntax '|'"),
])
def test_checker_catches_mistakes(text, complaint):
    problems = command_problems(shlex.split(text))
    assert any(complaint in p for p in problems), problems


@pytest.mark.parametrize("text", [
    "hvd-data create --noprogress --whole_word_masking --vocab=v --out=o",
    "hvd-job start x --stall-timeout 5 --restarts 2 -- horovodrun -np 2 -H a:1,b:1 hvd-pretrain --xla --noxla",
    "hvd-job logs x -f -n 20 --supervisor",
    "NAME=x NP=2 bash jobs/launch.sh",
    "hvd-pretrain --flagfile=jobs/bert_base_phase1.cfg --dry_run",
])
def test_checker_accepts_correct_commands(text):
    command = Command(README, 1, text, False)
    assert command_problems(command.argv) == []


def test_parser_follows_the_convention():
    text = "\n".join([
        "Some prose with `--not_a_flag_anywhere`.",
        RUNS_MARK,
        "```sh",
        "hvd-plan --model=base \\",
        "    --gpu=V100-16G   # a comment",
        "",
        "hvd-plan --validate",
        "```",
        "```",
        "untagged",
        "```",
    ])
    blocks = fenced_blocks(README, text)
    assert [(b.language, b.runs) for b in blocks] == [("sh", True), ("", False)]
    commands = block_commands(blocks[0])
    assert [c.argv for c in commands] == [["hvd-plan", "--model=base", "--gpu=V100-16G"],
                                           ["hvd-plan", "--validate"]]
    assert [c.line for c in commands] == [4, 7]
    assert prose_flags(README, text) == [(1, "--not_a_flag_anywhere")]
    assert "--not_a_flag_anywhere" not in every_known_flag()


def test_a_tool_not_installed_yet_runs_from_its_module():
    """A tool added to setup.py is checked before `pip install -e .` installs its console script."""
    from docstools import console_scripts, help_of, launcher
    assert console_scripts()["hvd-finetune"] == "hvd_pretrain.cli.finetune"
    import sys
    assert launcher("hvd-finetune") in ([sys.executable, "-m", "hvd_pretrain.cli.finetune"], ["hvd-finetune"])
    assert launcher("make") == ["make"]
    code, text = help_of("hvd-finetune")
    assert code == 0 and "--all_checkpoints" in text


def test_a_failing_documented_command_fails(tmp_path):
    command = Command(README, 1, "hvd-plan --gpu=V100-99G", False)
    with pytest.raises(AssertionError, match="exited 2"):
        run_documented(command, workdir(tmp_path), SHORT_TIMEOUT)
