"""hvd-export on a run directory written in the trainer's checkpoint layout."""

import dataclasses
import os
import sys

import numpy as np
import pytest

from hvd_pretrain.cli import export as cli
from hvd_pretrain.models import build_pretrainer, preset
import proc

V = 120


def make_run(root, config, step=7):
    """A run directory whose checkpoints/ckpt-<step> is written by the trainer's CheckpointWriter."""
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train.checkpoint import CheckpointWriter
    model = build_pretrainer(config).build_for()
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.01 * ((i % 7) - 3))
    optimizer = keras.optimizers.Adam()
    CheckpointWriter(os.path.join(root, "checkpoints"), model, optimizer, config).save(step, {"examples": 1})
    vocab = os.path.join(root, "vocab")
    os.makedirs(vocab)
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ["w%d" % i for i in range(V - 5)]
    with open(os.path.join(vocab, "vocab.txt"), "w") as f:
        f.write("\n".join(pieces) + "\n")
    return model


@pytest.mark.timeout(240)
def test_hvd_export_writes_a_loadable_transformers_directory(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    run_dir, out = str(tmp_path / "run"), str(tmp_path / "hf")
    model = make_run(run_dir, preset("tiny", vocab_size=V, max_position_embeddings=64))
    result = proc.run([sys.executable, "-m", "hvd_pretrain.cli.export", "--run_dir=" + run_dir, "--out=" + out],
                      timeout=180)
    assert "ckpt-000000007" in result.stdout and out in result.stdout
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                       "tokenizer_config.json", "vocab.txt"]
    hf = transformers.BertForPreTraining.from_pretrained(out).eval()
    ids = np.array([[2, 7, 8, 9, 3, 0]], np.int32)
    mask = (ids > 0).astype(np.int32)
    f = {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids),
         "masked_lm_positions": np.array([[1, 2, 3]], np.int32)}
    ours = model(f, training=False)
    with torch.no_grad():
        theirs = hf(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long))
    np.testing.assert_allclose(ours["mlm_logits"].numpy(), theirs.prediction_logits[:, 1:4].numpy(), atol=1e-4)
    np.testing.assert_allclose(ours["nsp_logits"].numpy(), theirs.seq_relationship_logits.numpy(), atol=1e-4)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer("w3 w4")["input_ids"] == [2, 8, 9, 3]


@pytest.mark.timeout(240)
def test_existing_output_is_kept_without_overwrite(tmp_path, capsys):
    run_dir, out = str(tmp_path / "run"), tmp_path / "hf"
    make_run(run_dir, preset("tiny", vocab_size=V))
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert cli.run(["hvd-export", "--run_dir=" + run_dir, "--out=" + str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "mine.txt").read_text() == "keep"
    assert cli.run(["hvd-export", "--run_dir=" + run_dir, "--out=" + str(out), "--overwrite"]) == 0
    assert (out / "config.json").exists()


@pytest.mark.timeout(240)
def test_unrepresentable_sharing_is_a_one_line_error(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, dataclasses.replace(preset("albert-tiny", vocab_size=V), sharing="ffn"))
    assert cli.run(["hvd-export", "--run_dir=" + run_dir, "--out=" + str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.sharing='ffn'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("argv,pattern", [
    (["--out=x"], "exactly one of"),
    (["--run_dir=/nonexistent/run", "--out=x"], "--run_dir=/nonexistent/run does not exist"),
    (["--run_dir=."], "--out is required"),
])
def test_usage_errors(argv, pattern, capsys):
    assert cli.run(["hvd-export"] + argv) == 2
    assert pattern in capsys.readouterr().err


def test_run_without_checkpoints_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert cli.run(["hvd-export", "--run_dir=" + str(tmp_path / "run"), "--out=" + str(tmp_path / "hf")]) == 2
    assert "holds no complete checkpoint" in capsys.readouterr().err


@pytest.mark.timeout(240)
def test_a_run_trained_on_given_data_exports_the_vocab_its_data_was_made_with(tmp_path, capsys):
    import json
    import shutil
    from hvd_pretrain.cli import export as cli
    run_dir = str(tmp_path / "run")
    make_run(run_dir, preset("tiny", vocab_size=V, max_position_embeddings=64))
    shutil.move(os.path.join(run_dir, "vocab"), str(tmp_path / "data_vocab"))  # as with --data_dir + hvd-data vocab
    with open(os.path.join(run_dir, "plan.json"), "w") as f:
        json.dump({"data": {"vocab_dir": str(tmp_path / "data_vocab")}}, f)
    capsys.readouterr()
    assert cli.run(["hvd-export", "--run_dir=" + run_dir, "--out=" + str(tmp_path / "hf")]) == 0
    assert os.path.isfile(tmp_path / "hf" / "vocab.txt") and "warning" not in capsys.readouterr().err
    os.unlink(os.path.join(run_dir, "plan.json"))  # nothing says which vocab: exported, but never silently
    assert cli.run(["hvd-export", "--run_dir=" + run_dir, "--out=" + str(tmp_path / "hf2")]) == 0
    err = capsys.readouterr().err
    assert "warning: no vocabulary found" in err and "--vocab=DIR" in err
    assert not os.path.exists(tmp_path / "hf2" / "vocab.txt")
