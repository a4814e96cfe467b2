"""Checkpoints are verified when written and before a restore; damage is set aside, never deleted."""

import json
import os

import numpy as np
import pytest

from hvd_pretrain.models.config import preset


def _writer(tmp_path, keep=3):
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.train.checkpoint import CheckpointWriter
    config = preset("tiny", vocab_size=64, max_position_embeddings=16)
    model = build_pretrainer(config).build_for()
    optimizer = keras.optimizers.AdamW(learning_rate=1e-3)
    optimizer.build(model.trainable_variables)
    return CheckpointWriter(str(tmp_path / "checkpoints"), model, optimizer, config, keep=keep), model


def _data_file(path):
    return os.path.join(path, [n for n in os.listdir(path) if ".data-" in n][0])


def _listing(directory):
    return sorted(os.listdir(directory))


def test_written_checkpoint_records_size_and_crc_of_every_file(tmp_path):
    from hvd_pretrain.checkpoint_files import file_digests, verify_checkpoint
    writer, _ = _writer(tmp_path)
    path = writer.save(5, {"examples_seen": 40})
    with open(os.path.join(path, "state.json")) as f:
        state = json.load(f)
    assert set(state["files"]) == set(os.listdir(path)) - {"state.json"}
    assert state["files"] == file_digests(path)
    assert all(entry["bytes"] == os.path.getsize(os.path.join(path, name)) for name, entry in state["files"].items())
    assert verify_checkpoint(path)["step"] == 5


@pytest.mark.parametrize("damage", ["truncate", "flip", "state", "config", "remove"])
def test_each_kind_of_damage_is_detected(tmp_path, damage):
    from hvd_pretrain.checkpoint_files import CheckpointDamaged, verify_checkpoint
    writer, _ = _writer(tmp_path)
    path = writer.save(3, {})
    data = _data_file(path)
    if damage == "truncate":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
        expected = "bytes"
    elif damage == "flip":  # same size, one byte changed: only the CRC shows it
        with open(data, "r+b") as f:
            f.seek(os.path.getsize(data) // 3)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
        expected = "CRC-32C"
    elif damage == "state":
        with open(os.path.join(path, "state.json"), "w") as f:
            f.write('{"step": 3, "fil')
        expected = "state.json"
    elif damage == "config":
        with open(os.path.join(path, "model_config.json"), "w") as f:
            f.write("")
        expected = "model_config.json"
    else:
        os.unlink(os.path.join(path, "ckpt.index"))
        expected = "ckpt.index is missing"
    with pytest.raises(CheckpointDamaged, match=expected):
        verify_checkpoint(path)


def test_a_checkpoint_without_digests_is_read_in_full(tmp_path):
    from hvd_pretrain.checkpoint_files import CheckpointDamaged, verify_checkpoint
    writer, _ = _writer(tmp_path)
    path = writer.save(3, {})
    state_path = os.path.join(path, "state.json")
    with open(state_path) as f:
        state = json.load(f)
    del state["files"]  # as written before digests were recorded
    with open(state_path, "w") as f:
        json.dump(state, f)
    assert verify_checkpoint(path)["step"] == 3
    data = _data_file(path)
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) - 8)
    with pytest.raises(CheckpointDamaged, match="TensorFlow cannot read it"):
        verify_checkpoint(path)


def test_newest_damaged_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path):
    from hvd_pretrain.checkpoint_files import list_checkpoints, newest_good_checkpoint
    writer, _ = _writer(tmp_path)
    for step in (10, 20, 30):
        writer.save(step, {})
    directory = writer.directory
    newest = os.path.join(directory, "ckpt-000000030")
    data = _data_file(newest)
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    warnings = []
    step, path, state = newest_good_checkpoint(directory, set_aside_damaged=True, warn=warnings.append)
    assert (step, os.path.basename(path), state["step"]) == (20, "ckpt-000000020", 20)
    assert len(warnings) == 1 and "ckpt-000000030" in warnings[0] and "ckpt-000000020" in warnings[0]
    assert "ckpt-000000030.damaged" in _listing(directory)  # kept, not deleted
    assert os.path.getsize(_data_file(newest + ".damaged")) == os.path.getsize(data.replace(newest, newest + ".damaged"))
    assert [s for s, _ in list_checkpoints(directory)] == [10, 20]
    # keep-N rotation never removes what was set aside
    writer.save(40, {})
    writer.save(50, {})
    assert "ckpt-000000030.damaged" in _listing(directory)


