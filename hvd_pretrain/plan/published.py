"""Published training throughputs the planner is calibrated on and checked against.

Source: NVIDIA DeepLearningExamples, TensorFlow2/LanguageModeling/BERT/README.md,
"Training performance results" (BERT-large pre-training with LAMB, TensorFlow
21.02 NGC container, XLA on): single-node DGX-2 (16x V100 32GB), single-node
DGX A100 (8x A100 80GB), multi-node DGX A100.

Only the 1-GPU rows calibrate the planner: they run with 256 to 5120
accumulation steps, so communication and the optimizer update are amortised
away and the row measures compute efficiency alone. The multi-GPU rows are
left out of the calibration and used as validation.
"""

import math
from dataclasses import dataclass
from typing import Optional

from hvd_pretrain.models import flops
from hvd_pretrain.models.config import preset
from hvd_pretrain.plan.hardware import GPUS

SOURCE = ("NVIDIA DeepLearningExamples TensorFlow2/LanguageModeling/BERT README, "
          "pre-training performance tables (TF 21.02 NGC, BERT-large, LAMB, XLA)")


@dataclass(frozen=True)
class Measurement:
    gpu: str
    precision: str  # fp16 = "mixed precision" (AMP), fp32 = FP32 on V100 / TF32 on A100
    seq_len: int
    per_gpu_batch: int
    accum_steps: int
    gpus_per_node: int
    nodes: int
    sequences_per_sec: float
    weak_scaling: Optional[float] = None  # as published (relative to the table's first row)

    @property
    def gpus(self):
        return self.gpus_per_node * self.nodes

    @property
    def num_predictions(self):
        # The README's recipe: max_predictions_per_seq 20 at 128, 80 at 512.
        return 20 if self.seq_len == 128 else 80


# Single-GPU rows: calibration of compute efficiency.
CALIBRATION = (
    Measurement("V100-32G", "fp16", 128, 60, 1024, 1, 1, 206.5),
    Measurement("V100-32G", "fp16", 512, 10, 3072, 1, 1, 40.95),
    Measurement("V100-32G", "fp32", 128, 32, 2048, 1, 1, 49.97),
    Measurement("V100-32G", "fp32", 512, 6, 5120, 1, 1, 11.06),
    Measurement("A100-80G", "fp16", 128, 312, 256, 1, 1, 485.59),
    Measurement("A100-80G", "fp16", 512, 40, 768, 1, 1, 96.52),
    Measurement("A100-80G", "fp32", 128, 176, 512, 1, 1, 282.98),
    Measurement("A100-80G", "fp32", 512, 22, 1536, 1, 1, 54.92),
)

# Multi-GPU rows: validation only (fp16 = AMP, with Horovod fp16 gradient compression as the
# reference trainer uses when AMP is on).
VALIDATION = (
    Measurement("V100-32G", "fp16", 128, 60, 128, 8, 1, 1561.77, 7.56),
    Measurement("V100-32G", "fp16", 128, 60, 64, 16, 1, 3077.99, 14.9),
    Measurement("V100-32G", "fp16", 512, 10, 384, 8, 1, 312.03, 7.62),
    Measurement("A100-80G", "fp16", 128, 312, 32, 8, 1, 3799.24, 7.82),
    Measurement("A100-80G", "fp16", 512, 40, 96, 8, 1, 649.69, 6.73),
    Measurement("A100-80G", "fp16", 128, 312, 16, 8, 2, 7551.37, 1.99),
    Measurement("A100-80G", "fp16", 128, 312, 4, 8, 8, 29711.11, 7.81),
    Measurement("A100-80G", "fp16", 128, 312, 1, 8, 32, 110280.73, 28.99),
)

_CALIBRATION_MODEL = "large"
_GENERATION = {"V100-16G": "V100", "V100-32G": "V100", "A100-40G": "A100", "A100-80G": "A100", "H100": "A100"}


def measured_efficiency(m, peak):
    """Achieved model FLOP/s of a measurement over the GPU's peak."""
    per_seq = flops.training_flops_per_sequence(preset(_CALIBRATION_MODEL), m.seq_len, m.num_predictions)
    return m.sequences_per_sec / m.gpus * per_seq / peak


def compute_efficiency(gpu, precision, seq_len):
    """(fraction of peak, explanation) for a GPU, precision and sequence length.

    Interpolates in log(seq_len) between the 128 and 512 calibration rows of
    the same GPU generation and precision (clamped outside). bf16 uses the fp16
    rows (same tensor-core peak). H100 has no row in the source and reuses
    the A100 rows, which likely overstates it: its FLOP/s grew 3.2x over A100
    but its memory bandwidth only 1.6x.
    """
    family = _GENERATION[gpu.name]
    looked_up = "fp16" if precision == "bf16" else precision
    rows = {m.seq_len: m for m in CALIBRATION if m.gpu.startswith(family) and m.precision == looked_up}
    eff = {s: measured_efficiency(m, GPUS[m.gpu].peak[looked_up]) for s, m in rows.items()}
    lo, hi = min(eff), max(eff)
    x = min(max(seq_len, lo), hi)
    t = (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo))
    value = eff[lo] + t * (eff[hi] - eff[lo])
    note = "%s %s: %.1f%% of peak at L=128, %.1f%% at L=512 (1-GPU rows of %s)" % (
        family, looked_up, 100 * eff[lo], 100 * eff[hi], SOURCE)
    if gpu.name == "H100":
        note += "; H100 has no published row there: A100 efficiency reused, likely optimistic"
    return value, note

