"""hvd-pretrain --eval_only: evaluate one checkpoint on held-out data, print a table, write JSON.

The model comes from (first that is given):
  --checkpoint=PATH   a checkpoint dir (ckpt-N), a checkpoints/ dir (its newest good one;
                      checkpoints/best for the --keep_best one) or a run dir
  --init_from=DIR     a Google TF1 checkpoint or a transformers directory
  --run_dir           its newest good checkpoint
The data comes from --eval_data_dir, else --data_dir/eval, else --data_dir's own shards,
else the eval/ split of the data the checkpoint's run trained on (plan.json). It must be
statically masked. Under horovodrun every rank evaluates a slice (train/evaluate.py).

The JSON (--eval_output, default <run dir>/eval/<ckpt-N or the --init_from dir's name>.json) holds the metrics and
where the model and data came from.
"""

import os
import time

from hvd_pretrain.checkpoint_files import MODEL_CONFIG, CheckpointDamaged, newest_good_checkpoint, verify_checkpoint
from hvd_pretrain.errors import CheckpointError, ConfigError, UsageError
from hvd_pretrain.rundir import BEST, RunDir, read_json, write_json_atomic


def _checkpoint_path(path, flag="--checkpoint"):
    if not os.path.exists(path):
        raise CheckpointError("%s=%s does not exist; give --checkpoint (a checkpoint dir, a checkpoints/ dir or a"
                              " run dir) or --init_from" % (flag, path))
    if os.path.isfile(os.path.join(path, "state.json")):
        return path
    for candidate in (path, RunDir(path).checkpoints):
        _, found, _ = newest_good_checkpoint(candidate)
        if found:
            return found
    raise CheckpointError("%s=%s holds no complete checkpoint (ckpt-*/state.json); give --checkpoint or --init_from"
                          % (flag, path))


def _run_dir_of(checkpoint):
    parent = os.path.dirname(os.path.abspath(checkpoint))
    if os.path.basename(parent) == BEST:
        parent = os.path.dirname(parent)
    return os.path.dirname(parent)


def _eval_dir(spec, run_dir):
    from hvd_pretrain.train.evaluate import default_eval_dir

    cfg, source = spec.train, spec.source
    if cfg.eval_data_dir:
        return cfg.eval_data_dir, "--eval_data_dir"
    if source.data_dir:
        return default_eval_dir(source.data_dir) or source.data_dir, "--data_dir"
    trained_on = ((read_json(RunDir(run_dir).plan, {}) or {}).get("data") or {}).get("data_dir") if run_dir else None
    found = default_eval_dir(trained_on) if trained_on else None
    if found:
        return found, "the run's eval split"
    raise ConfigError("--eval_only needs held-out data: give --eval_data_dir or --data_dir (data made with hvd-data"
                      " create --eval_fraction has an eval/ split)")


def plan_evaluation(spec, checkpoint="", output=""):
    """What to evaluate on which data, and where the JSON goes (a dict); raises UsageError."""
    from hvd_pretrain.models.config import ModelConfig
    from hvd_pretrain.train.evaluate import eval_source

    source = spec.source
    if checkpoint or not source.init_from:
        path = _checkpoint_path(checkpoint or spec.train.run_dir, "--checkpoint" if checkpoint else "--run_dir")
        try:
            state = verify_checkpoint(path)
        except CheckpointDamaged as e:
            raise CheckpointDamaged("--checkpoint: %s is damaged (%s)" % (path, e)) from None
        model = ModelConfig.from_dict(read_json(os.path.join(path, MODEL_CONFIG)))
        run_dir, name, step = _run_dir_of(path), os.path.basename(path), int(state.get("step", 0))
        origin = {"checkpoint": os.path.abspath(path), "step": step}
    else:
        model = spec.model
        run_dir, name, step = spec.train.run_dir, os.path.basename(os.path.normpath(source.init_from)), None
        origin = {"init_from": os.path.abspath(source.init_from)}
    eval_dir, flag = _eval_dir(spec, run_dir)
    data = eval_source(eval_dir, model, spec.train.max_seq_length, spec.train.max_predictions_per_seq,
                       flag="--eval_data_dir" if flag.startswith("the") else flag)
    if not output:
        output = os.path.join(RunDir(run_dir).eval_results, name + ".json")
    return {"model": model.to_dict(), "origin": origin, "data": data, "output": output, "name": name}


def _load(model, origin, spec):
    from hvd_pretrain.tfcompat import tf

    if "checkpoint" in origin:
        status = tf.train.Checkpoint(model=model).read(os.path.join(origin["checkpoint"], "ckpt")).expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise CheckpointError("%s does not hold every weight of its model_config.json's model (%s)"
                                  % (origin["checkpoint"], str(e)[:200])) from None
        return
    from hvd_pretrain.export.importers import load_pretrained
    load_pretrained(model, origin["init_from"], spec.source.init_from_generator or None)


def evaluate_only(spec, checkpoint="", output="", printer=print):
    """Evaluate and report; returns the exit code (0, or 2 after a one-line error)."""
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.models.config import ModelConfig
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train import distributed
    from hvd_pretrain.train.eval_metrics import format_table
    from hvd_pretrain.train.evaluate import Evaluator
    from hvd_pretrain.train.resolve import print_error

    hvd = distributed.init_horovod(spec.train.threads)
    status, plan = None, None
    if hvd.rank() == 0:
        try:
            plan = plan_evaluation(spec, checkpoint, output)
        except UsageError as e:
            status = str(e)
    status, plan = hvd.broadcast_object((status, plan), root_rank=0, name="eval_plan")
    if status:
        if hvd.rank() == 0:
            print_error(status)
        return 2
    keras.utils.set_random_seed(spec.train.seed)
    model = build_pretrainer(ModelConfig.from_dict(plan["model"]))
    model.build_for(batch=1, seq_length=plan["data"]["max_seq_length"], predictions=plan["data"]["max_predictions"])
    try:
        _load(model, plan["origin"], spec)
        metrics = Evaluator(model, hvd, plan["data"], spec.train.per_rank_batch, spec.train.eval_examples).run()
    except UsageError as e:
        if hvd.rank() == 0:
            print_error(str(e))
        return e.exit_code
    if hvd.rank() == 0:
        record = {"time": time.time(), **plan["origin"], "eval_data": plan["data"]["data_dir"],
                  "world_size": hvd.size(), "model": {k: plan["model"][k] for k in ("family", "preset")
                                                      if k in plan["model"]}, "eval": metrics}
        os.makedirs(os.path.dirname(os.path.abspath(plan["output"])), exist_ok=True)
        write_json_atomic(plan["output"], record)
        where = plan["origin"].get("checkpoint") or plan["origin"]["init_from"]
        printer(format_table(metrics, "eval of %s on %s" % (where, plan["data"]["data_dir"])))
        printer("wrote %s" % plan["output"])
    return 0
