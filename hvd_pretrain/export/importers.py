"""Start from public checkpoints: a transformers directory or a Google TF1 checkpoint.

    config = config_from_pretrained(source)          # a ModelConfig matching the checkpoint
    model = build_pretrainer(config); model.build_for()
    report = load_pretrained(model, source)          # assigns the weights, checks every shape

`source` is a transformers directory (config.json + model.safetensors or
pytorch_model.bin), or a Google checkpoint: a directory holding
bert_config.json / albert_config.json, vocab.txt and bert_model.ckpt.*, or
the checkpoint prefix itself. For ELECTRA, pass the discriminator directory
as `source` and optionally the generator's as `generator_source`.

Encoder weights must all be present; pre-training heads that the source
lacks (e.g. a bare BertModel) keep their initial values and are listed in
the report.
"""

import glob
import json
import os
import re

import numpy as np

from hvd_pretrain.export import bindings, google_names, hf_names
from hvd_pretrain.models.config import ConfigError, ModelConfig

GOOGLE_CONFIGS = ("bert_config.json", "albert_config.json", "config.json")
ENCODER_PREFIXES = ("bert.", "albert.", "electra.", "bert/")


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError("cannot read %s: %s" % (path, e)) from None


_STEP = re.compile(r"-(\d+)$")
_STATE_LINE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$')


def _newest_google_prefix(directory):
    """The checkpoint prefix a TF1 directory stands for, or None when it holds no *.index.

    The `checkpoint` state file's model_checkpoint_path wins when that checkpoint exists;
    otherwise the highest global step (model.ckpt-200000 beats model.ckpt-100000: numbers
    compare as numbers), then the name.
    """
    prefixes = [p[:-len(".index")] for p in glob.glob(os.path.join(directory, "*.index"))]
    if not prefixes:
        return None
    try:
        with open(os.path.join(directory, "checkpoint"), encoding="utf-8") as f:
            named = [m.group(1) for m in map(_STATE_LINE.match, f.read().splitlines()) if m]
    except OSError:
        named = []
    for name in named:
        prefix = name if os.path.isabs(name) else os.path.join(directory, name)
        if os.path.exists(prefix + ".index"):
            return prefix

    def order(prefix):
        m = _STEP.search(prefix)
        return (int(m.group(1)) if m else -1, prefix)
    return max(prefixes, key=order)


def _google_checkpoint(source):
    """(checkpoint prefix, config path) when `source` is a Google TF1 checkpoint, else None."""
    if os.path.isdir(source):
        prefix = _newest_google_prefix(source)
        if prefix is None:
            return None
        directory = source
    elif os.path.exists(source + ".index"):
        prefix, directory = source, os.path.dirname(source) or "."
    else:
        return None
    for name in GOOGLE_CONFIGS:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return prefix, path
    raise ConfigError("Google checkpoint %s has no bert_config.json / albert_config.json beside it" % source)


def _is_hf_dir(source):
    return os.path.isdir(source) and os.path.isfile(os.path.join(source, "config.json")) and bool(
        glob.glob(os.path.join(source, "*.safetensors")) or os.path.isfile(os.path.join(source, "pytorch_model.bin")))


def config_from_pretrained(source, generator_source=None, **overrides):
    """The ModelConfig of a checkpoint (overrides, e.g. dropout, are applied on top)."""
    google = _google_checkpoint(source)
    if google is not None:
        fields = google_names.config_from_google(_read_json(google[1]), google[1])
    elif _is_hf_dir(source):
        fields = hf_names.config_from_hf(_read_json(os.path.join(source, "config.json")), source)
        if fields["family"] == "electra" and generator_source:
            gen = _read_json(os.path.join(generator_source, "config.json"))
            fields["generator_hidden_size"] = gen["hidden_size"] / float(fields["hidden_size"])
    else:
        raise ConfigError("%s is neither a transformers directory (config.json + weights) nor a Google TF1 "
                          "checkpoint (bert_model.ckpt.index + bert_config.json)" % source)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    config = ModelConfig.from_dict(fields).validate()
    if config.family == "electra" and generator_source:
        _check_generator(config, _read_json(os.path.join(generator_source, "config.json")), generator_source)
    return config


