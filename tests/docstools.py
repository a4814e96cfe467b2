"""Reading the commands, flags and links of README.md and docs/*.md (for tests/test_docs_commands.py)."""

import functools
import glob
import os
import re
import shlex
import time


import proc

REPO = proc.REPO
README = os.path.join(REPO, "README.md")
DOCS = sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
DOC_FILES = [README] + DOCS
LINKED_FILES = DOC_FILES + [os.path.join(REPO, "BENCHMARKS.md")]

OUR_TOOLS = ("hvd-pretrain", "hvd-data", "hvd-job", "hvd-monitor", "hvd-export", "hvd-plan", "hvd-finetune")
SUBCOMMANDS = {
    "hvd-data": ("vocab", "create", "inspect", "newwords"),
    "hvd-job": ("start", "status", "logs", "stop", "restart", "doctor"),
    "hvd-monitor": ("serve", "top", "report", "tensorboard"),
}
CHECKED_PROGRAMS = OUR_TOOLS + ("horovodrun",)
OTHER_PROGRAMS = ("make", "python", "bash", "tmux", "loginctl", "systemctl", "sbatch", "kubectl", "ssh",
                  "tensorboard")
# Flags of programs whose --help the test does not read, named in prose.
OTHER_PROGRAM_FLAGS = {
    "--logdir", "--logdir_spec",      # tensorboard
    "--requeue", "--signal",          # sbatch
    "--user",                         # systemd-run, systemctl
    "--target", "--no-deps",          # pip
    "--append",                       # benchmarks/*.py
    "--xla_cpu_use_thunk_runtime",    # XLA (XLA_FLAGS), set by hvd_pretrain/tfcompat.py
}
# Files the user makes; the repository ships what they are made from.
USER_FILES = {"jobs/hostfile": "jobs/hostfile.example"}
REPO_DIRS = ("jobs/", "benchmarks/", "monitoring/", "tests/", "docs/")
LANGUAGES = {"sh", "text", "python"}
RUNS_MARK = "<!-- test: runs -->"
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1", "$(", "`"}

HELP_TIMEOUT = 60
SHORT_TIMEOUT = 90
RUNS_TIMEOUT = 240


# ---- reading the documents ------------------------------------------------------------------------

class Block:
    def __init__(self, path, line, language, lines, runs):
        self.path, self.line, self.language, self.lines, self.runs = path, line, language, lines, runs

    @property
    def where(self):
        return "%s:%d" % (os.path.relpath(self.path, REPO), self.line)


class Command:
    def __init__(self, path, line, text, runs):
        self.path, self.line, self.text, self.runs = path, line, text, runs
        words = shlex.split(text, comments=True)
        self.env = {}
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            key, value = words.pop(0).split("=", 1)
            self.env[key] = value
        self.argv = words

    @property
    def where(self):
        return "%s:%d" % (os.path.relpath(self.path, REPO), self.line)


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([^`\s]*)")


def fenced_blocks(path, text=None):
    """Every fenced block of a Markdown file: (line of the opening fence, language, body lines, marked)."""
    if text is None:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, language = m.group(1), m.group(2)
        before = [line for line in lines[:i] if line.strip()]
        start, body, i = i, [], i + 1
        while i < len(lines) and not (lines[i].strip().startswith(fence)
                                      and not lines[i].strip().strip(fence[0])):
            body.append(lines[i])
            i += 1
        blocks.append(Block(path, start + 1, language, body,
                            runs=bool(before) and before[-1].strip() == RUNS_MARK))
        i += 1
    return blocks


def block_commands(block):
    """The commands of an sh block; a line ending in a backslash continues on the next."""
    out, pending, first = [], "", None
    for offset, line in enumerate(block.lines, start=1):
        if first is None:
            first = block.line + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = pending + line
        pending = ""
        if shlex.split(text, comments=True):
            out.append(Command(block.path, first, text.strip(), block.runs))
        first = None
    assert not pending, "%s: a command ends in a backslash" % block.where
    return out


