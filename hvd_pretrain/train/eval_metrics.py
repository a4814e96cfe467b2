"""Evaluation metrics from allreduced sums, their names, --keep_best parsing and the printed table.

Pure Python (no TensorFlow): the CLI validates --keep_best with it before the heavy imports.

Every metric is a ratio of two sums over the whole evaluation set (never a mean of per-batch
or per-rank ratios), so it does not depend on the batch size or the number of ranks:

    <objective>_loss          sum of per-target losses / targets (mlm: masked tokens; nsp, sop:
                              examples; rtd: real tokens)
    loss                      sum over objectives of weight x <objective>_loss (as in training)
    mlm_perplexity            exp(mlm_loss)
    mlm_accuracy              masked tokens predicted right / masked tokens (ELECTRA: the generator's)
    nsp_accuracy, sop_accuracy
    rtd_accuracy              real tokens classified right (replaced or original) / real tokens
    rtd_precision             replaced tokens flagged / tokens flagged as replaced
    rtd_recall                replaced tokens flagged / replaced tokens
    rtd_all_original_baseline the accuracy of always answering "original": 1 - replaced / real tokens
    examples, seconds         examples evaluated and the wall time the evaluation took
"""

import math

from hvd_pretrain.errors import ConfigError

OBJECTIVE_METRICS = {
    "mlm": ("mlm_loss", "mlm_perplexity", "mlm_accuracy"),
    "nsp": ("nsp_loss", "nsp_accuracy"),
    "sop": ("sop_loss", "sop_accuracy"),
    "rtd": ("rtd_loss", "rtd_accuracy", "rtd_precision", "rtd_recall", "rtd_all_original_baseline"),
}
COMMON_METRICS = ("loss", "examples", "seconds")
PREFIX = "eval/"


def metric_names(objectives):
    """Every metric an evaluation of a model with these objectives reports."""
    names = ["loss"]
    for objective in objectives:
        names.extend(OBJECTIVE_METRICS[objective])
    return names + ["examples", "seconds"]


def _ratio(num, den):
    """num / den, or None when den is 0 (e.g. precision when no token was flagged): JSON null, no chart point."""
    return num / den if den > 0 else None


def metrics_from_sums(sums, counts, objectives, weights, examples, seconds):
    """sums: {name: float} of the model's loss sums (loss_sums keys); counts: {objective: targets}."""
    out = {}
    total = 0.0
    for name in objectives:
        loss = _ratio(sums[name], counts[name])
        out[name + "_loss"] = loss
        total = None if total is None or loss is None else total + float(weights.get(name, 1.0)) * loss
    out["loss"] = total
    if "mlm" in objectives:
        mlm = out["mlm_loss"]
        out["mlm_perplexity"] = math.exp(min(mlm, 700.0)) if mlm is not None and math.isfinite(mlm) else None
    for name in objectives:
        if name + "_correct" in sums:
            out[name + "_accuracy"] = _ratio(sums[name + "_correct"], counts[name])
    if "rtd" in objectives:
        out["rtd_precision"] = _ratio(sums["rtd_replaced_correct"], sums["rtd_predicted"])
        out["rtd_recall"] = _ratio(sums["rtd_replaced_correct"], sums["rtd_replaced"])
        out["rtd_all_original_baseline"] = 1.0 - _ratio(sums["rtd_replaced"], counts["rtd"])
    out["examples"] = int(examples)
    out["seconds"] = round(float(seconds), 4)
    for name, value in counts.items():
        out[name + "_targets"] = int(round(value))
    return out


LOWER_IS_BETTER = ("loss", "perplexity")
HIGHER_IS_BETTER = ("accuracy", "precision", "recall")


def parse_keep_best(value):
    """--keep_best=eval/<metric>[:max|:min] -> (metric, "max"|"min"); ("", "") when empty.

    The direction is inferred from the name (loss, perplexity: lower is better; accuracy, precision,
    recall: higher) unless given. Raises ConfigError.
    """
    if not value:
        return "", ""
    name, _, direction = value.partition(":")
    metric = name[len(PREFIX):] if name.startswith(PREFIX) else name
    known = sorted({m for names in OBJECTIVE_METRICS.values() for m in names} | {"loss"})
    if metric not in known:
        raise ConfigError("--keep_best=%s: unknown metric %r; choose one of %s (an eval/ prefix is optional, a"
                          " :max or :min suffix sets the direction)" % (value, metric, ", ".join(PREFIX + k for k in known)))
    if direction:
        if direction not in ("max", "min"):
            raise ConfigError("--keep_best=%s: direction %r is neither max nor min" % (value, direction))
        return metric, direction
    if metric.endswith(LOWER_IS_BETTER):
        return metric, "min"
    if metric.endswith(HIGHER_IS_BETTER) or metric == "rtd_all_original_baseline":
        return metric, "max"
    raise ConfigError("--keep_best=%s: say whether higher or lower is better with :max or :min" % value)


def check_metric_available(metric, objectives, flag="--keep_best"):
    """ConfigError when a model with these objectives does not report `metric`."""
    names = metric_names(objectives)
    if metric not in names:
        raise ConfigError("%s: this model (objectives %s) reports no %s%s; choose one of %s"
                          % (flag, ", ".join(objectives), PREFIX, metric, ", ".join(PREFIX + n for n in names
                                                                                    if n not in COMMON_METRICS[1:])))


def better(value, best, direction):
    """True when `value` beats `best` (None: nothing yet) in `direction`; NaN never wins."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if direction == "max" else value < best


def format_table(metrics, title=""):
    """The metrics as an aligned two-column text table."""
    rows = [(PREFIX + k, ("%.6g" % v) if isinstance(v, float) else "-" if v is None else str(v))
            for k, v in metrics.items()]
    width = max(len(k) for k, _ in rows)
    lines = [title] if title else []
    lines += ["  %-*s  %s" % (width, k, v) for k, v in rows]
    return "\n".join(lines)
