"""hvd-plan: predict memory, step time and throughput of a pre-training job on a GPU cluster.

  hvd-plan --model=base --seq_len=128 --per_gpu_batch=64 --accum_steps=4 \\
           --precision=fp16 --gpu=V100-16G --gpus_per_node=8 --nodes=4 --network=infiniband

  --target_global_batch=N   also rank every accum_steps that splits N exactly
  --step_rate=LO,HI         list per-GPU batch x accum plans whose global step/s falls in [LO, HI]
  --validate                compare the planner with NVIDIA's published BERT-large throughputs
  --json                    print the prediction as JSON

No TensorFlow import: the planner is arithmetic on the model config.
"""

import json
import sys

from absl import flags

from hvd_pretrain.cli import options
from hvd_pretrain.cli.entry import entry
from hvd_pretrain.cli.flagutil import parse_flags
from hvd_pretrain.errors import ConfigError, PlanError

from hvd_pretrain.models.config import PRESETS, ModelConfig
from hvd_pretrain.plan import hardware, published, search
from hvd_pretrain.plan.estimate import format_prediction, predict


def _define(fv):
    flags.DEFINE_string("preset", "base", "model size preset: " + ", ".join(PRESETS), flag_values=fv)
    flags.DEFINE_string("model_config", None, "JSON file with a ModelConfig (overrides --preset)", flag_values=fv)
    flags.DEFINE_integer("max_seq_length", 128, "sequence length", flag_values=fv)
    flags.DEFINE_integer("micro_batch_size", 32, "micro-batch: sequences per GPU in one micro-step", flag_values=fv)
    flags.DEFINE_integer("accum_steps", 1, "gradient accumulation steps per optimizer step", flag_values=fv)
    flags.DEFINE_integer("max_predictions_per_seq", None, "MLM predictions per sequence (default"
                         " ceil(0.15 * max_seq_length))",
                         flag_values=fv)
    flags.DEFINE_string("precision", "fp16", "fp32 | fp16 | bf16", flag_values=fv)
    flags.DEFINE_string("gpu_type", "V100-32G", "GPU type: " + ", ".join(hardware.GPUS), flag_values=fv)
    flags.DEFINE_integer("gpus_per_node", 8, "GPUs per node", flag_values=fv)
    flags.DEFINE_integer("nodes", 1, "number of nodes", flag_values=fv)
    flags.DEFINE_string("interconnect", "nvlink", "intra-node link: " + ", ".join(hardware.INTRA_NODE),
                        flag_values=fv)
    flags.DEFINE_string("network", "infiniband", "inter-node network: " + ", ".join(hardware.NETWORKS),
                        flag_values=fv)
    flags.DEFINE_integer("nics_per_node", None, "NICs per node (default: DGX rails for infiniband, else 1)",
                         flag_values=fv)
    flags.DEFINE_bool("fp16_allreduce", False, "allreduce gradients in fp16 (Horovod compression)", flag_values=fv)
    flags.DEFINE_string("allreduce", "auto", "auto | ring | hierarchical", flag_values=fv)
    flags.DEFINE_bool("overlap", True, "the allreduce overlaps the last micro-batch's backward pass, in gradient "
                      "groups in reverse layer order, as the trainer does; --nooverlap: the whole allreduce "
                      "starts after backward", flag_values=fv)
    flags.DEFINE_integer("fusion_threshold_mb", 128, "Horovod's fusion buffer in MiB (HOROVOD_FUSION_THRESHOLD)",
                         flag_values=fv)
    flags.DEFINE_float("cycle_time_ms", 1.0, "Horovod's cycle time in ms (HOROVOD_CYCLE_TIME)", flag_values=fv)
    flags.DEFINE_bool("recompute", False, "recompute activations in the backward pass", flag_values=fv)
    flags.DEFINE_float("efficiency", None, "override the compute efficiency (fraction of peak)", flag_values=fv)
    flags.DEFINE_integer("target_global_batch", None, "rank accum_steps choices for this global batch",
                         flag_values=fv)
    flags.DEFINE_string("step_rate", None, "LO,HI: list plans whose global step/s is in this range", flag_values=fv)
    flags.DEFINE_bool("validate", False, "compare with NVIDIA's published BERT-large throughputs", flag_values=fv)
    flags.DEFINE_bool("json", False, "print JSON instead of text", flag_values=fv)
    options.define_deprecated(fv, RENAMED)


# Old flag names, accepted for one release with a warning: the same names as hvd-pretrain's.
RENAMED = {"model": "preset", "seq_len": "max_seq_length", "per_gpu_batch": "micro_batch_size",
           "num_predictions": "max_predictions_per_seq", "gpu": "gpu_type"}
# The planner's argument names (they start a PlanError's message) -> this tool's flags.
ARGUMENT_FLAGS = {"seq_len": "max_seq_length", "per_gpu_batch": "micro_batch_size", "gpu": "gpu_type",
                  "num_predictions": "max_predictions_per_seq"}


def _model(fv):
    if fv.model_config:
        try:
            with open(fv.model_config) as f:
                return ModelConfig.from_dict(json.load(f)).validate()
        except (OSError, ValueError) as e:
            raise ConfigError("--model_config=%s: %s" % (fv.model_config, e))
    if fv.preset not in PRESETS:
        raise ConfigError("--preset=%r is unknown; choose one of %s" % (fv.preset, ", ".join(PRESETS)))
    return fv.preset


