"""Write a built pretrainer as a Hugging Face transformers directory.

    out/config.json          the matching transformers class in "architectures"
    out/model.safetensors    float32 weights in transformers' layout
    out/vocab.txt | spiece.model + tokenizer_config.json + special_tokens_map.json

ELECTRA writes the discriminator (ElectraForPreTraining, the model to keep)
to out/ and the generator (ElectraForMaskedLM) to out/generator/.

Nothing on disk is replaced unless overwrite=True; the directory is written
beside its destination and renamed into place, so a failed export leaves no
half-written directory behind.
"""

import json
import os
import shutil

from hvd_pretrain.export import bindings, hf_names
from hvd_pretrain.models.config import ConfigError
from hvd_pretrain.rundir import DATA, RUN_MARKERS
from hvd_pretrain.errors import ExportError


def _tokenizer_files(vocab_dir, family, max_length):
    """Tokenizer files for the export: {"copy": {name: src}, "write": {name: text}, "tokenizer": ...}."""
    from hvd_pretrain.export.spm_tokenizer import spm_tokenizer_json
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    tok = load_tokenizer(vocab_dir)
    # WordPiece: split_special_tokens keeps literal "[SEP]" in text as text, as in pre-training (the special
    # ids come only from the tokenizer's own [CLS]/[SEP] around segments). A SentencePiece tokenizer.json
    # loaded by transformers still matches its special pieces in text: transformers' own behaviour.
    special = {"cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
               "pad_token": tok.id_to_piece(tok.pad_id), "unk_token": tok.id_to_piece(tok.unk_id)}
    if tok.kind == "wordpiece":
        cls = {"bert": "BertTokenizer", "electra": "ElectraTokenizer", "albert": "BertTokenizer"}[family]
        config = dict(special, tokenizer_class=cls, do_lower_case=tok.do_lower_case, strip_accents=tok.strip_accents,
                      model_max_length=max_length, split_special_tokens=True)
        if tok.added_words:  # words of an extended vocab that BERT's pre-tokenizer would split (vocab/extend.py)
            config["added_tokens_decoder"] = {
                str(tok.piece_to_id(w)): {"content": w, "lstrip": False, "rstrip": False, "normalized": False,
                                          "single_word": False, "special": False} for w in tok.added_words}
        return {"copy": {"vocab.txt": tok.path}, "write": {}, "config": config, "special": special,
                "tokenizer": tok}
    # tokenizer.json reproduces sentencepiece exactly; the generic fast class loads it as written
    # (AlbertTokenizer would add normalizers of its own). spiece.model rides along for other tools.
    write = {}
    fast = spm_tokenizer_json(tok.path, sorted(set(special.values()), key=tok.piece_to_id))
    if fast is not None:
        write["tokenizer.json"] = fast
        config = dict(special, tokenizer_class="PreTrainedTokenizerFast", model_max_length=max_length,
                      model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    else:
        config = dict(special, tokenizer_class="AlbertTokenizer", do_lower_case=False, keep_accents=True,
                      remove_space=True, model_max_length=max_length)
    return {"copy": {"spiece.model": tok.path}, "write": write, "config": config, "special": special,
            "tokenizer": tok}


def _write_dir(path, architecture, hf_config, tensors, vocab):
    from safetensors.numpy import save_file

    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2, sort_keys=True)
    save_file(dict(tensors), os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    if vocab is not None:
        for name, src in vocab["copy"].items():
            shutil.copyfile(src, os.path.join(path, name))
        for name, text in vocab["write"].items():
            with open(os.path.join(path, name), "w", encoding="utf-8") as f:
                f.write(text)
        with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
            json.dump(vocab["config"], f, indent=2, sort_keys=True)
        with open(os.path.join(path, "special_tokens_map.json"), "w") as f:
            json.dump(vocab["special"], f, indent=2, sort_keys=True)


RUN_DIR_MARKERS = RUN_MARKERS + (DATA,)


def _refuse_to_replace_run_data(out_dir):
    """--overwrite replaces an earlier export, never a run directory, a checkpoint or a file."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ExportError("--out=%s is a file, not an export directory; choose another path" % out_dir)
    found = [name for name in RUN_DIR_MARKERS if os.path.exists(os.path.join(out_dir, name))]
    if found or any(name.endswith(".index") for name in os.listdir(out_dir)):
        raise ExportError("--out=%s holds training data (%s); refusing to replace it even with --overwrite, "
                          "choose another directory" % (out_dir, ", ".join(found) or "a checkpoint"))


def export_hf(model, out_dir, vocab_dir=None, overwrite=False):
    """Export `model` (built, with its trained weights) to `out_dir`; returns {part: dir}.

    Raises ConfigError (naming the key) for a model transformers cannot
    represent and ExportError when out_dir exists and overwrite is False.
    """
    config = model.config
    parts = ("discriminator", "generator") if config.family == "electra" else ("model",)
    for part in parts:
        hf_names.check_representable(config, part)
    if os.path.exists(out_dir) and not overwrite:
        raise ExportError("export directory %s already exists; pass --overwrite to replace it" % out_dir)
    _refuse_to_replace_run_data(out_dir)
    vocab = None
    pad_id = 0
    if vocab_dir:
        vocab = _tokenizer_files(vocab_dir, config.family, config.max_position_embeddings)
        tok = vocab["tokenizer"]
        pad_id = tok.pad_id
        if tok.vocab_size != config.vocab_size:
            raise ConfigError("model.vocab_size=%d does not match the %d entries of vocab %s"
                              % (config.vocab_size, tok.vocab_size, vocab_dir))
    staging = "%s.partial-%d" % (os.path.abspath(out_dir).rstrip("/"), os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    written = {}
    try:
        for part in parts:
            rel = "." if part in ("model", "discriminator") else "generator"
            sub = os.path.normpath(os.path.join(staging, rel))
            architecture, binds = hf_names.hf_bindings(model, part)
            _write_dir(sub, architecture, hf_names.hf_config(config, architecture, part, pad_id),
                       bindings.read(binds), vocab)
            written[part] = os.path.normpath(os.path.join(out_dir, rel))
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written



def export_classifier_hf(classifier, pretrainer, out_dir, labels, vocab_dir=None, overwrite=False):
    """Write a fine-tuned SequenceClassifier as a transformers *ForSequenceClassification directory.

    `labels`: the class names in logit order (config.json's id2label). Returns out_dir.
    Raises ExportError when out_dir exists and overwrite is False.
    """
    config = pretrainer.config
    hf_names.check_representable(config, "discriminator" if config.family == "electra" else "model")
    if os.path.exists(out_dir) and not overwrite:
        raise ExportError("export directory %s already exists; pass --overwrite to replace it" % out_dir)
    _refuse_to_replace_run_data(out_dir)
    vocab = _tokenizer_files(vocab_dir, config.family, config.max_position_embeddings) if vocab_dir else None
    pad_id = vocab["tokenizer"].pad_id if vocab else 0
    architecture, binds = hf_names.classifier_bindings(classifier, pretrainer)
    staging = "%s.partial-%d" % (os.path.abspath(out_dir).rstrip("/"), os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_dir(staging, architecture, hf_names.classifier_config(config, labels, pad_id), bindings.read(binds),
                   vocab)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
