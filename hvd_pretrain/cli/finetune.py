"""hvd-finetune: fine-tune a pre-trained checkpoint on a classification task; accuracy and F1 over seeds.

  hvd-finetune --checkpoint=runs/default --task_dir=glue/SST-2 --learning_rate=1e-4
        the newest good checkpoint of a run (or --checkpoint=.../checkpoints/ckpt-000000300)
  hvd-finetune --checkpoint=runs/default --all_checkpoints --task_dir=glue/SST-2
        every kept checkpoint of the run: downstream quality over pre-training steps
  hvd-finetune --init_from=chinese_L-12_H-768_A-12 --task_dir=clue/afqmc
        a Google TF1 checkpoint or a transformers directory
  hvd-finetune ... --random_init
        also the same architecture randomly initialised: the baseline pre-training has to beat

A task is GLUE or CLUE shaped: a directory with train.tsv / dev.tsv (a header row) or
train.jsonl / dev.jsonl (one JSON object per line), single sentences or sentence pairs;
or --train_file and --dev_file. Prints a table (mean +- std over --seeds) and writes JSON to
--out (default: <run>/finetune/<task>.json for a run's checkpoints).
"""

import os
import sys

from absl import flags

from hvd_pretrain.cli import options
from hvd_pretrain.cli.entry import entry
from hvd_pretrain.cli.flagutil import parse_flags
from hvd_pretrain.errors import ConfigError
from hvd_pretrain.finetune.config import FinetuneConfig


def _define(fv):
    where = dict(flag_values=fv, module_name=__name__)  # one help section, also under python -m

    def string(name, help):
        flags.DEFINE_string(name, None, help, **where)
    string("checkpoint", "Our pre-trained model: a run directory (its newest good checkpoint) or a checkpoint"
           " directory (checkpoints/ckpt-<step>).")
    string("init_from", "A public checkpoint: a Google TF1 BERT/ALBERT/ELECTRA checkpoint or a transformers"
           " directory.")
    flags.DEFINE_bool("all_checkpoints", False, "With --checkpoint=RUN_DIR: probe every kept checkpoint of the"
                      " run, oldest first.", **where)
    flags.DEFINE_bool("random_init", False, "Also probe the same architecture randomly initialised (the baseline).",
                      **where)
    string("task_dir", "GLUE/CLUE task directory holding train.{tsv,jsonl,json} and dev.{tsv,jsonl,json}.")
    string("train_file", "Training split (TSV with a header row, or JSON lines); overrides --task_dir's.")
    string("dev_file", "Evaluation split; overrides --task_dir's.")
    string("task_name", "Name in the report and the JSON file name (default: the task directory's name).")
    string("text_a", "Column (TSV header or JSON key) of the first text (default: the first of sentence,"
           " sentence1, text_a, text, question, question1, #1 String, ...).")
    string("text_b", "Column of the second text of a pair (default: the first of sentence2, text_b, question2,"
           " #2 String, ...; none: single sentences).")
    string("label", "Column of the label (default: label, Quality, gold_label or is_duplicate).")
    string("vocab", "Vocabulary (dir with spm.model / vocab.txt, or the file) when the checkpoint's cannot be found.")
    string("out", "Write the results as JSON here (default for a run: <run>/finetune/<task>.json).")
    options.define(FinetuneConfig, fv)


def _load_split(path, fv, pair=None):
    from hvd_pretrain.finetune.tasks import read_task
    return read_task(path, fv.text_a, fv.text_b, fv.label, pair=pair)


def _splits(fv):
    from hvd_pretrain.finetune.tasks import split_file
    if not (fv.task_dir or (fv.train_file and fv.dev_file)):
        raise ConfigError("give the task: --task_dir=DIR (train.tsv + dev.tsv, or .jsonl), or --train_file and"
                          " --dev_file")
    if fv.task_dir and not os.path.isdir(fv.task_dir):
        raise ConfigError("--task_dir=%s is not a directory" % fv.task_dir)
    train_path = fv.train_file or split_file(fv.task_dir, "train")
    dev_path = fv.dev_file or split_file(fv.task_dir, "dev")
    train = _load_split(train_path, fv)
    dev = _load_split(dev_path, fv, pair=train.is_pair)
    name = fv.task_name or os.path.basename(os.path.normpath(fv.task_dir or os.path.dirname(os.path.abspath(
        train_path))))
    return name, train, dev


def _subsample(task, limit, seed=0):
    if not limit or len(task) <= limit:
        return task
    import numpy as np
    return task.subset(sorted(np.random.RandomState(seed).choice(len(task), limit, replace=False)))


