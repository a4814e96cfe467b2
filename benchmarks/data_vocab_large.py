"""Vocab training time and peak memory on a >= 100 MB corpus of real text found on this machine.

The corpus is concatenated from text that every such machine has: the package
documentation under /usr/share/doc (READMEs, change logs, copyright notices; plain
and .gz; about 200 MB on a Debian machine with the toolchain installed), then, if
more is needed, prose harvested from the docstrings of all installed Python sources
(the default corpus's harvester). Nothing is repeated and nothing is generated.

    python benchmarks/data_vocab_large.py [--target_mb=100] [--vocab_size=32000] [--append=BENCHMARKS.md]
"""

import argparse
import gzip
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def python_roots():
    roots = [sysconfig.get_path("stdlib"), sysconfig.get_path("purelib")]
    return sorted({os.path.realpath(r) for r in roots if r and os.path.isdir(r)})


def docstring_documents():
    from hvd_pretrain.corpus import documents_from_source

    for root in python_roots():
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    yield from documents_from_source(os.path.join(directory, name))


def doc_files_documents():
    for directory, subdirs, files in os.walk("/usr/share/doc"):
        subdirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                opener = gzip.open if name.endswith(".gz") else open
                with opener(path, "rb") as f:
                    raw = f.read(4 << 20)
                text = raw.decode("utf-8")
            except (OSError, UnicodeDecodeError, EOFError):
                continue
            if "\x00" in text:
                continue
            for block in text.split("\n\n"):
                lines = [line.strip() for line in block.splitlines() if line.strip()]
                if len(lines) >= 2:
                    yield lines


def build_corpus(path, target_bytes):
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for source in (doc_files_documents, docstring_documents):
            for document in source():
                text = "\n".join(document) + "\n\n"
                out.write(text)
                written += len(text.encode("utf-8"))
                if written >= target_bytes:
                    return written
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target_mb", type=int, default=100)
    parser.add_argument("--vocab_size", type=int, default=32000)
    parser.add_argument("--input_sentence_size", type=int, default=2_000_000)
    parser.add_argument("--corpus", default="", help="reuse this corpus file instead of building one")
    parser.add_argument("--append", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or os.path.join(tmp, "corpus.txt")
        if not args.corpus:
            started = time.time()
            size = build_corpus(corpus, args.target_mb << 20)
            print("built %.1f MB corpus in %.0f s" % (size / 2 ** 20, time.time() - started), flush=True)
            if size < args.target_mb << 20:
                sys.exit("only %.1f MB of text found; lower --target_mb" % (size / 2 ** 20))
        size = os.path.getsize(corpus)
        out = os.path.join(tmp, "vocab")
        cmd = [sys.executable, "-m", "hvd_pretrain.cli.data", "vocab", "--input_files=" + corpus, "--out=" + out,
               "--vocab_size=%d" % args.vocab_size, "--input_sentence_size=%d" % args.input_sentence_size]
        started = time.time()
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONPATH=REPO))
        wall = time.time() - started
        if result.returncode:
            sys.exit(result.stdout[-3000:])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        import json

        report = json.loads(result.stdout[result.stdout.index("{"):])
    heldout = report["heldout"] or {}
    lines = ["### Vocab training on %.0f MB of real text (%s, %d cores)" % (size / 2 ** 20, time.strftime("%Y-%m-%d"),
                                                                        os.cpu_count()), "",
             "| vocab | input_sentence_size | wall s | peak RSS MB | held-out unknown rate | tokens/word |",
             "|---|---:|---:|---:|---:|---:|",
             "| SentencePiece unigram %d | %d | %.0f | %.0f | %.4f%% | %.2f |"
             % (args.vocab_size, args.input_sentence_size, wall, peak_mb, 100 * heldout.get("unknown_rate", 0),
                heldout.get("tokens_per_word", 0)), ""]
    table = "\n".join(lines)
    print(table)
    if args.append:
        with open(args.append, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
