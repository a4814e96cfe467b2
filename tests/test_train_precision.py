"""fp16: accumulation under a loss scale matches fp32, and an overflow on one rank is skipped by all."""

import os

import numpy as np
import pytest

from proc import BIN, REPO, run

PROBE = os.path.join(REPO, "tests", "scripts", "accum_probe.py")


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.timeout(240)
def test_fp16_accumulated_gradient_matches_fp32(probe_layouts):
    # conftest.probe_layouts: fp32 accum 1 x batch 16, fp16 accum 4 x batch 4 (the probe, one process).
    ref = _load(os.path.join(probe_layouts["big"], "rank0.npz"))
    got = _load(os.path.join(probe_layouts["fp16"], "rank0.npz"))
    assert str(got["init_digest"]) == str(ref["init_digest"])  # the same start
    assert float(got["scale_before"]) == 2.0 ** 15  # the loss really was scaled
    assert float(got["loss"]) == pytest.approx(float(ref["loss"]), rel=1e-3)
    num = den = 0.0
    for i, name in enumerate(ref["names"]):
        g32, g16 = ref["grad_%d" % i], got["grad_%d" % i]
        assert np.all(np.isfinite(g16)), name
        np.testing.assert_allclose(g16, g32, rtol=0, atol=0.05 * float(np.max(np.abs(g32))) + 1e-6, err_msg=name)
        num += float(np.sum((g16 - g32) ** 2))
        den += float(np.sum(g32 ** 2))
    assert np.sqrt(num / den) < 1e-2  # relative L2 error of the whole gradient


@pytest.mark.horovod
@pytest.mark.timeout(240)
def test_overflow_on_one_rank_is_skipped_on_every_rank(tmp_path):
    run([os.path.join(BIN, "horovodrun"), "-np", "2", "--gloo", os.path.join(BIN, "python"), PROBE, "--out",
         str(tmp_path), "--accum", "1", "--batch", "8", "--precision", "fp16", "--inject_inf_rank", "1"],
        timeout=200)
    ranks = [_load(tmp_path / ("rank%d.npz" % r)) for r in (0, 1)]
    for z in ranks:
        assert bool(z["skipped"]) is True
        assert int(z["iterations"]) == 0            # no update, and the schedule did not advance
        assert float(z["scale_after"]) == float(z["scale_before"]) / 2
    # Rank 0's own data was finite; it skipped because the allreduced gradient was not.
    assert str(ranks[0]["init_digest"]) == str(ranks[1]["init_digest"])
