"""Accumulation equivalence: np=2 x accum=2 x b == np=1 x accum=4 x b == np=1 x accum=1 x 4b.

The probe (tests/scripts/accum_probe.py) builds the same tiny BERT (dropout 0) on a fixed
global batch of 16 examples whose masked-token counts differ between examples, computes one
optimizer step's allreduced gradient and applies one plain-SGD step. The trainer normalises each
objective by its global target count, so all three layouts must agree to fp32 rounding even
though the micro-batches hold different numbers of masked tokens. Each layout also takes the
trainer's path (the allreduce in groups overlapping the last backward pass) from the same start,
which must give the same step to 1e-6.
"""

import os

import numpy as np
import pytest

from proc import BIN, REPO, run

PROBE = os.path.join(REPO, "tests", "scripts", "accum_probe.py")


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.horovod
@pytest.mark.timeout(300)
def test_three_layouts_give_the_same_gradient_and_sgd_step(tmp_path, probe_layouts):
    python = os.path.join(BIN, "python")
    run([os.path.join(BIN, "horovodrun"), "-np", "2", "--gloo", python, PROBE, "--out", str(tmp_path / "np2"),
         "--accum", "2", "--batch", "4"], timeout=150)
    np2_r0 = _load(tmp_path / "np2" / "rank0.npz")
    np2_r1 = _load(tmp_path / "np2" / "rank1.npz")
    # The one-process layouts (conftest.probe_layouts): accum 4 x batch 4 and accum 1 x batch 16.
    acc4 = _load(os.path.join(probe_layouts["accum4"], "rank0.npz"))
    big = _load(os.path.join(probe_layouts["big"], "rank0.npz"))
    layouts = {"np2_rank0": np2_r0, "np2_rank1": np2_r1, "accum4": acc4}

    assert len({str(z["init_digest"]) for z in (np2_r0, np2_r1, acc4, big)}) == 1, "initial weights differ"
    names = list(big["names"])
    assert len(names) > 20
    for label, z in layouts.items():
        assert list(z["names"]) == names
        assert float(z["loss"]) == pytest.approx(float(big["loss"]), rel=1e-5), label
        for i, name in enumerate(names):
            ref = big["grad_%d" % i]
            got = z["grad_%d" % i]
            scale = float(np.max(np.abs(ref)))
            # Key biases have a gradient of exactly 0 in theory; their float noise is ~1e-12.
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * scale + 1e-9, err_msg="%s %s" % (label, name))
            np.testing.assert_allclose(z["weight_%d" % i], big["weight_%d" % i], rtol=0, atol=2e-7,
                                       err_msg="%s %s after SGD" % (label, name))
    # The trainer's overlapped, bucketed allreduce gives the same gradient to 1e-6 in every layout:
    # both paths take one SGD step of rate 0.5 from the same weights, so their weights differ by
    # 0.5 x the gradients' difference.
    for label, z in dict(layouts, big=big).items():
        worst = max(float(np.max(np.abs(z["fused_weight_%d" % i] - z["weight_%d" % i]))) / 0.5
                    / max(float(np.max(np.abs(z["grad_%d" % i]))), 1e-6) for i in range(len(names)))
        assert worst <= 1e-6, "%s: the overlapped step's gradient differs by %.3g (relative)" % (label, worst)
    # The gradient is not trivially zero: the step moved the weights.
    moved = sum(float(np.sum(np.abs(big["grad_%d" % i]))) for i in range(len(names)))
    assert moved > 1e-3
