"""Exact parameter arithmetic for every model the library builds.

Pure Python: no TensorFlow import. tests/test_model_params.py checks each
formula against the variables of a built Keras model.

With V vocab, P positions, T token types, E embedding width, H hidden,
I intermediate, L layers:

  embeddings       V*E + P*E + T*E + 2E            (tables + LayerNorm)
  projection       E*H + H, only when E != H       (factorized embeddings)
  attention block  4H^2 + 4H + 2H                  (q, k, v, output + LayerNorm)
  ffn block        2HI + I + H + 2H                (two denses + LayerNorm)
  pooler           H^2 + H                         (BERT, ALBERT)
  MLM head         H*E + E + 2E + V                (transform + LayerNorm + output bias; output tied)
  NSP/SOP head     2H + 2
  RTD head         H^2 + H + H + 1                 (ELECTRA discriminator)

Sharing stores one attention block (`all`, `attention`) and/or one ffn block
(`all`, `ffn`) instead of L.
"""

from hvd_pretrain.models import family


def embedding_parameters(config):
    e = config.embedding_width
    return (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * e + 2 * e


def word_embedding_parameters(config):
    """Vocabulary-dependent weights: V*H unfactorized, V*E + E*H factorized (no bias)."""
    e, h = config.embedding_width, config.hidden_size
    return config.vocab_size * e + (e * h if e != h else 0)


def projection_parameters(config):
    e, h = config.embedding_width, config.hidden_size
    return 0 if e == h else e * h + h


def attention_block_parameters(hidden):
    return 4 * hidden * hidden + 4 * hidden + 2 * hidden


def ffn_block_parameters(hidden, intermediate):
    return 2 * hidden * intermediate + intermediate + hidden + 2 * hidden


def transformer_parameters(config):
    layers = config.num_layers
    attention_copies = 1 if config.sharing in ("all", "attention") else layers
    ffn_copies = 1 if config.sharing in ("all", "ffn") else layers
    return (attention_copies * attention_block_parameters(config.hidden_size)
            + ffn_copies * ffn_block_parameters(config.hidden_size, config.intermediate_size))


def pooler_parameters(config):
    h = config.hidden_size
    return h * h + h if family.has_pooler(config) else 0


def encoder_parameters(config, with_embeddings=True):
    """One encoder network: embeddings (optional), projection, blocks, pooler."""
    total = projection_parameters(config) + transformer_parameters(config) + pooler_parameters(config)
    if with_embeddings:
        total += embedding_parameters(config)
    return total


def mlm_head_parameters(config):
    h, e = config.hidden_size, config.embedding_width
    return h * e + e + 2 * e + config.vocab_size


def sentence_head_parameters(config):
    return 2 * config.hidden_size + 2


def rtd_head_parameters(config):
    h = config.hidden_size
    return h * h + h + h + 1


def parameter_breakdown(config):
    """Component name -> parameter count, for reports and plans."""
    family.check_model_config(config)
    parts = {"embeddings": embedding_parameters(config)}
    if config.family == "electra":
        gen = family.generator_config(config)
        parts["discriminator"] = encoder_parameters(config, with_embeddings=False)
        parts["rtd_head"] = rtd_head_parameters(config)
        parts["generator"] = encoder_parameters(gen, with_embeddings=False)
        parts["generator_mlm_head"] = mlm_head_parameters(gen)
        return parts
    parts["encoder"] = encoder_parameters(config, with_embeddings=False)
    parts["mlm_head"] = mlm_head_parameters(config)
    if config.sentence_objective != "none":
        parts["%s_head" % config.sentence_objective] = sentence_head_parameters(config)
    return parts


def count_parameters(config, heads=True):
    """Exact number of trainable parameters.

    heads=True: the whole pretrainer (for ELECTRA: generator + discriminator,
    counting the shared embeddings once). heads=False: the encoder users keep
    (for ELECTRA: the discriminator with its embeddings).
    """
    family.check_model_config(config)
    if not heads:
        return encoder_parameters(config)
    return sum(parameter_breakdown(config).values())
