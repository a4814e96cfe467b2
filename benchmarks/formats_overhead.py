"""What reading .zst JSON Lines (or Parquet) costs `hvd-data create` compared with plain text.

The same documents (the embedded default corpus, --copies times, so the work is not all
start-up) are written as google-research/bert plain text, as zstd-compressed JSON Lines with
each document a string (one sentence per line inside it, the Common-Crawl layout) and, with
--parquet, as Parquet. Each candidate runs `hvd-data create` in a fresh process and a fresh
output directory, in alternating order round after round (so drifting machine load hits
every candidate alike); the table gives each one's median wall time and the ratio to plain
text. The shards of every candidate are compared byte for byte with plain text's.

    python benchmarks/formats_overhead.py [--copies=4] [--rounds=3] [--dupe_factor=10] [--append=BENCHMARKS.md]

Goal: .zst JSON Lines at most 15% more wall time than plain text.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def write_inputs(tmp, copies, parquet):
    """{candidate: path} of the same documents in each format; returns it and (documents, bytes)."""
    import zstandard

    from hvd_pretrain.corpus import default_corpus

    with open(default_corpus(), encoding="utf-8") as f:
        text = f.read().rstrip("\n")
    documents = [doc.split("\n") for doc in text.split("\n\n")] * copies
    plain = ("\n\n".join("\n".join(doc) for doc in documents) + "\n").encode("utf-8")
    paths = {"plain text": os.path.join(tmp, "corpus.txt")}
    with open(paths["plain text"], "wb") as f:
        f.write(plain)
    records = "".join(json.dumps({"id": i, "text": "\n".join(doc)}, ensure_ascii=False) + "\n"
                      for i, doc in enumerate(documents)).encode("utf-8")
    paths["JSON Lines, zstd"] = os.path.join(tmp, "corpus.jsonl.zst")
    with open(paths["JSON Lines, zstd"], "wb") as f:
        f.write(zstandard.ZstdCompressor(level=3).compress(records))
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths["Parquet"] = os.path.join(tmp, "corpus.parquet")
        pq.write_table(pa.table({"text": ["\n".join(doc) for doc in documents]}), paths["Parquet"],
                       row_group_size=2000, compression="zstd")
    return paths, len(documents), len(plain)


def shard_digest(out):
    digest = hashlib.sha256()
    for name in sorted(n for n in os.listdir(out) if n.endswith(".tfrecord")):
        with open(os.path.join(out, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def run_create(path, vocab, out, args, env):
    cmd = [sys.executable, "-m", "hvd_pretrain.cli.data", "create", "--input_files=" + path, "--vocab=" + vocab,
           "--out=" + out, "--num_workers=%d" % args.num_workers, "--dupe_factor=%d" % args.dupe_factor,
           "--noprogress"]
    cpu0, start = children_cpu(), time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu0
    if result.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), result.stdout[-3000:]))
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        instances = json.load(f)["num_instances"]
    return wall, cpu, instances, shard_digest(out)


def children_cpu():
    """User + system CPU seconds of the finished child processes (the tool and its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="the default corpus this many times (1.2 MB each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--parquet", action="store_true", help="also measure Parquet")
    parser.add_argument("--append", default="")
    args = parser.parse_args()

    from hvd_pretrain.vocab import train_sentencepiece

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    with tempfile.TemporaryDirectory() as tmp:
        paths, documents, size = write_inputs(tmp, args.copies, args.parquet)
        vocab = os.path.join(tmp, "vocab")
        train_sentencepiece([paths["plain text"]], vocab, args.vocab_size)
        names = list(paths)
        disk = {name: os.path.getsize(paths[name]) for name in names}
        walls = {name: [] for name in names}
        cpus = {name: [] for name in names}
        results = {}
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                out = os.path.join(tmp, "out")
                shutil.rmtree(out, ignore_errors=True)
                wall, cpu, instances, digest = run_create(paths[name], vocab, out, args, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
                results[name] = (instances, digest)
                print("round %d  %-18s %6.2f s wall %6.2f s CPU" % (round_ + 1, name, wall, cpu), file=sys.stderr,
                      flush=True)
    base = statistics.median(walls["plain text"])
    base_cpu = statistics.median(cpus["plain text"])
    load = os.getloadavg()[0]
    lines = ["", "### Reading compressed JSON Lines", "",
             "`benchmarks/formats_overhead.py --copies=%d --rounds=%d --dupe_factor=%d`: the default corpus %d"
             " times (%d documents, %.1f MB of plain text), SentencePiece vocab %d, %d workers, measured %s,"
             " load average %.1f at the end. `hvd-data create` from process start to exit (CPU: the tool and its"
             " workers, user + system), median of %d alternating runs:"
             % (args.copies, args.rounds, args.dupe_factor, args.copies, documents, size / 1e6, args.vocab_size,
                args.num_workers, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load, args.rounds), "",
             "| input | on disk MB | instances | wall s | wall runs | wall vs plain | CPU s | CPU vs plain |"
             " shards identical |",
             "|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for name in names:
        median, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        lines.append("| %s | %.1f | %d | %.2f | %s | %.3f | %.2f | %.3f | %s |" % (
            name, disk[name] / 1e6, results[name][0], median, ", ".join("%.2f" % w for w in walls[name]),
            median / base, cpu, cpu / base_cpu, "yes" if results[name][1] == results["plain text"][1] else "NO"))
    table = "\n".join(lines) + "\n"
    print(table)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as f:
            f.write(table)


if __name__ == "__main__":
    main()
