"""Bad input: one clear line, a non-zero exit, and nothing on disk lost."""

import hashlib
import os
import shutil

import pytest

from datatools import record_read_early

from proc import BIN, run

HVD_PRETRAIN = os.path.join(BIN, "hvd-pretrain")


def _fails_with_one_line(cmd, *needles, timeout=150):
    result = run(cmd, timeout=timeout, check=False)
    out = result.stdout
    assert result.returncode == 2, "exit %d:\n%s" % (result.returncode, out[-3000:])
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _tree_digest(root):
    digest = hashlib.sha256()
    for base, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(base, name)
            digest.update(path.encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


@pytest.mark.timeout(60)
def test_accum_steps_zero_is_refused_before_tensorflow_loads(tmp_path):
    _fails_with_one_line([HVD_PRETRAIN, "--accum_steps", "0", "--run_dir", str(tmp_path)], "--accum_steps=0")
    assert not os.listdir(tmp_path)


@pytest.mark.timeout(60)
def test_max_seq_length_beyond_position_table(tmp_path):
    _fails_with_one_line([HVD_PRETRAIN, "--max_seq_length=1024", "--run_dir", str(tmp_path)],
                         "--max_seq_length=1024", "max_position_embeddings=512")


@pytest.mark.timeout(60)
def test_preset_of_another_family_names_the_family_presets(tmp_path):
    line = _fails_with_one_line([HVD_PRETRAIN, "--model=albert", "--preset=tiny", "--dry_run",
                                 "--run_dir", str(tmp_path / "run")], "--preset=tiny", "--model=albert")
    assert "albert-tiny, albert-base, albert-large" in line and "electra" not in line
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.timeout(60)
def test_unknown_flag_is_a_usage_error(tmp_path):
    _fails_with_one_line([HVD_PRETRAIN, "--no_such_flag=1"], "no_such_flag")


@pytest.mark.timeout(120)
def test_missing_and_empty_input_files(tmp_path):
    missing = str(tmp_path / "nope.txt")
    _fails_with_one_line([HVD_PRETRAIN, "--input_files", missing, "--run_dir", str(tmp_path / "r1")], missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _fails_with_one_line([HVD_PRETRAIN, "--input_files", str(empty), "--run_dir", str(tmp_path / "r2")],
                         str(empty))


@pytest.mark.timeout(150)
def test_vocab_size_that_does_not_match_the_data(tmp_path, tiny_data):
    _fails_with_one_line([HVD_PRETRAIN, "--data_dir", tiny_data["data_dir"], "--run_dir", str(tmp_path / "r"),
                          "--vocab_size=500", "--max_seq_length=64", "--max_predictions_per_seq=10"],
                         "--vocab_size=500", "1000")


@pytest.mark.timeout(150)
def test_corrupt_tfrecord_is_reported_and_left_in_place(tmp_path, tiny_data, tiny_flags):
    data = tmp_path / "data"
    shutil.copytree(tiny_data["data_dir"], data)
    shard, offset = record_read_early(str(data))  # a record the run reads: found while training
    with open(data / shard, "r+b") as f:
        f.seek(offset + 20)
        f.write(b"\xff" * 64)
    before = _tree_digest(data)
    flags = [f for f in tiny_flags(tmp_path / "run", steps=50) if not f.startswith("--data_dir")]
    _fails_with_one_line([HVD_PRETRAIN, "--data_dir", str(data)] + flags, shard)
    assert _tree_digest(data) == before


@pytest.mark.timeout(240)
def test_checkpoint_of_another_model_is_refused_and_kept(tmp_path, tiny_run, tiny_flags):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)  # 4 steps of tiny_flags
    ckpts = run_dir / "checkpoints"
    before = _tree_digest(ckpts)
    _fails_with_one_line([HVD_PRETRAIN, "--preset=mini"] + tiny_flags(run_dir, steps=6),
                         "different model config", "hidden_size")
    assert _tree_digest(ckpts) == before
