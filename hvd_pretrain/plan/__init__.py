"""Capacity planner: memory, step time and throughput of data-parallel pre-training on GPU clusters.

Pure Python, no TensorFlow: `hvd-plan` and `hvd-pretrain --dry_run` both use it.
"""

from hvd_pretrain.plan.hardware import GPUS, INTRA_NODE, NETWORKS, PRECISIONS, PlanError
from hvd_pretrain.plan.estimate import format_prediction, predict
from hvd_pretrain.plan.search import best_accum_steps, consistent_plans

__all__ = ["GPUS", "INTRA_NODE", "NETWORKS", "PRECISIONS", "PlanError", "predict", "format_prediction",
           "best_accum_steps", "consistent_plans"]
