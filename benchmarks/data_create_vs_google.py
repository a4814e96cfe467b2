"""Instance creation: hvd-data create vs google-research/bert's create_pretraining_data.py.

Same corpus (the embedded default corpus unless --input_file), same WordPiece
vocab (trained here with HF `tokenizers`, lower-cased), same options. Google's
script runs as shipped in the `bert-tensorflow` package (one process, under
tensorflow.compat.v1); ours runs with --num_workers (default: all cores).
Both are timed from process start to exit, so both pay their start-up.

    python benchmarks/data_create_vs_google.py [--dupe_factor=10] [--append=BENCHMARKS.md]

Prints a markdown table; with --append, appends it to that file.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd, env):
    cpu0, t0 = children_cpu(), time.time()
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall, cpu = time.time() - t0, children_cpu() - cpu0
    if result.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), result.stdout[-3000:]))
    return wall, cpu


def build_wordpiece_vocab(corpus, out_dir, vocab_size):
    from tokenizers import BertWordPieceTokenizer

    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train([corpus], vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    trainer.save_model(out_dir)
    return os.path.join(out_dir, "vocab.txt")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input_file", default="")
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--append", default="")
    args = parser.parse_args()

    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data.shards import list_shards
    from hvd_pretrain.data.tfrecord import iter_records
    from hvd_pretrain.rundir import read_json

    corpus = args.input_file or default_corpus()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    options = dict(max_seq_length=128, max_predictions_per_seq=20, masked_lm_prob=0.15, short_seq_prob=0.1,
                   dupe_factor=args.dupe_factor)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_dir = os.path.join(tmp, "vocab")
        os.makedirs(vocab_dir)
        vocab = build_wordpiece_vocab(corpus, vocab_dir, args.vocab_size)
        flags = ["--%s=%s" % kv for kv in options.items()]
        google_out = os.path.join(tmp, "google.tfrecord")
        g_wall, g_cpu = timed([sys.executable, os.path.join(HERE, "data_google_reference.py"),
                               "--input_file=" + corpus, "--output_file=" + google_out, "--vocab_file=" + vocab,
                               "--do_lower_case=True", "--random_seed=12345"] + flags, env)
        g_count = sum(1 for _ in iter_records(google_out, check_crc=False))
        ours_out = os.path.join(tmp, "ours")
        o_wall, o_cpu = timed([sys.executable, "-m", "hvd_pretrain.cli.data", "create", "--input_files=" + corpus,
                               "--vocab=" + vocab_dir, "--out=" + ours_out, "--num_workers=%d" % args.num_workers,
                               "--noprogress", "--seed=12345"] + flags, env)
        manifest = read_json(os.path.join(ours_out, "manifest.json"))
        o_count = manifest["num_instances"]
        assert o_count == sum(1 for f in list_shards(ours_out) for _ in iter_records(f, check_crc=False))

    rows = [("google create_pretraining_data.py (1 process)", g_count, g_wall, g_cpu),
            ("hvd-data create (%d workers)" % args.num_workers, o_count, o_wall, o_cpu)]
    lines = ["### Instance creation vs Google's reference (%s, %.1f MB, dupe_factor=%d, seq 128, %d cores)"
             % (time.strftime("%Y-%m-%d"), os.path.getsize(corpus) / 1e6, args.dupe_factor, os.cpu_count()),
             "", "| tool | instances | wall s | instances/s | CPU s | instances/CPU-s |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, count, wall, cpu in rows:
        lines.append("| %s | %d | %.1f | %.0f | %.1f | %.0f |" % (name, count, wall, count / wall, cpu, count / cpu))
    ratio_wall = (o_count / o_wall) / (g_count / g_wall)
    ratio_cpu = (o_count / o_cpu) / (g_count / g_cpu)
    load = os.getloadavg()[0]
    lines += ["", "load average at the end: %.1f on %d cores (other work on the machine slows both tools' wall "
              "time)" % (load, os.cpu_count())]
    lines += ["", "ratio (ours / Google): %.1fx instances/s (wall), %.1fx instances per CPU-second"
              % (ratio_wall, ratio_cpu), ""]
    table = "\n".join(lines)
    print(table)
    if args.append:
        with open(args.append, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