def all_blocks():
    return [b for path in DOC_FILES for b in fenced_blocks(path)]


def all_commands():
    return [c for b in all_blocks() if b.language == "sh" for c in block_commands(b)]


# ---- what the programs accept ---------------------------------------------------------------------

_ABSL_FLAG = re.compile(r"^  --(\[no\])?([A-Za-z][\w-]*):")
_ARGPARSE_OPTION = re.compile(r"^  (-{1,2}[A-Za-z].*)$")


def flags_in_help(text):
    """The flags a --help output defines: absl (`  --[no]name: ...`) or argparse (`  -x, --name X  ...`)."""
    absl = set()
    for line in text.splitlines():
        m = _ABSL_FLAG.match(line)
        if m:
            absl.add("--" + m.group(2))
            if m.group(1):
                absl.add("--no" + m.group(2))
    if absl:
        return absl | {"--help", "--helpfull", "--flagfile", "--undefok"}
    found = {"-h", "--help"}
    for line in text.splitlines():
        m = _ARGPARSE_OPTION.match(line)
        if m:
            spec = re.split(r"\s{2,}", m.group(1))[0]
            found.update(re.findall(r"(?<![\w-])(-{1,2}[A-Za-z][\w-]*)", spec))
    return found


@functools.lru_cache(maxsize=None)
def console_scripts():
    """{tool: module} of setup.py's console_scripts entry points."""
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        return dict(re.findall(r'"(hvd-[\w-]+)=([\w.]+):\w+"', f.read()))


def launcher(program):
    """How to start one of our tools: its console script, or `python -m <module>` while the script is not
    installed yet (a tool added to setup.py since the last `pip install -e .`)."""
    import shutil
    import sys
    module = console_scripts().get(program)
    if module and shutil.which(program, path=proc.test_env()["PATH"]) is None:
        return [sys.executable, "-m", module]
    return [program]


@functools.lru_cache(maxsize=None)
def help_of(program, subcommand=None):
    """(exit code, output) of `program [subcommand] --help`."""
    cmd = launcher(program) + ([subcommand] if subcommand else []) + ["--help"]
    result = proc.run(cmd, timeout=HELP_TIMEOUT, check=False, env=proc.test_env())
    return result.returncode, result.stdout


@functools.lru_cache(maxsize=None)
def makefile_targets():
    with open(os.path.join(REPO, "Makefile")) as f:
        return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", f.read(), flags=re.M))


def program_name(word):
    """`hvd-plan` or `.venv/bin/hvd-plan` -> hvd-plan; anything else as it is."""
    base = os.path.basename(word)
    if word.startswith(".venv/bin/") and base in CHECKED_PROGRAMS + OTHER_PROGRAMS:
        return base
    return word


def invocations(argv):
    """[(program, its arguments)]: horovodrun's command after its own options, and the command
    after `hvd-job start ... --`, are invocations of their own."""
    out = []
    while argv:
        name, rest = program_name(argv[0]), list(argv[1:])
        if name == "horovodrun":
            k = next((i for i, w in enumerate(rest) if program_name(w) in OUR_TOOLS + ("python",)), len(rest))
            out.append((name, rest[:k]))
            argv = rest[k:]
        elif name == "hvd-job" and "--" in rest:
            k = rest.index("--")
            out.append((name, rest[:k]))
            argv = rest[k + 1:]
        else:
            out.append((name, rest))
            argv = []
    return out


def repo_path_problems(args):
    problems = []
    for word in args:
        for value in (word, word.split("=", 1)[-1]):
            if value.startswith(REPO_DIRS) and "*" not in value:
                made_from = USER_FILES.get(value)
                target = made_from or value
                if not os.path.exists(os.path.join(REPO, target)):
                    problems.append("%s does not exist in the repository" % target)
    return problems