def test_without_set_aside_damaged_checkpoints_are_only_skipped(tmp_path):
    from hvd_pretrain.checkpoint_files import newest_good_checkpoint
    writer, _ = _writer(tmp_path)
    writer.save(1, {})
    writer.save(2, {})
    with open(os.path.join(writer.directory, "ckpt-000000002", "state.json"), "w") as f:
        f.write("not json")
    before = _listing(writer.directory)
    warnings = []
    step, _, _ = newest_good_checkpoint(writer.directory, warn=warnings.append)
    assert step == 1 and "skipped" in warnings[0]
    assert _listing(writer.directory) == before


def test_when_every_checkpoint_is_damaged_nothing_is_renamed(tmp_path):
    from hvd_pretrain.checkpoint_files import CheckpointDamaged, newest_good_checkpoint
    writer, _ = _writer(tmp_path)
    for step in (1, 2):
        path = writer.save(step, {})
        os.unlink(os.path.join(path, "ckpt.index"))
    before = _listing(writer.directory)
    with pytest.raises(CheckpointDamaged, match="every checkpoint .* is damaged .*ckpt-000000002"):
        newest_good_checkpoint(writer.directory, set_aside_damaged=True)
    assert _listing(writer.directory) == before


def test_a_checkpoint_that_fails_verification_replaces_nothing(tmp_path, monkeypatch):
    from hvd_pretrain.checkpoint_files import CheckpointDamaged, file_digests
    from hvd_pretrain.train import checkpoint
    writer, model = _writer(tmp_path)
    first = writer.save(7, {"examples_seen": 1})
    before = file_digests(first)

    def damaged(path):
        raise CheckpointDamaged("ckpt.data-00000-of-00001 has 1 bytes, 2 were written")
    monkeypatch.setattr(checkpoint, "verify_checkpoint", damaged)
    model.trainable_variables[0].assign(model.trainable_variables[0] + 1.0)
    with pytest.raises(CheckpointDamaged, match="failed verification after writing"):
        writer.save(7, {"examples_seen": 2})
    assert file_digests(first) == before  # the good checkpoint of the same step is untouched
    with open(os.path.join(first, "state.json")) as f:
        assert json.load(f)["examples_seen"] == 1


def test_steps_compare_as_numbers_not_names(tmp_path):
    from hvd_pretrain.checkpoint_files import latest_checkpoint, list_checkpoints
    for name in ("ckpt-999999999", "ckpt-1000000000", "ckpt-000000005"):
        os.makedirs(tmp_path / name)
        (tmp_path / name / "state.json").write_text("{}")
    assert [s for s, _ in list_checkpoints(str(tmp_path))] == [5, 999999999, 1000000000]
    assert latest_checkpoint(str(tmp_path))[0] == 1000000000


def test_restore_after_fallback_gives_the_good_weights(tmp_path):
    from hvd_pretrain.checkpoint_files import newest_good_checkpoint
    writer, model = _writer(tmp_path)
    writer.save(1, {})
    good = model.trainable_variables[0].numpy().copy()
    model.trainable_variables[0].assign(good + 1.0)
    bad = writer.save(2, {})
    with open(_data_file(bad), "r+b") as f:
        f.truncate(16)
    _, path, _ = newest_good_checkpoint(writer.directory, set_aside_damaged=True)
    writer.restore(path)
    np.testing.assert_array_equal(model.trainable_variables[0].numpy(), good)


def test_an_atomic_write_that_reads_back_wrong_keeps_the_old_file(tmp_path, monkeypatch):
    import io
    from hvd_pretrain import rundir
    path = tmp_path / "manifest.json"
    rundir.write_json_atomic(str(path), {"num_instances": 5})
    real_open = open

    def failing_device(name, mode="r", *args, **kwargs):
        if "w" not in mode and os.path.basename(str(name)).startswith(".manifest.json."):
            return io.StringIO('{"num_instances": 6')  # what a failing disk gives back
        return real_open(name, mode, *args, **kwargs)
    monkeypatch.setattr(rundir, "open", failing_device, raising=False)
    with pytest.raises(OSError, match="read back differs"):
        rundir.write_json_atomic(str(path), {"num_instances": 6})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"num_instances": 5}
    assert os.listdir(tmp_path) == ["manifest.json"]  # no temporary file left behind
