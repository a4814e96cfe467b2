"""Google's TF1 BERT / ALBERT checkpoint names (google-research/bert and /albert).

    bert/embeddings/{word,position,token_type}_embeddings, bert/embeddings/LayerNorm/{gamma,beta}
    BERT:   bert/encoder/layer_<i>/attention/self/{query,key,value}/{kernel,bias}, ...
    ALBERT: bert/encoder/embedding_hidden_mapping_in/{kernel,bias},
            bert/encoder/transformer/group_<g>/inner_group_0/attention_1/..., ffn_1/..., LayerNorm, LayerNorm_1
    bert/pooler/dense, cls/predictions/{transform/dense, transform/LayerNorm, output_bias},
    cls/seq_relationship/{output_weights ([2, H]), output_bias}

Kernels are stored [in, out], our layout; only output_weights is transposed.
"""

from hvd_pretrain.export import bindings as B
from hvd_pretrain.models.config import ConfigError


def _dense(prefix, layer):
    return B.dense(prefix, layer, False, weight="kernel", bias="bias")


def _ln(prefix, layer):
    return B.layer_norm(prefix, layer, gamma="gamma", beta="beta")


def google_bindings(model):
    """Bindings from Google TF1 names to a BERT or ALBERT pretrainer's variables."""
    config = model.config
    if config.family not in ("bert", "albert"):
        raise ConfigError("model.family=%r has no Google TF1 BERT/ALBERT checkpoint layout" % config.family)
    enc = model.encoder
    emb = enc.embeddings
    out = [B.bind("bert/embeddings/word_embeddings", emb.word_embeddings),
           B.bind("bert/embeddings/position_embeddings", emb.position_embeddings),
           B.bind("bert/embeddings/token_type_embeddings", emb.type_embeddings),
           *_ln("bert/embeddings/LayerNorm/", emb.layer_norm)]
    if config.family == "bert":
        if config.sharing != "none" or enc.embedding_projection is not None:
            raise ConfigError("model.sharing=%r / model.embedding_size=%r have no Google BERT layout; "
                              "use family 'albert'" % (config.sharing, config.embedding_size))
        for i, block in enumerate(enc.blocks):
            p = "bert/encoder/layer_%d/" % i
            att, ffn = block.attention, block.feed_forward
            for name in ("query", "key", "value"):
                out += _dense(p + "attention/self/%s/" % name, getattr(att.attention, name))
            out += _dense(p + "attention/output/dense/", att.attention.output_dense)
            out += _ln(p + "attention/output/LayerNorm/", att.layer_norm)
            out += _dense(p + "intermediate/dense/", ffn.intermediate)
            out += _dense(p + "output/dense/", ffn.output_dense)
            out += _ln(p + "output/LayerNorm/", ffn.layer_norm)
    else:
        if config.sharing not in ("all", "none"):
            raise ConfigError("model.sharing=%r has no Google ALBERT layout (one group, or one group per layer)"
                              % config.sharing)
        if enc.embedding_projection is not None:
            out += _dense("bert/encoder/embedding_hidden_mapping_in/", enc.embedding_projection)
        groups = 1 if config.sharing == "all" else config.num_layers
        for g in range(groups):
            block = enc.blocks[g * config.num_layers // groups]
            p = "bert/encoder/transformer/group_%d/inner_group_0/" % g
            att, ffn = block.attention, block.feed_forward
            for name in ("query", "key", "value"):
                out += _dense(p + "attention_1/self/%s/" % name, getattr(att.attention, name))
            out += _dense(p + "attention_1/output/dense/", att.attention.output_dense)
            out += _ln(p + "LayerNorm/", att.layer_norm)
            out += _dense(p + "ffn_1/intermediate/dense/", ffn.intermediate)
            out += _dense(p + "ffn_1/intermediate/output/dense/", ffn.output_dense)
            out += _ln(p + "LayerNorm_1/", ffn.layer_norm)
    out += _dense("bert/pooler/dense/", enc.pooler)
    out += _dense("cls/predictions/transform/dense/", model.mlm_head.transform)
    out += _ln("cls/predictions/transform/LayerNorm/", model.mlm_head.layer_norm)
    out.append(B.bind("cls/predictions/output_bias", model.mlm_head.output_bias))
    if model.sentence_head is not None:
        out.append(B.bind("cls/seq_relationship/output_weights", model.sentence_head.classifier.kernel, True))
        out.append(B.bind("cls/seq_relationship/output_bias", model.sentence_head.classifier.bias))
    return out


def config_from_google(google, source):
    """ModelConfig fields from a bert_config.json / albert_config.json dict.

    Google's TF1 code computes "gelu" with the tanh approximation, so it maps
    to our `gelu_new` (exactly what the checkpoint was trained with).
    """
    act = google.get("hidden_act", "gelu")
    act = "gelu_new" if act in ("gelu", "gelu_new") else act
    fields = dict(
        vocab_size=google["vocab_size"], hidden_size=google["hidden_size"],
        num_layers=google["num_hidden_layers"], num_heads=google["num_attention_heads"],
        intermediate_size=google["intermediate_size"], hidden_act=act,
        hidden_dropout=google.get("hidden_dropout_prob", 0.1),
        attention_dropout=google.get("attention_probs_dropout_prob", 0.1),
        max_position_embeddings=google.get("max_position_embeddings", 512),
        type_vocab_size=google.get("type_vocab_size", 2), initializer_range=google.get("initializer_range", 0.02))
    if "embedding_size" in google or "num_hidden_groups" in google:
        groups = google.get("num_hidden_groups", 1)
        if google.get("inner_group_num", 1) != 1 or groups not in (1, google["num_hidden_layers"]):
            raise ConfigError("%s: num_hidden_groups=%r / inner_group_num=%r has no matching model.sharing"
                              % (source, groups, google.get("inner_group_num")))
        embedding = google.get("embedding_size", google["hidden_size"])
        fields.update(family="albert", sentence_objective="sop", sharing="all" if groups == 1 else "none",
                      embedding_size=None if embedding == google["hidden_size"] else embedding)
    else:
        fields.update(family="bert", sentence_objective="nsp")
    return fields
