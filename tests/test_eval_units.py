"""Evaluation pieces in one process: metrics from sums, --keep_best parsing, the eval slices, ELECTRA's
seeded sampling (batch-independent, consumes no random state)."""

import math

import pytest

from hvd_pretrain.errors import ConfigError
from hvd_pretrain.train.eval_metrics import (better, check_metric_available, format_table, metrics_from_sums,
                                             parse_keep_best)


def test_metrics_are_ratios_of_global_sums():
    sums = {"mlm": 46.0, "mlm_correct": 5.0, "nsp": 6.93, "nsp_correct": 6.0}
    m = metrics_from_sums(sums, {"mlm": 20.0, "nsp": 10.0}, ("mlm", "nsp"), {"mlm": 1.0, "nsp": 1.0}, 10, 0.5)
    assert m["mlm_loss"] == pytest.approx(2.3) and m["mlm_perplexity"] == pytest.approx(math.exp(2.3))
    assert m["mlm_accuracy"] == 0.25 and m["nsp_accuracy"] == 0.6 and m["loss"] == pytest.approx(2.993)
    rtd = {"mlm": 10.0, "mlm_correct": 1.0, "rtd": 50.0, "rtd_correct": 90.0, "rtd_replaced": 8.0,
           "rtd_replaced_correct": 2.0, "rtd_predicted": 4.0}
    m = metrics_from_sums(rtd, {"mlm": 5.0, "rtd": 100.0}, ("mlm", "rtd"), {"mlm": 1.0, "rtd": 50.0}, 4, 1.0)
    assert m["rtd_accuracy"] == 0.9 and m["rtd_precision"] == 0.5 and m["rtd_recall"] == 0.25
    assert m["rtd_all_original_baseline"] == pytest.approx(0.92) and m["loss"] == pytest.approx(2.0 + 25.0)
    # A model that flags no token has no precision (null in JSON, "-" in the table), not NaN.
    m = metrics_from_sums(dict(rtd, rtd_predicted=0.0, rtd_replaced_correct=0.0), {"mlm": 5.0, "rtd": 100.0},
                          ("mlm", "rtd"), {"mlm": 1.0, "rtd": 50.0}, 4, 1.0)
    assert m["rtd_precision"] is None and m["rtd_recall"] == 0.0
    assert [line.split() for line in format_table(m).splitlines() if "rtd_precision" in line] == [["eval/rtd_precision", "-"]]


def test_keep_best_direction_and_errors():
    assert parse_keep_best("eval/mlm_accuracy") == ("mlm_accuracy", "max")
    assert parse_keep_best("eval/mlm_perplexity") == ("mlm_perplexity", "min")
    assert parse_keep_best("loss") == ("loss", "min")
    assert parse_keep_best("eval/nsp_loss:max") == ("nsp_loss", "max")
    for bad, message in (("eval/bleu", "unknown metric"), ("eval/loss:down", "neither max nor min")):
        with pytest.raises(ConfigError, match=message):
            parse_keep_best(bad)
    with pytest.raises(ConfigError, match="reports no eval/rtd_recall"):
        check_metric_available("rtd_recall", ("mlm", "nsp"))
    assert better(0.5, None, "max") and better(0.4, 0.5, "min") and not better(0.4, 0.5, "max")
    assert not better(float("nan"), None, "min")


class _OneRank:
    def __init__(self, rank=0, size=1):
        self._rank, self._size = rank, size

    def rank(self):
        return self._rank

    def size(self):
        return self._size


@pytest.fixture(scope="module")
def eval_source(corpus_file, vocab, tmp_path_factory):
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    out = str(tmp_path_factory.mktemp("evalsplit"))
    create_pretraining_data([corpus_file], vocab, out, DataConfig(max_seq_length=32, max_predictions_per_seq=5,
                                                                  dupe_factor=1, num_shards=2, eval_fraction=0.05))
    from hvd_pretrain.models.config import preset
    from hvd_pretrain.train.evaluate import eval_source as source
    return source(out + "/eval", preset("electra-tiny", vocab_size=2000), 32, 5)


def test_ranks_get_disjoint_slices_of_the_first_k(eval_source):
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.models.config import preset
    from hvd_pretrain.train.evaluate import Evaluator

    model = build_pretrainer(preset("tiny", vocab_size=2000)).build_for(seq_length=32, predictions=5)
    seen = []
    for rank in range(3):
        evaluator = Evaluator(model, _OneRank(rank, 3), eval_source, batch_size=4, examples=25)
        seen.append([int(i) for f in evaluator.dataset(rank, 3) for i in f["sampling_seeds"][:, 0]])
    assert sorted(sum(seen, [])) == list(range(25)) and [len(s) for s in seen] == [9, 8, 8]


def test_electra_eval_is_batch_independent_and_consumes_no_random_state(eval_source):
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.models.config import preset
    from hvd_pretrain.tfcompat import tf
    from hvd_pretrain.train.evaluate import Evaluator

    model = build_pretrainer(preset("electra-tiny", vocab_size=2000)).build_for(seq_length=32, predictions=5)
    four = Evaluator(model, _OneRank(), eval_source, batch_size=4, examples=30)
    seven = Evaluator(model, _OneRank(), eval_source, batch_size=7, examples=30)
    tf.random.set_seed(3)
    expected = tf.random.uniform([4]).numpy()
    tf.random.set_seed(3)
    a = four.run()
    after = tf.random.uniform([4]).numpy()
    b, c = seven.run(), four.run()
    assert (after == expected).all()  # the global random stream is where it would be without evaluating
    for key in ("mlm_loss", "mlm_accuracy", "rtd_loss", "rtd_accuracy", "rtd_precision", "rtd_recall",
                "rtd_all_original_baseline"):
        assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
        assert c[key] == a[key], key
    assert a["examples"] == 30 and a["rtd_targets"] > 30 * 5 and 0 < a["rtd_all_original_baseline"] < 1
