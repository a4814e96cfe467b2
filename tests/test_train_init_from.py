"""Continue pre-training from a public-format checkpoint (a transformers directory)."""

import os

import pytest

from conftest import tiny_train_flags
from proc import BIN, run
from test_train_phases import _rank_events

pytest.importorskip("transformers", reason="the transformers export needs the test extra: pip install -e .[test]")


@pytest.mark.timeout(400)
def test_init_from_a_transformers_directory_starts_from_its_exact_weights(tmp_path, tiny_data, tiny_run):
    source, target = tiny_run, str(tmp_path / "target")  # the shared 4-step run, read only
    hf = str(tmp_path / "hf")
    run([os.path.join(BIN, "hvd-export"), "--run_dir=" + source, "--out=" + hf], timeout=150)
    assert os.path.isfile(os.path.join(hf, "config.json"))
    out = run([os.path.join(BIN, "hvd-pretrain"), "--init_from=" + hf] + tiny_train_flags(tiny_data, target, steps=2),
              timeout=150).stdout
    assert "initialised from %s" % hf in out
    start = _rank_events(target, 0, "start")[0]
    assert start["step"] == 0
    # Every weight came back bit for bit through the transformers format.
    assert start["weights_sha256"] == _rank_events(source, 0, "end")[-1]["weights_sha256"]
    # A data vocab that does not match the checkpoint is refused before training.
    result = run([os.path.join(BIN, "hvd-pretrain"), "--init_from=" + hf, "--input_files=" + __file__]
                 + [f for f in tiny_train_flags(tiny_data, str(tmp_path / "bad"), steps=2)
                    if not f.startswith("--data_dir")] + ["--vocab_size=500"], timeout=150, check=False)
    assert result.returncode == 2 and "error:" in result.stdout
