"""Parameter arithmetic: hand counts, published sizes, and the built Keras models."""

import dataclasses
import sys

import numpy as np
import pytest

from hvd_pretrain.models import count_parameters, params, preset
import proc


def test_bert_base_exact_count_by_hand():
    # BERT-base, V=30522, P=512, T=2, H=768, I=3072, L=12.
    embeddings = 30522 * 768 + 512 * 768 + 2 * 768 + 2 * 768           # 23,837,184
    layer = (4 * (768 * 768 + 768) + 2 * 768                             # q, k, v, out + LayerNorm
             + 768 * 3072 + 3072 + 3072 * 768 + 768 + 2 * 768)           # ffn + LayerNorm
    pooler = 768 * 768 + 768
    encoder = embeddings + 12 * layer + pooler
    mlm_head = 768 * 768 + 768 + 2 * 768 + 30522                         # transform, LayerNorm, bias
    nsp_head = 768 * 2 + 2
    assert layer == 7_087_872
    assert encoder == 109_482_240
    assert encoder + mlm_head + nsp_head == 110_106_428
    config = preset("base")
    assert count_parameters(config) == 110_106_428
    assert count_parameters(config, heads=False) == 109_482_240


@pytest.mark.parametrize("name,encoder_count", [
    # Encoder (with pooler for BERT/ALBERT) sizes of the released checkpoints.
    ("large", 335_141_888),
    ("albert-base", 11_683_584),
    ("albert-large", 17_683_968),
    ("albert-xlarge", 58_724_864),
    ("albert-xxlarge", 222_595_584),
    ("electra-base", 108_891_648),
    ("electra-large", 334_092_288),
])
def test_published_encoder_sizes(name, encoder_count):
    assert count_parameters(preset(name), heads=False) == encoder_count


def test_albert_base_exact_count():
    # V=30000, E=128, H=768, I=3072, one shared layer.
    embeddings = 30000 * 128 + 512 * 128 + 2 * 128 + 2 * 128
    projection = 128 * 768 + 768
    layer = 4 * (768 * 768 + 768) + 2 * 768 + 2 * 768 * 3072 + 3072 + 768 + 2 * 768
    pooler = 768 * 768 + 768
    mlm_head = 768 * 128 + 128 + 2 * 128 + 30000
    sop_head = 768 * 2 + 2
    assert embeddings + projection + layer + pooler == 11_683_584
    assert count_parameters(preset("albert-base")) == 11_683_584 + mlm_head + sop_head == 11_813_810


def test_factorized_embedding_saving():
    unfactorized = preset("base", vocab_size=30000)
    factorized = dataclasses.replace(unfactorized, embedding_size=128)
    saving = params.word_embedding_parameters(unfactorized) - params.word_embedding_parameters(factorized)
    assert saving == 30000 * 768 - (30000 * 128 + 128 * 768) == 19_101_696


@pytest.mark.parametrize("sharing,attention_copies,ffn_copies", [
    ("none", 12, 12), ("all", 1, 1), ("attention", 1, 12), ("ffn", 12, 1)])
def test_sharing_mode_counts(sharing, attention_copies, ffn_copies):
    config = preset("albert-base", sharing=sharing)
    attention = 4 * 768 * 768 + 4 * 768 + 2 * 768
    ffn = 2 * 768 * 3072 + 3072 + 768 + 2 * 768
    rest = count_parameters(preset("albert-base")) - attention - ffn
    assert count_parameters(config) == rest + attention_copies * attention + ffn_copies * ffn


@pytest.mark.timeout(90)
def test_count_parameters_does_not_import_tensorflow():
    code = ("import sys; from hvd_pretrain.models import count_parameters, preset; "
            "n = count_parameters(preset('base')); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print(n)")
    out = proc.run([sys.executable, "-c", code], timeout=60).stdout
    assert out.strip().splitlines()[-1] == "110106428"


BUILT = [
    ("tiny", {}),
    ("mini", {}),
    ("albert-tiny", {}),
    ("albert-tiny", {"sharing": "ffn"}),
    ("albert-tiny", {"sharing": "attention"}),
    ("albert-tiny", {"sharing": "none", "embedding_size": 312}),
    ("tiny", {"sentence_objective": "none"}),
    ("tiny", {"sentence_objective": "sop", "embedding_size": 64}),
    ("electra-tiny", {}),
    ("electra-tiny", {"embedding_size": None, "generator_hidden_size": 0.5}),
    ("electra-tiny", {"embedding_size": 64, "sharing": "all"}),
]


def _weight_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,overrides", BUILT, ids=lambda v: str(v))
def test_formula_matches_built_model(name, overrides):
    from hvd_pretrain.models import build_pretrainer
    config = preset(name, vocab_size=1000, **overrides)
    if "embedding_size" in overrides and overrides["embedding_size"] is None:
        config = dataclasses.replace(config, embedding_size=None)
    model = build_pretrainer(config).build_for(2, 8, 2)
    assert _weight_count(model) == count_parameters(config)
    assert _weight_count(model.encoder) == count_parameters(config, heads=False)
    assert len(model.trainable_variables) == len({id(v) for v in model.trainable_variables})


@pytest.mark.timeout(300)
def test_bert_base_built_matches_110m():
    from hvd_pretrain.models import build_pretrainer
    model = build_pretrainer(preset("base")).build_for(1, 4, 1)
    assert _weight_count(model) == 110_106_428
    assert _weight_count(model.encoder) == 109_482_240
