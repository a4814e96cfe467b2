"""hvd-data create under `mpirun -np N` (one worker per rank) against one process with N workers.

Same input (the embedded default corpus --copies times, plain text), same SentencePiece vocab,
same options, same cores: `mpirun -np N hvd-data create --num_workers=1` against
`hvd-data create --num_workers=N`. Each run is timed from launch to exit (so mpirun pays its
start-up and rank 0 its polling), in alternating order round after round; the table gives the
median instances/s of each and their ratio, and checks that the shards are byte-identical.

    python benchmarks/data_create_ranks.py [--ranks=2] [--copies=4] [--rounds=3] [--append=BENCHMARKS.md]

Goal: mpirun -np 2 at least 0.9x the instances/s of --num_workers=2.
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def shards_digest(out):
    digest = hashlib.sha256()
    for name in sorted(n for n in os.listdir(out) if n.endswith(".tfrecord")):
        with open(os.path.join(out, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def timed(cmd, out, env):
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), result.stdout[-3000:]))
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        return wall, json.load(f)["num_instances"], shards_digest(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--append", default="")
    args = parser.parse_args()

    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.vocab import train_sentencepiece

    bindir = os.path.dirname(sys.executable)
    hvd_data = os.path.join(bindir, "hvd-data")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        with open(default_corpus(), encoding="utf-8") as f:
            text = f.read().rstrip("\n") + "\n"
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join([text] * args.copies))
        vocab = os.path.join(tmp, "vocab")
        train_sentencepiece([corpus], vocab, args.vocab_size)
        common = ["create", "--input_files=" + corpus, "--vocab=" + vocab, "--dupe_factor=%d" % args.dupe_factor,
                  "--noprogress"]
        out = os.path.join(tmp, "out")
        candidates = {
            "hvd-data create --num_workers=%d" % args.ranks: [hvd_data] + common + ["--out=" + out,
                                                                               "--num_workers=%d" % args.ranks],
            "mpirun -np %d hvd-data create --num_workers=1" % args.ranks: [
                "mpirun", "-np", str(args.ranks), "--oversubscribe", "--bind-to", "none", hvd_data] + common
            + ["--out=" + out, "--num_workers=1"],
        }
        names = list(candidates)
        walls, results = {name: [] for name in names}, {}
        for round_ in range(args.rounds):
            for name in (names if round_ % 2 == 0 else names[::-1]):
                wall, instances, digest = timed(candidates[name], out, env)
                walls[name].append(wall)
                results[name] = (instances, digest)
                print("round %d  %-45s %6.2f s" % (round_ + 1, name, wall), file=sys.stderr, flush=True)
        size = os.path.getsize(corpus)
    base = names[0]
    rate = {name: results[name][0] / statistics.median(walls[name]) for name in names}
    lines = ["", "### Data creation under mpirun", "",
             "`benchmarks/data_create_ranks.py --ranks=%d --copies=%d --rounds=%d`: the default corpus %d times"
             " (%.1f MB), SentencePiece vocab %d, dupe_factor %d, measured %s, load average %.1f at the end;"
             " launch to exit, median of %d alternating runs:"
             % (args.ranks, args.copies, args.rounds, args.copies, size / 1e6, args.vocab_size, args.dupe_factor,
                time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0], args.rounds), "",
             "| run | instances | wall s | runs | instances/s | vs %s | shards identical |" % base.split(" --")[0],
             "|---|---:|---:|---|---:|---:|---|"]
    for name in names:
        lines.append("| `%s` | %d | %.2f | %s | %.0f | %.3f | %s |" % (
            name, results[name][0], statistics.median(walls[name]), ", ".join("%.2f" % w for w in walls[name]),
            rate[name], rate[name] / rate[base], "yes" if results[name][1] == results[base][1] else "NO"))
    table = "\n".join(lines) + "\n"
    print(table)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as f:
            f.write(table)


if __name__ == "__main__":
    main()
