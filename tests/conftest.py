"""Shared fixtures. Heavy artefacts (vocab, shards) are built once per session."""

import os

import pytest

TINY_SEQ = 64
TINY_PREDS = 10
TINY_VOCAB = 1000
# A fixed MFU denominator (TFLOP/s per rank, about what a core of this class measures). Without
# --peak_tflops a CPU run times matmuls at start-up and again after logging windows 1, 2, 4, 8, ...
# (~0.7 s each, the other ranks waiting): seconds of every short test run. The measured path is
# covered by test_mfu_peak.py and end to end by the runs that pass peak_tflops=0 (measure, the default:
# test_train_horovod.py checks the MFU it reports) or do not use these flags (docs blocks, the
# dashboard's real run). A test whose timing depends on those pauses passes peak_tflops=0 too.
TINY_PEAK_TFLOPS = 0.25


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A SentencePiece vocab and 4 TFRecord shards from the embedded corpus (seq 64, NSP).

    Returns dict(data_dir, vocab_dir, seq, preds, vocab_size). Treat as read-only: copy before changing.
    """
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data import DataConfig, create_pretraining_data
    from hvd_pretrain.vocab import train_sentencepiece

    root = tmp_path_factory.mktemp("tiny_data")
    vocab_dir = str(root / "vocab")
    data_dir = str(root / "data")
    corpus = default_corpus()
    train_sentencepiece([corpus], vocab_dir, TINY_VOCAB)
    config = DataConfig(max_seq_length=TINY_SEQ, max_predictions_per_seq=TINY_PREDS, dupe_factor=1,
                        num_shards=4, seed=7)
    create_pretraining_data([corpus], vocab_dir, data_dir, config, num_workers=1)
    return dict(data_dir=data_dir, vocab_dir=vocab_dir, seq=TINY_SEQ, preds=TINY_PREDS, vocab_size=TINY_VOCAB)


@pytest.fixture(scope="session")
def tiny_sop_data(tiny_data, tmp_path_factory):
    """Like tiny_data (same vocab) but with sentence-order (SOP) labels, for ALBERT."""
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    data_dir = str(tmp_path_factory.mktemp("tiny_sop") / "data")
    config = DataConfig(max_seq_length=TINY_SEQ, max_predictions_per_seq=TINY_PREDS, dupe_factor=1,
                        num_shards=4, seed=7, sentence_objective="sop")
    create_pretraining_data([default_corpus()], tiny_data["vocab_dir"], data_dir, config, num_workers=1)
    return dict(tiny_data, data_dir=data_dir)


@pytest.fixture(scope="session")
def tiny_split_data(tiny_data, tmp_path_factory):
    """tiny_data's corpus, vocab and layout with 5% of the documents held out into eval/."""
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    data_dir = str(tmp_path_factory.mktemp("split") / "data")
    config = DataConfig(max_seq_length=TINY_SEQ, max_predictions_per_seq=TINY_PREDS, dupe_factor=1,
                        num_shards=4, seed=7, eval_fraction=0.05)
    create_pretraining_data([default_corpus()], tiny_data["vocab_dir"], data_dir, config, num_workers=1)
    return dict(tiny_data, data_dir=data_dir)


@pytest.fixture(scope="session")
def evaluated_run(tiny_split_data, tmp_path_factory):
    """A finished 4-step tiny run on tiny_split_data evaluated after every step on 24 held-out examples,
    keeping the best eval/mlm_loss checkpoint beside a rotation of one.

    Returns dict(run_dir, runs_dir (its parent, holding only this run), output (its stdout)). Read-only."""
    import proc

    runs_dir = str(tmp_path_factory.mktemp("eval_runs") / "runs")
    run_dir = os.path.join(runs_dir, "evaluated")
    out = proc.run([os.path.join(proc.BIN, "hvd-pretrain")]
                   + tiny_train_flags(tiny_split_data, run_dir, steps=4, eval_every=1, eval_examples=24,
                                      keep_best="eval/mlm_loss", keep_checkpoints=1), timeout=180).stdout
    return dict(run_dir=run_dir, runs_dir=runs_dir, output=out)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    """The first ~400 kB of the embedded corpus (whole documents): quick data-creation tests."""
    from hvd_pretrain.corpus import default_corpus

    with open(default_corpus(), encoding="utf-8") as f:
        text = f.read(400_000)
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(text[:text.rfind("\n\n") + 1], encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def vocab(corpus_file, tmp_path_factory):
    """A 2000-piece SentencePiece vocab trained on corpus_file."""
    from hvd_pretrain.vocab import train_sentencepiece

    out = str(tmp_path_factory.mktemp("vocab"))
    train_sentencepiece([corpus_file], out, 2000, num_threads=1)
    return out


@pytest.fixture(scope="session")
def probe_layouts(tmp_path_factory):
    """tests/scripts/accum_probe.py's one-process layouts of its 16-example global batch, computed by one
    process (one TensorFlow start-up): {"big": accum 1 x batch 16, "accum4": accum 4 x batch 4,
    "fp16": accum 4 x batch 4 under a loss scale}, each a directory holding rank0.npz. Read-only."""
    import sys

    import proc

    root = tmp_path_factory.mktemp("probe")
    dirs = {name: str(root / name) for name in ("big", "accum4", "fp16")}
    proc.run([sys.executable, os.path.join(proc.REPO, "tests", "scripts", "accum_probe.py"),
              "--out", dirs["big"], "--accum", "1", "--batch", "16",
              "--also", "%s:4:4" % dirs["accum4"], "--also", "%s:4:4:fp16" % dirs["fp16"]], timeout=150)
    return dirs


def tiny_train_flags(tiny_data, run_dir, steps=4, **extra):
    """hvd-pretrain flags for a fast tiny-BERT run on the session's shards."""
    flags = {
        "run_dir": run_dir, "data_dir": tiny_data["data_dir"], "max_seq_length": tiny_data["seq"],
        "max_predictions_per_seq": tiny_data["preds"], "num_train_steps": steps, "micro_batch_size": 4,
        "log_every": 2, "save_checkpoints_steps": 2, "threads": 1, "peak_tflops": TINY_PEAK_TFLOPS,
    }
    flags.update(extra)
    return ["--%s=%s" % (k, v) for k, v in flags.items()]


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A finished 4-step tiny-BERT run on tiny_data (tiny_train_flags: checkpoints at steps 2 and 4).

    Read-only, shared by the tests that only read a trained run: copy it (shutil.copytree) to resume,
    damage or extend it."""
    import proc

    run_dir = str(tmp_path_factory.mktemp("tiny_run") / "run")
    proc.run([os.path.join(proc.BIN, "hvd-pretrain")] + tiny_train_flags(tiny_data, run_dir, steps=4), timeout=200)
    return run_dir


@pytest.fixture
def tiny_flags(tiny_data):
    return lambda run_dir, **kw: tiny_train_flags(tiny_data, str(run_dir), **kw)


def pytest_configure(config):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Fixtures whose tests start real training or supervised jobs: `make test-fast` leaves them out.
# Tests using a fixture here start processes and are marked slow. The shared runs (tiny_run,
# evaluated_run) are not listed: the tests reading them carry their own marks.
PROCESS_FIXTURES = {"tiny_flags", "jobs"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
