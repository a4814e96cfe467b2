"""The shipped flagfiles parse, validate and plan (hvd-pretrain --dry_run), with the capacity prediction."""

import glob
import os
import re

import pytest

from proc import BIN, REPO, run

FLAGFILES = sorted(glob.glob(os.path.join(REPO, "jobs", "*.cfg")))
WORLD = {"bert_large_phase1.cfg": 64, "bert_large_phase2.cfg": 64}


def _flag(path, name):
    with open(path) as f:
        for line in f:
            m = re.match(r"--%s=(\S+)" % name, line.strip())
            if m:
                return m.group(1)
    return None


def test_the_record_flagfiles_exist():
    names = {os.path.basename(p) for p in FLAGFILES}
    assert {"bert_base_phase1.cfg", "bert_base_phase2.cfg", "bert_large_phase1.cfg", "bert_large_phase2.cfg",
            "albert_base.cfg", "electra_base.cfg"} <= names


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_flagfile_dry_run(path):
    world = WORLD.get(os.path.basename(path), 32)
    out = run([os.path.join(BIN, "hvd-pretrain"), "--flagfile=" + path, "--dry_run", "--world_size=%d" % world],
              timeout=50).stdout
    batch, accum = int(_flag(path, "micro_batch_size")), int(_flag(path, "accum_steps"))
    assert "global batch %d" % (batch * accum * world) in out
    assert "%s optimizer steps" % _flag(path, "num_train_steps") in out
    assert "memory per GPU" in out and "-> fits" in out  # the planner's prediction for the named GPU
    assert re.search(r"parameters, vocab %s," % _flag(path, "vocab_size"), out)