def pretrained_vocab(source):
    """The vocabulary file shipped with a checkpoint (vocab.txt, spiece.model or spm.model), or None."""
    directory = source if os.path.isdir(source) else os.path.dirname(source) or "."
    for name in ("vocab.txt", "spiece.model", "spm.model"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def check_vocab(config, vocab_path):
    """Raise ConfigError unless the vocabulary has exactly model.vocab_size entries."""
    from hvd_pretrain.vocab.tokenizer import load_tokenizer
    size = load_tokenizer(vocab_path).vocab_size
    if size != config.vocab_size:
        raise ConfigError("model.vocab_size=%d does not match the %d entries of %s; use the vocabulary the "
                          "checkpoint was trained with" % (config.vocab_size, size, vocab_path))
    return size


def _check_generator(config, gen, source):
    from hvd_pretrain.models.family import generator_config
    ours = generator_config(config)
    for key, ours_value in (("hidden_size", ours.hidden_size), ("num_attention_heads", ours.num_heads),
                            ("intermediate_size", ours.intermediate_size)):
        if gen.get(key) != ours_value:
            raise ConfigError("%s: generator %s=%r but model.generator_hidden_size=%r implies %r"
                              % (source, key, gen.get(key), config.generator_hidden_size, ours_value))


def read_hf_tensors(source):
    """key -> numpy array from a transformers directory."""
    files = sorted(glob.glob(os.path.join(source, "*.safetensors")))
    tensors = {}
    if files:
        from safetensors.numpy import load_file
        for path in files:
            tensors.update(load_file(path))
    else:
        try:
            import torch
        except ImportError:
            raise ConfigError("%s holds pytorch_model.bin; install torch to read it, or save it as safetensors"
                              % source) from None
        state = torch.load(os.path.join(source, "pytorch_model.bin"), map_location="cpu", weights_only=True)
        tensors = {k: v.float().numpy() for k, v in state.items()}
    return {k: np.asarray(v, np.float32) for k, v in tensors.items()}


def _with_prefix(tensors, family):
    """Bare base-model keys ('embeddings.word_embeddings.weight') get the '<family>.' prefix."""
    prefix = family + "."
    if any(k.startswith(prefix) for k in tensors):
        return tensors
    return {(prefix + k if k.split(".")[0] in ("embeddings", "encoder", "pooler", "embeddings_project") else k): v
            for k, v in tensors.items()}


def read_google_tensors(prefix):
    from hvd_pretrain.tfcompat import tf
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _required(key):
    return key.startswith(ENCODER_PREFIXES)


def resize_for_extension(binds, tensors, extension):
    """tensors with every [base_size, ...] tensor that the model expects as [size, ...] (word embeddings,
    MLM output bias and decoder) resized by `vocab.extend.resize_rows`; (tensors, how many were resized)."""
    from hvd_pretrain.vocab.extend import resize_rows

    base, size, out, resized = extension["base_size"], extension["size"], dict(tensors), 0
    for b in binds:
        if b.variable is None or b.key not in out:
            continue
        value, expected = np.asarray(out[b.key]), bindings.expected_shape(b)
        if value.ndim and value.shape[0] == base and expected[0] == size and value.shape[1:] == expected[1:]:
            out[b.key] = resize_rows(value, extension)
            resized += 1
    return out, resized


def load_pretrained(model, source, generator_source=None, vocab_extension=None):
    """Assign a checkpoint's weights to a built `model`; returns a report of what came from where.

    vocab_extension: a vocab dir made by `hvd-data vocab --extend` from the checkpoint's vocab, for a
    model built with the extended size: the vocab-sized tensors are resized (old rows bit-identical,
    a new word's row the mean of its old pieces' rows; report["resized"] counts them).

    Report: {"loaded": number of tensors assigned, "missing": [keys that kept their initial
    values], "sources": {part: the file or directory each part was read from}}. Keys of the
    ELECTRA generator are "generator/<key>"; without `generator_source` every generator tensor
    not shared with the discriminator is missing. Raises ConfigError naming the tensor when a
    shape does not match the model's config, or when an encoder tensor is absent.
    """
    if not model.built:
        model.build_for()
    extension = None
    if vocab_extension:
        from hvd_pretrain.vocab.extend import read_extension
        extension = read_extension(vocab_extension)
        if extension is None or extension["size"] != model.config.vocab_size:
            raise ConfigError("%s holds no vocab extension to %d pieces (vocab_extension.json); make it with"
                              " hvd-data vocab --extend" % (vocab_extension, model.config.vocab_size))
    resized = 0

    def prepared(binds, tensors):
        nonlocal resized
        if extension is None:
            return tensors
        tensors, count = resize_for_extension(binds, tensors, extension)
        resized += count
        return tensors

    google = _google_checkpoint(source)
    if google is not None:
        binds = google_names.google_bindings(model)
        missing = bindings.assign(binds, prepared(binds, read_google_tensors(google[0])), google[0], _required)
        loaded = {b.variable.ref() for b in binds if b.variable is not None and b.key not in missing}
        return {"loaded": len(loaded), "missing": missing, "sources": {"model": google[0]}, "resized": resized}
    if not _is_hf_dir(source):
        raise ConfigError("%s is neither a transformers directory nor a Google TF1 checkpoint" % source)
    family = model.config.family
    parts = [("model", source)]
    if family == "electra":
        # Generator first: the discriminator's copy of the shared embeddings wins.
        parts = [("generator", generator_source), ("discriminator", source)]
    assigned, missing, sources = set(), [], {}
    for part, path in parts:
        _, binds = hf_names.hf_bindings(model, part)
        label = "generator/" if part == "generator" else ""
        if path is None:
            missing += [(label + b.key, b) for b in binds if b.variable is not None]
            continue
        sources[part] = path
        miss = set(bindings.assign(binds, prepared(binds, _with_prefix(read_hf_tensors(path), family)), path,
                                   _required))
        assigned.update(b.variable.ref() for b in binds if b.variable is not None and b.key not in miss)
        missing += [(label + b.key, b) for b in binds if b.key in miss]
    missing = [key for key, b in missing if b.variable is None or b.variable.ref() not in assigned]
    return {"loaded": len(assigned), "missing": missing, "sources": sources, "resized": resized}


def describe_missing(missing, limit=4):
    """'37 tensors (generator: 35, cls: 2; e.g. generator/electra.encoder...)' or 'none'."""
    if not missing:
        return "none"
    groups = {}
    for key in missing:
        group = key.split("/", 1)[0] if "/" in key else key.split(".", 1)[0]
        groups[group] = groups.get(group, 0) + 1
    return "%d tensors (%s; e.g. %s)" % (len(missing), ", ".join("%s: %d" % kv for kv in sorted(groups.items())),
                                         ", ".join(missing[:limit]))
