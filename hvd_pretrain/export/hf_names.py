"""Our pretrainers in Hugging Face transformers naming: state-dict bindings and config.json.

    BERT     -> BertForPreTraining (nsp/sop) or BertForMaskedLM (no sentence objective)
    ALBERT   -> AlbertForPreTraining (sop/nsp) or AlbertForMaskedLM; sharing `all`
                (one layer group) or `none` (one group per layer)
    ELECTRA  -> ElectraForPreTraining (discriminator), ElectraForMaskedLM (generator)

Anything else (ALBERT `ffn`/`attention` sharing, factorized BERT, ELECTRA on
a shared encoder) has no transformers class and raises ConfigError naming
the key. Tied output layers are not written: transformers re-ties them.
"""

import numpy as np

from hvd_pretrain.export import bindings as B
from hvd_pretrain.models.config import ConfigError

PARTS = ("model", "discriminator", "generator")


def check_representable(config, part="model"):
    """Raise ConfigError naming the key when transformers has no class for this model."""
    if config.family == "albert":
        if config.sharing not in ("all", "none"):
            raise ConfigError("model.sharing=%r cannot be exported: transformers' ALBERT shares whole layers "
                              "only (sharing 'all' or 'none')" % config.sharing)
    elif config.sharing != "none":
        raise ConfigError("model.sharing=%r cannot be exported for model.family=%r: transformers' %s has no "
                          "cross-layer sharing" % (config.sharing, config.family, config.family.upper()))
    if config.family == "bert" and config.embedding_width != config.hidden_size:
        raise ConfigError("model.embedding_size=%r cannot be exported for model.family='bert': transformers' "
                          "BERT has no factorized embeddings (use family 'albert')" % config.embedding_size)
    if config.family == "electra" and part == "generator" and config.hidden_act != "gelu":
        raise ConfigError("model.hidden_act=%r cannot be exported for the ELECTRA generator: transformers' "
                          "ElectraForMaskedLM hard-codes gelu in its head" % config.hidden_act)


def _embeddings(prefix, emb):
    return [B.bind(prefix + "word_embeddings.weight", emb.word_embeddings),
            B.bind(prefix + "position_embeddings.weight", emb.position_embeddings),
            B.bind(prefix + "token_type_embeddings.weight", emb.type_embeddings),
            *B.layer_norm(prefix + "LayerNorm.", emb.layer_norm)]


def _bert_layers(prefix, encoder):
    out = []
    for i, block in enumerate(encoder.blocks):
        p = "%slayer.%d." % (prefix, i)
        att, ffn = block.attention, block.feed_forward
        for name in ("query", "key", "value"):
            out += B.dense(p + "attention.self.%s." % name, getattr(att.attention, name), True)
        out += B.dense(p + "attention.output.dense.", att.attention.output_dense, True)
        out += B.layer_norm(p + "attention.output.LayerNorm.", att.layer_norm)
        out += B.dense(p + "intermediate.dense.", ffn.intermediate, True)
        out += B.dense(p + "output.dense.", ffn.output_dense, True)
        out += B.layer_norm(p + "output.LayerNorm.", ffn.layer_norm)
    return out


def albert_groups(config):
    return 1 if config.sharing == "all" else config.num_layers