def _sources(fv):
    from hvd_pretrain.finetune.sources import Source, run_checkpoints
    given = [n for n in ("checkpoint", "init_from") if getattr(fv, n)]
    if len(given) != 1:
        raise ConfigError("pass exactly one of --checkpoint (a run or checkpoint directory) and --init_from (a"
                          " Google or transformers checkpoint); got %s" % (", ".join("--" + g for g in given) or "none"))
    if fv.all_checkpoints:
        if not fv.checkpoint or not os.path.isdir(os.path.join(fv.checkpoint, "checkpoints")):
            raise ConfigError("--all_checkpoints needs --checkpoint=RUN_DIR, a run directory with checkpoints/")
        sources = run_checkpoints(fv.checkpoint, fv.vocab)
    elif fv.checkpoint:
        sources = [Source.from_checkpoint(fv.checkpoint, fv.vocab)]
    else:
        sources = [Source.from_pretrained(fv.init_from, fv.vocab)]
    if fv.random_init:
        sources.append(sources[-1].random())
    return sources


def _default_out(fv, task_name):
    if fv.out:
        return fv.out
    if fv.checkpoint:
        from hvd_pretrain.rundir import RunDir
        run_dir = fv.checkpoint if os.path.isdir(os.path.join(fv.checkpoint, "checkpoints")) else \
            os.path.dirname(os.path.dirname(os.path.abspath(fv.checkpoint)))
        return RunDir(run_dir).finetune_result(task_name)
    return None


def format_table(report):
    """The report as text: one row per source, mean +- std over the seeds."""
    rows = [("model", "step", "accuracy", report["f1_name"])]
    for r in report["results"]:
        rows.append((r["source"], "" if r["step"] is None else str(r["step"]),
                     "%.4f +- %.4f" % (r["accuracy"]["mean"], r["accuracy"]["std"]),
                     "%.4f +- %.4f" % (r["f1"]["mean"], r["f1"]["std"])))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _main(fv):
    cfg = FinetuneConfig(**options.read(FinetuneConfig, fv, {f.name for f, _, _ in FinetuneConfig.options()}))
    cfg.validate()
    seeds = cfg.seed_list()
    name, train, dev = _splits(fv)
    sources = _sources(fv)
    config = sources[0].config
    for s in sources[1:]:
        if s.config.architecture_dict() != config.architecture_dict():
            raise ConfigError("checkpoint %s has another architecture than %s; probe them separately"
                              % (s.label, sources[0].label))
    if cfg.max_seq_length > config.max_position_embeddings:
        raise ConfigError("--max_seq_length=%d exceeds the model's max_position_embeddings=%d"
                          % (cfg.max_seq_length, config.max_position_embeddings))
    from hvd_pretrain.finetune.tasks import check_labels, label_order
    from hvd_pretrain.vocab.tokenizer import load_tokenizer
    train, dev = _subsample(train, cfg.max_train_examples), _subsample(dev, cfg.max_dev_examples)
    order = label_order(train.labels)
    check_labels(train, dev, order)
    tokenizer = load_tokenizer(sources[0].require_vocab())
    if tokenizer.vocab_size != config.vocab_size:
        raise ConfigError("vocab %s has %d entries but the model has vocab_size=%d; pass the checkpoint's --vocab"
                          % (sources[0].vocab, tokenizer.vocab_size, config.vocab_size))

    from hvd_pretrain.finetune.encode import encode_task
    from hvd_pretrain.finetune.probe import Prober, f1_name, probe
    train_split = encode_task(train, tokenizer, order, cfg.max_seq_length)
    dev_split = encode_task(dev, tokenizer, order, cfg.max_seq_length)
    print("task %s: %d training and %d dev examples, %s, labels %s; %d sources x %d seeds"
          % (name, len(train), len(dev), "sentence pairs" if train.is_pair else "single sentences",
             ", ".join(order), len(sources), len(seeds)), flush=True)
    prober = Prober(config, cfg, train_split, dev_split, order)
    say = lambda line: print(line, flush=True)  # noqa: E731
    results = [probe(prober, source, seeds, say) for source in sources]
    report = {"task": name, "train_file": train.path, "dev_file": dev.path, "train_examples": len(train),
              "dev_examples": len(dev), "pair": train.is_pair, "labels": order, "f1_name": f1_name(order),
              "model": config.to_dict(), "config": cfg.to_dict(), "results": results}
    print(format_table(report))
    out = _default_out(fv, name)
    if out:
        from hvd_pretrain.rundir import write_json_atomic
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        write_json_atomic(out, report)
        print("results: %s" % out)
    return 0


@entry
def run(argv=None):
    fv, code = parse_flags(_define, list(sys.argv if argv is None else argv))
    if code is not None:
        return code
    return _main(fv)


if __name__ == "__main__":
    # `python -m hvd_pretrain.cli.finetune`: run the module under its package name, so --help lists its flags.
    from hvd_pretrain.cli.finetune import run as _run
    sys.exit(_run())
