"""Shared helpers for the benchmark scripts: synthetic batches, timing, tables.

Benchmarks measure; they never assert. Each script prints a Markdown table and
appends it to BENCHMARKS.md at the repository root.
"""

import os
import platform
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
BENCHMARKS_MD = os.path.join(REPO, "BENCHMARKS.md")


def synthetic_batch(tf, vocab_size, batch, seq_len, predictions, seed=0):
    """A deterministic MLM+NSP batch: random ids, full attention mask, `predictions` masked slots."""
    g = tf.random.Generator.from_seed(seed)
    ids = g.uniform([batch, seq_len], minval=5, maxval=vocab_size, dtype=tf.int32)
    positions = tf.sort(g.uniform([batch, predictions], minval=1, maxval=seq_len, dtype=tf.int32), axis=-1)
    return {
        "input_ids": ids,
        "input_mask": tf.ones([batch, seq_len], tf.int32),
        "segment_ids": tf.concat([tf.zeros([batch, seq_len // 2], tf.int32),
                                  tf.ones([batch, seq_len - seq_len // 2], tf.int32)], axis=1),
        "masked_lm_positions": positions,
        "masked_lm_ids": g.uniform([batch, predictions], minval=5, maxval=vocab_size, dtype=tf.int32),
        "masked_lm_weights": tf.ones([batch, predictions], tf.float32),
        "next_sentence_labels": g.uniform([batch, 1], minval=0, maxval=2, dtype=tf.int32),
    }


def timed(fn, repeats=1):
    """Seconds per call of fn() over `repeats` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def add_batch_shape(parser):
    """--batch, --seq_len and --predictions: the synthetic MLM+NSP batch every step benchmark times."""
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20, help="masked positions per sequence")


def median(values):
    return statistics.median(values)


def round_ratios(numerators, denominators):
    """numerators[i] / denominators[i] for each round i, sorted: two candidates timed in the same round
    (see `alternate`) are compared with each other, so a drift of the machine's speed between rounds
    cancels."""
    return sorted(a / b for a, b in zip(numerators, denominators))


def alternate(candidates, rounds, warmup=1):
    """Time each candidate's callable in turn, `rounds` times (A, B, A, B, ...); name -> [seconds].

    Each candidate is run `warmup` times first, also interleaved, so tracing and
    allocator growth are out of the measurement.
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(timed(fn))
    return times


def machine_line(tf=None):
    parts = ["%s, %d cores" % (platform.processor() or platform.machine(), os.cpu_count() or 0),
             "Python %s" % platform.python_version()]
    if tf is not None:
        parts.append("TensorFlow %s" % tf.__version__)
    try:
        parts.append("load average %.1f" % os.getloadavg()[0])
    except OSError:
        pass
    return ", ".join(parts)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(title, command, notes, table, machine, path=BENCHMARKS_MD):
    """Print the table and append it, with the command and machine that made it, to BENCHMARKS.md."""
    text = "\n## %s\n\n%s\n\nCommand: `%s`  \nMeasured %s UTC on %s.\n\n%s\n" % (
        title, notes, command, time.strftime("%Y-%m-%d %H:%M", time.gmtime()), machine, table)
    print(text)
    with open(path, "a") as f:
        f.write(text)