def _albert_layers(prefix, encoder):
    config = encoder.config
    groups = albert_groups(config)
    out = []
    if encoder.embedding_projection is not None:
        out += B.dense(prefix + "embedding_hidden_mapping_in.", encoder.embedding_projection, True)
    else:
        h = config.hidden_size
        out += [B.bind_constant(prefix + "embedding_hidden_mapping_in.weight", np.eye(h)),
                B.bind_constant(prefix + "embedding_hidden_mapping_in.bias", np.zeros(h))]
    for g in range(groups):
        block = encoder.blocks[g * config.num_layers // groups]
        p = "%salbert_layer_groups.%d.albert_layers.0." % (prefix, g)
        att, ffn = block.attention, block.feed_forward
        for name in ("query", "key", "value"):
            out += B.dense(p + "attention.%s." % name, getattr(att.attention, name), True)
        out += B.dense(p + "attention.dense.", att.attention.output_dense, True)
        out += B.layer_norm(p + "attention.LayerNorm.", att.layer_norm)
        out += B.dense(p + "ffn.", ffn.intermediate, True)
        out += B.dense(p + "ffn_output.", ffn.output_dense, True)
        out += B.layer_norm(p + "full_layer_layer_norm.", ffn.layer_norm)
    return out


def _mlm(prefix, head, bias_key):
    return [*B.dense(prefix + "dense.", head.transform, True), *B.layer_norm(prefix + "LayerNorm.", head.layer_norm),
            B.bind(bias_key, head.output_bias)]


def hf_bindings(model, part="model"):
    """(architecture class name, bindings) for `part` of a built pretrainer."""
    config = model.config
    check_representable(config, part)
    if config.family == "bert":
        enc = model.encoder
        out = _embeddings("bert.embeddings.", enc.embeddings) + _bert_layers("bert.encoder.", enc)
        out += _mlm("cls.predictions.transform.", model.mlm_head, "cls.predictions.bias")
        if model.sentence_head is None:
            return "BertForMaskedLM", out
        out += B.dense("bert.pooler.dense.", enc.pooler, True)
        out += B.dense("cls.seq_relationship.", model.sentence_head.classifier, True)
        return "BertForPreTraining", out
    if config.family == "albert":
        enc = model.encoder
        out = _embeddings("albert.embeddings.", enc.embeddings) + _albert_layers("albert.encoder.", enc)
        out += [*B.dense("predictions.dense.", model.mlm_head.transform, True),
                *B.layer_norm("predictions.LayerNorm.", model.mlm_head.layer_norm),
                B.bind("predictions.bias", model.mlm_head.output_bias)]
        if model.sentence_head is None:
            return "AlbertForMaskedLM", out
        out += B.dense("albert.pooler.", enc.pooler, True)
        out += B.dense("sop_classifier.classifier.", model.sentence_head.classifier, True)
        return "AlbertForPreTraining", out
    if part == "generator":
        gen = model.generator
        out = _embeddings("electra.embeddings.", gen.embeddings)
        if gen.embedding_projection is not None:
            out += B.dense("electra.embeddings_project.", gen.embedding_projection, True)
        out += _bert_layers("electra.encoder.", gen)
        out += [*B.dense("generator_predictions.dense.", model.generator_head.transform, True),
                *B.layer_norm("generator_predictions.LayerNorm.", model.generator_head.layer_norm),
                B.bind("generator_lm_head.bias", model.generator_head.output_bias)]
        return "ElectraForMaskedLM", out
    disc = model.discriminator
    out = _embeddings("electra.embeddings.", disc.embeddings)
    if disc.embedding_projection is not None:
        out += B.dense("electra.embeddings_project.", disc.embedding_projection, True)
    out += _bert_layers("electra.encoder.", disc)
    out += B.dense("discriminator_predictions.dense.", model.rtd_head.dense, True)
    out += B.dense("discriminator_predictions.dense_prediction.", model.rtd_head.prediction, True)
    return "ElectraForPreTraining", out


def hf_config(config, architecture, part="model", pad_token_id=0):
    """The config.json dict for `architecture`."""
    c = config
    if c.family == "electra" and part == "generator":
        from hvd_pretrain.models.family import generator_config
        c = generator_config(config)
    out = {
        "architectures": [architecture],
        "model_type": c.family,
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": c.hidden_act,
        "hidden_dropout_prob": c.hidden_dropout,
        "attention_probs_dropout_prob": c.attention_dropout,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size,
        "initializer_range": c.initializer_range,
        "layer_norm_eps": c.layer_norm_eps,
        "pad_token_id": int(pad_token_id),
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }
    if c.family in ("albert", "electra"):
        out["embedding_size"] = c.embedding_width
    if c.family == "albert":
        out.update(num_hidden_groups=albert_groups(c), inner_group_num=1, classifier_dropout_prob=c.hidden_dropout)
    return out


def config_from_hf(hf, source):
    """ModelConfig fields from a transformers config.json dict (family bert, albert or electra)."""
    family = hf.get("model_type")
    if family not in ("bert", "albert", "electra"):
        raise ConfigError("%s: model_type=%r is not one of bert, albert, electra" % (source, family))
    fields = dict(
        family=family, vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"], hidden_act=hf.get("hidden_act", "gelu"),
        hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        max_position_embeddings=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2), initializer_range=hf.get("initializer_range", 0.02),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12))
    if family == "bert":
        fields.update(sentence_objective="nsp")
    elif family == "albert":
        groups = hf.get("num_hidden_groups", 1)
        if hf.get("inner_group_num", 1) != 1 or groups not in (1, hf["num_hidden_layers"]):
            raise ConfigError("%s: num_hidden_groups=%r / inner_group_num=%r has no matching model.sharing "
                              "(supported: one group, or one group per layer)"
                              % (source, groups, hf.get("inner_group_num")))
        fields.update(embedding_size=hf.get("embedding_size", 128), sentence_objective="sop",
                      sharing="all" if groups == 1 else "none")
    else:
        embedding = hf.get("embedding_size", hf["hidden_size"])
        fields.update(embedding_size=None if embedding == hf["hidden_size"] else embedding,
                      sentence_objective="none")
    return fields


CLASSIFIERS = {"bert": "BertForSequenceClassification", "albert": "AlbertForSequenceClassification",
               "electra": "ElectraForSequenceClassification"}


def classifier_bindings(classifier, pretrainer):
    """(architecture, bindings) of a SequenceClassifier built on `pretrainer`'s encoder."""
    config = pretrainer.config
    part = "discriminator" if config.family == "electra" else "model"
    _, binds = hf_bindings(pretrainer, part)
    prefix = config.family + "."
    out = [b for b in binds if b.key.startswith(prefix)]
    if classifier.dense is not None:
        out += B.dense("classifier.dense.", classifier.dense, True)
        out += B.dense("classifier.out_proj.", classifier.output_layer, True)
    else:
        out += B.dense("classifier.", classifier.output_layer, True)
    return CLASSIFIERS[config.family], out


def classifier_config(config, labels, pad_token_id=0):
    """config.json of a sequence classifier with `labels` (their order is the logits')."""
    architecture = CLASSIFIERS[config.family]
    out = hf_config(config, architecture, "discriminator" if config.family == "electra" else "model", pad_token_id)
    out.update(id2label={str(i): str(label) for i, label in enumerate(labels)},
               label2id={str(label): i for i, label in enumerate(labels)}, num_labels=len(labels))
    return out