def _step_rate(text):
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError("--step_rate=%r must be LO,HI (e.g. 1.3,1.9)" % text)
    if not 0 < lo <= hi:
        raise ConfigError("--step_rate=%r must satisfy 0 < LO <= HI" % text)
    return lo, hi


def reference_prediction(m):
    """The planner's prediction for a published measurement, run as NVIDIA's reference trainer runs it:
    AMP with Horovod fp16 compression; the allreduce overlaps backward only without accumulation
    (hvd.DistributedGradientTape), and with accumulation starts after the last micro-batch."""
    return predict("large", m.seq_len, m.per_gpu_batch, m.accum_steps, m.precision, m.gpu, m.gpus_per_node,
                   m.nodes, "nvlink", fp16_allreduce=True, overlap=m.accum_steps == 1,
                   num_predictions=m.num_predictions)


def validation_table():
    """Rows of (measurement, prediction dict, error) for the published multi-GPU runs."""
    return [(m, p, p["sequences_per_sec"] / m.sequences_per_sec - 1.0)
            for m, p in ((m, reference_prediction(m)) for m in published.VALIDATION)]


def _print_validation():
    print("BERT-large, fp16 (AMP), measured: " + published.SOURCE)
    print("%-9s %4s %5s %6s %6s %8s %12s %12s %7s %9s" % (
        "gpu", "seq", "gpus", "batch", "accum", "overlap", "published", "predicted", "error", "exposed"))
    for m, p, err in validation_table():
        print("%-9s %4d %5d %6d %6d %8s %12.1f %12.1f %+6.1f%% %6.1f ms" % (
            m.gpu, m.seq_len, m.gpus, m.per_gpu_batch, m.accum_steps, "yes" if p["inputs"]["overlap"] else "no",
            m.sequences_per_sec, p["sequences_per_sec"], 100 * err, 1e3 * p["allreduce"]["exposed_sec"]))


def _main(fv):
    if fv.validate:
        _print_validation()
        return 0
    model = _model(fv)
    if fv.fusion_threshold_mb < 1:
        raise ConfigError("--fusion_threshold_mb=%d must be at least 1 (Horovod's 0, no fusion, is not modelled)"
                          % fv.fusion_threshold_mb)
    if fv.cycle_time_ms < 0:
        raise ConfigError("--cycle_time_ms=%g must be >= 0" % fv.cycle_time_ms)
    options = dict(network=fv.network, nics_per_node=fv.nics_per_node, fp16_allreduce=fv.fp16_allreduce,
                   allreduce=fv.allreduce, overlap=fv.overlap, recompute=fv.recompute,
                   num_predictions=fv.max_predictions_per_seq, efficiency=fv.efficiency,
                   fusion_bytes=fv.fusion_threshold_mb * 1024 ** 2, cycle_sec=fv.cycle_time_ms / 1e3)
    p = predict(model, fv.max_seq_length, fv.micro_batch_size, fv.accum_steps, fv.precision, fv.gpu_type, fv.gpus_per_node,
                fv.nodes, fv.interconnect, **options)
    extra = {}
    if fv.target_global_batch is not None:
        best, rows = search.best_accum_steps(model, fv.max_seq_length, fv.target_global_batch, fv.precision, fv.gpu_type,
                                             fv.gpus_per_node, fv.nodes, fv.interconnect, **options)
        extra["best_accum"] = {"best": best, "rows": rows}
    if fv.step_rate is not None:
        lo, hi = _step_rate(fv.step_rate)
        extra["consistent_plans"] = search.consistent_plans(
            model, fv.max_seq_length, fv.precision, fv.gpu_type, fv.gpus_per_node, fv.nodes, (lo, hi), fv.interconnect,
            **options)
    if fv.json:
        print(json.dumps(dict(p, **extra), indent=2, sort_keys=True))
        return 0
    print(format_prediction(p))
    if "best_accum" in extra:
        print("\naccum_steps for global batch %d:" % fv.target_global_batch)
        print("  %6s %10s %6s %10s %12s" % ("accum", "batch/GPU", "fits", "step/s", "seq/s"))
        for r in extra["best_accum"]["rows"]:
            print("  %6d %10d %6s %10.3f %12.1f" % (r["accum_steps"], r["per_gpu_batch"], "yes" if r["fits"] else "no",
                                                  r["global_step_per_sec"], r["sequences_per_sec"]))
        best = extra["best_accum"]["best"]
        print("best: " + ("accum_steps=%d (per-GPU batch %d)" % (best["accum_steps"], best["per_gpu_batch"])
                          if best else "none fits in memory"))
    if "consistent_plans" in extra:
        print("\nplans with global step/s in [%s]:" % fv.step_rate)
        for r in extra["consistent_plans"] or []:
            print("  batch/GPU %4d x accum %2d -> global batch %6d, %.2f step/s, %.0f seq/s, %.1f GiB"
                  % (r["per_gpu_batch"], r["accum_steps"], r["global_batch"], r["global_step_per_sec"],
                     r["sequences_per_sec"], r["memory_gib"]))
        if not extra["consistent_plans"]:
            print("  none")
    return 0


@entry
def run(argv=None):
    fv, code = parse_flags(_define, list(sys.argv if argv is None else argv))
    if code is not None:
        return code
    options.resolve_deprecated(fv, RENAMED)
    try:
        return _main(fv)
    except PlanError as e:  # its message starts with the planner's argument name: say the flag's
        name, _, rest = str(e).partition("=")
        raise PlanError("--%s=%s" % (ARGUMENT_FLAGS.get(name, name), rest) if rest else "--%s" % e) from None


if __name__ == "__main__":
    sys.exit(run())
