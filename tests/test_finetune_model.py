"""Our SequenceClassifier gives transformers' *ForSequenceClassification logits (<= 1e-4) with the same weights."""

import dataclasses
import json
import os

import numpy as np
import pytest

from hvd_pretrain.models import build_pretrainer, preset

torch = pytest.importorskip("torch", reason="pip install torch==2.13.0 transformers (test extra)")
transformers = pytest.importorskip("transformers")

B, L, V = 3, 12, 150
TOL = 1e-4


def features():
    rng = np.random.RandomState(1)
    ids = rng.randint(5, V, [B, L]).astype(np.int32)
    mask = np.ones([B, L], np.int32)
    mask[1, 8:] = 0
    ids[mask == 0] = 0
    segments = np.zeros([B, L], np.int32)
    segments[:, 5:] = 1
    segments[mask == 0] = 0
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def classifier_for(config, num_labels=3):
    from hvd_pretrain.models.classifier import SequenceClassifier, pretrainer_encoder
    from hvd_pretrain.tfcompat import keras
    keras.utils.set_random_seed(0)
    pretrainer = build_pretrainer(config).build_for(2, L, 3)
    classifier = SequenceClassifier(pretrainer_encoder(pretrainer), num_labels)
    classifier(features(), training=False)
    rng = np.random.RandomState(2)
    for v in classifier.trainable_variables:  # far from initial values: a wrong mapping cannot hide
        v.assign(1.0 + 0.1 * rng.randn(*v.shape) if "gamma" in v.name else 0.05 * rng.randn(*v.shape))
    return pretrainer, classifier


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["tiny", "albert-tiny", "electra-tiny"])
def test_classifier_logits_match_transformers(tmp_path, name):
    from hvd_pretrain.export.hf import export_classifier_hf
    config = preset(name, vocab_size=V)
    if name.startswith("albert"):
        config = dataclasses.replace(config, num_layers=2)
    pretrainer, classifier = classifier_for(config)
    f = features()
    ours = classifier(f, training=False).numpy()
    labels = ["negative", "neutral", "positive"]
    out = export_classifier_hf(classifier, pretrainer, str(tmp_path / "cls"), labels)
    hf_config = json.load(open(os.path.join(out, "config.json")))
    assert hf_config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert type(hf).__name__ == hf_config["architectures"][0]
    with torch.no_grad():
        theirs = hf(input_ids=torch.tensor(f["input_ids"], dtype=torch.long),
                    attention_mask=torch.tensor(f["input_mask"], dtype=torch.long),
                    token_type_ids=torch.tensor(f["segment_ids"], dtype=torch.long)).logits.numpy()
    assert ours.shape == theirs.shape == (B, 3)
    assert np.abs(ours).max() > 0.1  # logits worth comparing
    err = float(np.abs(ours - theirs).max())
    assert err <= TOL, "max abs logit difference %.3g > %g" % (err, TOL)


def test_head_variables_are_the_new_layers():
    pretrainer, classifier = classifier_for(preset("tiny", vocab_size=V))
    head = {v.name for v in classifier.head_variables()}
    assert len(head) == 2 and all("output" in n for n in head)
    encoder = {v.name for v in pretrainer.encoder.trainable_variables}
    assert not head & encoder
    assert len(classifier.trainable_variables) == len(encoder) + 2
