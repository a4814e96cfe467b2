"""Input pipeline throughput vs what BERT-base consumes at seq 128, on this machine.

1. Builds pre-training data from the embedded corpus (static and dynamic masking).
2. Pipeline: examples/sec delivered to a no-op consumer by the training stream
   (`make_stream_dataset`, exact resume) and by the per-rank shard reader
   (`make_dataset`), measured in alternating rounds.
3. Model: examples/sec of full BERT-base optimizer steps (forward, backward,
   Adam update; world size 1) on the same batches.

    python benchmarks/data_pipeline_throughput.py [--batch_size=16] [--model_steps=3] [--append=BENCHMARKS.md]

Prints a markdown table with the ratio pipeline / model.
"""

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _iterator(kind, data_dir, batch_size):
    from hvd_pretrain.data import list_shards, make_dataset
    from hvd_pretrain.data.cursor import DataCursor
    from hvd_pretrain.data.pipeline import make_stream_dataset
    from hvd_pretrain.data.stream import record_counts

    if kind == "shard reader":
        return iter(make_dataset(data_dir, batch_size, 128, 20, seed=1))
    files = list_shards(data_dir)
    counts = record_counts(files)
    return iter(make_stream_dataset([(files, counts)], DataCursor.start(counts, files, 1, 1), 0, batch_size, 128, 20))


def pipeline_rate(kind, data_dir, batch_size, batches):
    iterator = _iterator(kind, data_dir, batch_size)
    for _ in range(5):  # fill the shuffle buffer and the prefetch queue
        next(iterator)
    start = time.time()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.time() - start)


def alternated(data_dir, batch_size, batches, rounds=3):
    """{kind: median examples/s} over `rounds` alternating measurements."""
    rates = {"training stream": [], "shard reader": []}
    for _ in range(rounds):
        for kind in rates:
            rates[kind].append(pipeline_rate(kind, data_dir, batch_size, batches))
    return {kind: sorted(r)[len(r) // 2] for kind, r in rates.items()}


def model_rate(data_dir, batch_size, steps):
    """BERT-base optimizer steps (forward, backward, Adam update) per second, times the batch size."""
    from hvd_pretrain.data import make_dataset
    from hvd_pretrain.models import build_pretrainer, preset
    from hvd_pretrain.tfcompat import keras, tf

    model = build_pretrainer(preset("base", vocab_size=30522))
    optimizer = keras.optimizers.Adam(1e-4)
    iterator = iter(make_dataset(data_dir, batch_size, 128, 20, seed=1))

    @tf.function
    def train_step(features):
        with tf.GradientTape() as tape:
            sums = model.loss_sums(features, training=True)
            counts = model.target_counts(features)
            loss = tf.add_n([tf.cast(sums[k], tf.float32) / tf.maximum(tf.cast(counts[k], tf.float32), 1.0)
                             for k in model.objectives])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])
        return loss

    train_step(next(iterator))  # builds the variables and traces the step
    batches = [next(iterator) for _ in range(steps)]
    start = time.time()
    for batch in batches:
        train_step(batch).numpy()
    return steps * batch_size / (time.time() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--pipeline_batches", type=int, default=300)
    parser.add_argument("--model_steps", type=int, default=3)
    parser.add_argument("--append", default="")
    args = parser.parse_args()

    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data import DataConfig, create_pretraining_data
    from hvd_pretrain.vocab import train_sentencepiece

    corpus = default_corpus()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vocab = os.path.join(tmp, "vocab")
        train_sentencepiece([corpus], vocab, 8000)
        for masking in ("static", "dynamic"):
            out = os.path.join(tmp, masking)
            create_pretraining_data([corpus], vocab, out, DataConfig(dupe_factor=2, masking=masking,
                                                                     whole_word_masking=masking == "dynamic"),
                                    num_workers=os.cpu_count() or 1)
            for kind, rate in alternated(out, args.batch_size, args.pipeline_batches).items():
                rows.append(("%s, %s masking%s" % (kind, masking, " (whole-word)" if masking == "dynamic" else ""),
                             rate))
        model = model_rate(os.path.join(tmp, "static"), args.batch_size, args.model_steps)
    lines = ["### Input pipeline vs BERT-base consumption (%s, seq 128, batch %d, %d cores, CPU)"
             % (time.strftime("%Y-%m-%d"), args.batch_size, os.cpu_count()), "",
             "| consumer | examples/s | pipeline / model |", "|---|---:|---:|"]
    for label, rate in rows:
        lines.append("| %s, no-op consumer | %.0f | %.0fx |" % (label, rate, rate / model))
    lines.append("| BERT-base optimizer steps (fwd + bwd + Adam) | %.2f | 1x |" % model)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.append:
        with open(args.append, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
