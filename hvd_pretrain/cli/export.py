"""hvd-export: write a trained model as a Hugging Face transformers directory.

  hvd-export --run_dir=runs/default --out=exported/default
        the newest good checkpoint of a run, with the run's vocab (its vocab/, or the one its data was made with)
  hvd-export --checkpoint=runs/default/checkpoints/ckpt-000000300 --out=exported/step300
  hvd-export --run_dir=runs/default --best --out=exported/best
        the checkpoint hvd-pretrain --keep_best kept (the best eval metric), not the newest
  hvd-export --from_pretrained=chinese_L-12_H-768_A-12 --out=exported/zh
        convert a Google TF1 BERT/ALBERT checkpoint (or a transformers directory)

BERT -> BertForPreTraining, ALBERT -> AlbertForPreTraining, ELECTRA ->
ElectraForPreTraining (the discriminator, in --out) and ElectraForMaskedLM
(the generator, in --out/generator). Load with e.g.
transformers.AutoModel.from_pretrained(out). An existing --out is replaced
only with --overwrite.
"""

import os
import sys

from absl import flags

from hvd_pretrain.cli.entry import entry
from hvd_pretrain.cli.flagutil import parse_flags
from hvd_pretrain.errors import ConfigError

from hvd_pretrain.rundir import RunDir, read_json


def _define(fv):
    flags.DEFINE_string("run_dir", None, "export the latest checkpoint of this run directory", flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "export this checkpoint directory (checkpoints/ckpt-<step>)",
                        flag_values=fv)
    flags.DEFINE_string("from_pretrained", None, "convert a Google TF1 checkpoint or transformers directory",
                        flag_values=fv)
    flags.DEFINE_string("generator", None, "with --from_pretrained: the ELECTRA generator's directory",
                        flag_values=fv)
    flags.DEFINE_string("vocab", None, "vocab dir or file to include (default: the run's vocab/, or the "
                        "vocab.txt beside a Google checkpoint)", flag_values=fv)
    flags.DEFINE_string("out", None, "output directory", flag_values=fv)
    flags.DEFINE_bool("best", False, "with --run_dir: export the checkpoint --keep_best kept (checkpoints/best/)"
                      " instead of the newest", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "replace an existing --out", flag_values=fv)
    flags.DEFINE_bool("allow_missing", False, "with --from_pretrained: write tensors the source lacks (e.g. an "
                      "ELECTRA generator without --generator, heads of a bare encoder) with their initial random "
                      "values; they are listed", flag_values=fv)


def _has_vocab(path):
    return bool(path) and (os.path.isfile(path) or any(os.path.isfile(os.path.join(path, name))
                                                       for name in ("spm.model", "vocab.txt")))


def _default_vocab(fv):
    """--vocab, else the run's vocab/, else the vocab its plan.json names (a run trained on --data_dir),
    else the vocab beside a public checkpoint; None when there is none."""
    if fv.vocab:
        return fv.vocab
    if fv.run_dir or fv.checkpoint:
        rundir = RunDir(fv.run_dir or os.path.dirname(os.path.dirname(os.path.abspath(fv.checkpoint))))
        candidates = [rundir.vocab_dir, ((read_json(rundir.plan) or {}).get("data") or {}).get("vocab_dir")]
    else:
        src = fv.from_pretrained
        candidates = [src if os.path.isdir(src) else os.path.dirname(src)]
    return next((c for c in candidates if _has_vocab(c)), None)


def _best_checkpoint(run_dir):
    """The checkpoint --keep_best kept in run_dir (checkpoints/best/ckpt-N)."""
    from hvd_pretrain.checkpoint_files import newest_good_checkpoint

    _, path, _ = newest_good_checkpoint(RunDir(run_dir).best_checkpoints)
    if not path:
        raise ConfigError("%s has no best checkpoint (%s); train with --keep_best=eval/<metric> and evaluation,"
                          " or export the newest without --best" % (run_dir, RunDir(run_dir).best_checkpoints))
    record = read_json(os.path.join(path, "state.json"), {}).get("keep_best") or {}
    if record:
        print("best checkpoint by %s (%s): %s = %.6g" % (record.get("metric"), record.get("direction"),
                                                         record.get("metric"), record.get("value")))
    return path


def _main(fv):
    sources = [name for name in ("run_dir", "checkpoint", "from_pretrained") if getattr(fv, name)]
    if len(sources) != 1:
        raise ConfigError("pass exactly one of --run_dir, --checkpoint, --from_pretrained (got %s)"
                         % (", ".join("--" + s for s in sources) or "none"))
    if not fv.out:
        raise ConfigError("--out is required: the directory to write")
    if fv.best and not fv.run_dir:
        raise ConfigError("--best exports the best checkpoint of a run: give --run_dir (not --%s)" % sources[0])
    source = getattr(fv, sources[0])
    if not os.path.exists(source) and not os.path.exists(source + ".index"):
        raise ConfigError("--%s=%s does not exist" % (sources[0], source))
    if os.path.exists(fv.out) and not fv.overwrite:
        raise ConfigError("--out=%s already exists; pass --overwrite to replace it" % fv.out)
    from hvd_pretrain.export.hf import export_hf

    if fv.from_pretrained:
        from hvd_pretrain.export.importers import config_from_pretrained, describe_missing, load_pretrained
        from hvd_pretrain.models import build_pretrainer
        model = build_pretrainer(config_from_pretrained(source, fv.generator)).build_for()
        report = load_pretrained(model, source, fv.generator)
        if report["missing"] and not fv.allow_missing:
            raise ConfigError("%s lacks %s that the export would write with random values; %s"
                             % (source, describe_missing(report["missing"]),
                                "pass --generator=DIR for the ELECTRA generator, or --allow_missing to write it"
                                " as initialised" if any(k.startswith("generator/") for k in report["missing"])
                                else "pass --allow_missing to write them as initialised"))
        origin = "%s (%d tensors loaded; kept their initial values: %s)" % (
            ", ".join(report["sources"].values()), report["loaded"], describe_missing(report["missing"]))
    else:
        from hvd_pretrain.export.checkpoints import load_checkpoint_model
        model, origin = load_checkpoint_model(_best_checkpoint(fv.run_dir) if fv.best else source)
    vocab = _default_vocab(fv)
    if vocab is None:
        print("warning: no vocabulary found for %s, so %s gets no tokenizer; pass --vocab=DIR (the directory"
              " hvd-data vocab wrote)" % (source, fv.out), file=sys.stderr)
    written = export_hf(model, fv.out, vocab_dir=vocab, overwrite=fv.overwrite)
    for part, path in written.items():
        label = "" if part == "model" else " (%s)" % part
        print("exported %s%s from %s to %s" % (model.config.family, label, origin, path))
    return 0


@entry
def run(argv=None):
    fv, code = parse_flags(_define, list(sys.argv if argv is None else argv))
    if code is not None:
        return code
    return _main(fv)


if __name__ == "__main__":
    sys.exit(run())