def command_problems(argv):
    """What is wrong with one documented command (a list of words); [] when nothing is."""
    problems = [("shell syntax %r: commands run without a shell" % w) for w in argv if w in SHELL_OPERATORS]
    if not argv:
        return problems + ["empty command"]
    for name, args in invocations(argv):
        problems += repo_path_problems(args)
        if name not in CHECKED_PROGRAMS + OTHER_PROGRAMS:
            problems.append("%s is not a known program (%s)" % (name, ", ".join(CHECKED_PROGRAMS + OTHER_PROGRAMS)))
            continue
        if name == "make":
            problems += ["make target %s is not in the Makefile" % a for a in args
                         if not a.startswith("-") and "=" not in a and a not in makefile_targets()]
            continue
        if name in ("python", "bash"):
            script = next((a for a in args if not a.startswith("-")), None)
            if args[:1] == ["-m"] or script is None:
                continue
            if not os.path.isfile(os.path.join(REPO, script)):
                problems.append("%s: script %s is not in the repository" % (name, script))
            continue
        if name not in CHECKED_PROGRAMS:
            continue
        subcommand = None
        if name in SUBCOMMANDS and args and not args[0].startswith("-"):
            subcommand, args = args[0], args[1:]
            if subcommand not in SUBCOMMANDS[name]:
                problems.append("%s has no subcommand %s (%s)" % (name, subcommand, ", ".join(SUBCOMMANDS[name])))
                continue
        code, text = help_of(name, subcommand)
        if code != 0:
            problems.append("`%s%s --help` exits %d" % (name, " " + subcommand if subcommand else "", code))
            continue
        known = flags_in_help(text)
        for word in args:
            if not word.startswith("-") or re.match(r"^-\d", word) or word == "-":
                continue
            flag = word.split("=", 1)[0]
            if flag not in known:
                problems.append("%s%s has no flag %s" % (name, " " + subcommand if subcommand else "", flag))
    return problems


@functools.lru_cache(maxsize=None)
def every_known_flag():
    flags = set()
    for name in CHECKED_PROGRAMS:
        for subcommand in (None,) + SUBCOMMANDS.get(name, ()):
            code, text = help_of(name, subcommand)
            assert code == 0, "`%s %s --help` exits %d:\n%s" % (name, subcommand or "", code, text[-2000:])
            flags |= flags_in_help(text)
    return frozenset(flags | OTHER_PROGRAM_FLAGS)


_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def prose_flags(path, text=None):
    """[(line, flag)] for every --flag written in an inline code span outside fenced blocks."""
    if text is None:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        m = _FENCE.match(line)
        if m:
            fence = None if fence and line.strip().startswith(fence) else (fence or m.group(1))
            continue
        if fence:
            continue
        for span in _CODE_SPAN.finditer(line):
            for flag in re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", span.group(2)):
                out.append((number, flag))
    return out


# ---- running ----------------------------------------------------------------------------------------

def is_short(command):
    """--help, hvd-plan and hvd-pretrain --dry_run: fast, and they write nothing."""
    calls = invocations(command.argv)
    if len(calls) != 1:
        return False
    name, args = calls[0]
    if "--help" in args or "-h" in args:
        return name in CHECKED_PROGRAMS
    return name == "hvd-plan" or (name == "hvd-pretrain" and any(a in ("--dry_run", "--dry_run=true")
                                                                    for a in args))


def workdir(tmp_path):
    """A fresh directory with the repository's jobs/ (flagfiles, scripts) linked in."""
    os.symlink(os.path.join(REPO, "jobs"), str(tmp_path / "jobs"))
    return str(tmp_path)


def run_documented(command, cwd, timeout):
    env = proc.test_env(HVD_PRETRAIN_RUNS=os.path.join(cwd, "runs"), **command.env)
    env.pop("HVD_PRETRAIN_RUN_DIR", None)
    started = time.time()
    argv = launcher(command.argv[0]) + list(command.argv[1:])
    result = proc.run(argv, timeout=timeout, cwd=cwd, env=env, check=False)
    assert result.returncode == 0, "%s: `%s` exited %d after %.1fs:\n%s" % (
        command.where, command.text, result.returncode, time.time() - started, result.stdout[-4000:])
    return result
