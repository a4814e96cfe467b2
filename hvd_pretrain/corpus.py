"""The embedded default corpus: English prose from the Python standard library's docstrings.

Every machine that runs Python has the standard library's sources, and their
docstrings are real, edited English. This module harvests them with `ast`
(nothing is imported or executed), keeps the prose paragraphs (doctest
examples, code blocks, tables and parameter lists are dropped), splits them
into sentences and writes them in google-research/bert's text format: one
sentence per line, a blank line between documents. One document is one
docstring with at least two sentences; the one-sentence docstrings of a module
are gathered into one document for that module.

The build is deterministic (sorted files, no hashing of unordered sets) and
runs once: the result is cached under $HVD_PRETRAIN_CACHE/corpus/ (default
~/.cache/hvd-pretrain/corpus/), keyed by the Python version and the builder
version, and written atomically.
"""

import ast
import os
import re
import sys
import sysconfig
import warnings

from hvd_pretrain.cache import cache_root
from hvd_pretrain.data.documents import read_documents  # noqa: F401  (re-exported)
from hvd_pretrain.errors import DataError
from hvd_pretrain.rundir import write_text_atomic

BUILDER_VERSION = 1
MIN_CORPUS_BYTES = 1 << 20
# Test suites hold few docstrings, mostly one-liners, and take most of the parse time.
SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}

_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "cf", "mr", "mrs", "ms", "dr", "st", "no", "nos", "fig", "al",
    "approx", "resp", "incl", "ref", "sec", "ch", "vol", "ed", "eq", "jr", "sr", "inc", "ltd",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
# A sentence ends at . ! or ? (optionally followed by closing quotes or brackets),
# then whitespace, then something that can start a sentence.
_SENTENCE_END = re.compile(r"""([.!?]['")\]]*)\s+(?=["'(\[]?[A-Z0-9])""")
_ROLE = re.compile(r":[a-zA-Z:]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`_{0,2}")
_SPACES = re.compile(r"\s+")
_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|\$ |\.\. |[-=~^*+#]{3,}\s*$|def |class |import |from \S+ import|@\w)")
_FIELD_LINE = re.compile(r"^\s*:\w+[^:]*:|^\s*\w[\w, ]*\s+--\s|^\s*[-*+] |^\s*\d+[.)] ")


def default_corpus(cache_dir=None):
    """Path of the default corpus text file, building and caching it on first use."""
    version = "%d.%d.%d" % sys.version_info[:3]
    path = os.path.join(cache_root(cache_dir), "corpus", "stdlib-docstrings-py%s-v%d.txt" % (version, BUILDER_VERSION))
    if os.path.isfile(path) and os.path.getsize(path) >= MIN_CORPUS_BYTES:
        return path
    text = build_corpus_text()
    if len(text.encode("utf-8")) < MIN_CORPUS_BYTES:
        raise DataError("the default corpus from %s has only %d bytes (need %d); pass your own text with --input_files"
                        % (stdlib_dir(), len(text.encode("utf-8")), MIN_CORPUS_BYTES))
    write_text_atomic(path, text)
    return path


def stdlib_dir():
    return sysconfig.get_path("stdlib")


def stdlib_sources(root=None):
    """Sorted .py files of the standard library, without test suites and installed packages."""
    root = root or stdlib_dir()
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS and not d.startswith("."))
        found.extend(os.path.join(directory, f) for f in sorted(files) if f.endswith(".py"))
    return sorted(found)


def build_corpus_text(root=None):
    """The whole corpus as one string in BERT format (documents separated by a blank line)."""
    documents = []
    for path in stdlib_sources(root):
        documents.extend(documents_from_source(path))
    return "\n\n".join("\n".join(doc) for doc in documents) + "\n"


def documents_from_source(path):
    """Documents (lists of sentences) from the docstrings of one source file."""
    try:
        with open(path, "rb") as f:
            source = f.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except (OSError, SyntaxError, ValueError):
        return []
    documents, singles = [], []
    for docstring in docstrings(tree):
        sentences = [s for paragraph in prose_paragraphs(docstring) for s in split_sentences(paragraph)]
        if len(sentences) >= 2:
            documents.append(sentences)
        elif sentences:
            singles.extend(sentences)
    if len(singles) >= 2:
        documents.append(singles)
    return documents


def docstrings(tree):
    """Docstrings of the module, its classes and functions, in source order."""
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = [n for n in ast.walk(tree) if isinstance(n, kinds)]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    for node in nodes:
        text = ast.get_docstring(node, clean=True)
        if text:
            yield text


def prose_paragraphs(docstring):
    """Paragraphs of running text: code, doctests, tables, field lists and headings are dropped."""
    for block in re.split(r"\n\s*\n", docstring):
        lines = block.split("\n")
        if not lines or lines[0].startswith((" ", "\t")):
            continue  # an indented block is code or a literal
        if any(_CODE_LINE.match(line) or _FIELD_LINE.match(line) for line in lines):
            continue
        if any(line.rstrip().endswith("::") for line in lines):
            continue
        text = _clean_markup(" ".join(line.strip() for line in lines))
        if _looks_like_prose(text):
            yield text


def _clean_markup(text):
    text = _ROLE.sub(r"\1", text)
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    return _SPACES.sub(" ", text).strip()


def _looks_like_prose(text):
    words = text.split()
    if len(words) < 4:
        return False
    letters = sum(c.isalpha() for c in text)
    if letters < 0.7 * sum(not c.isspace() for c in text):
        return False
    if "{" in text and "}" in text or "==" in text or "()" in text and text.count("(") > 3:
        return False
    return text[0].isupper() or text[0].isdigit() or text[0] in "\"'("


def split_sentences(paragraph):
    """Split a paragraph into sentences; keeps abbreviations, initials and decimals together."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        end = match.end(1)
        before = paragraph[start:match.start(1)]
        last_word = before.rsplit(None, 1)[-1] if before.split() else ""
        if match.group(1).startswith(".") and _is_abbreviation(last_word):
            continue
        sentences.append(paragraph[start:end].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if len(s.split()) >= 3 and any(c.isalpha() for c in s)]


def _is_abbreviation(word):
    word = word.lstrip("(\"'[")
    if len(word) == 1 and word.isalpha():
        return True  # an initial, as in "J. Smith"
    return word.lower().rstrip(".") in _ABBREVIATIONS
