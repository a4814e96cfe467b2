"""Resolve what the trainer reads: a vocab and TFRecord shards.

Three sources, in order of precedence:
  --data_dir      existing TFRecord shards (from `hvd-data create` or Google's
                  create_pretraining_data.py); --vocab_dir optional.
  --input_files   the user's plain text (one sentence per line, blank line
                  between documents): a vocab and shards are built into the
                  run directory.
  (neither)       the embedded default corpus, built the same way.

Runs on rank 0 only; the other ranks receive the result by broadcast.
"""

import glob
import os

from hvd_pretrain.errors import DataError



def expand_files(spec, flag):
    """Comma-separated paths or globs -> sorted files; each must exist and be non-empty."""
    files = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        matches = sorted(glob.glob(part)) if any(c in part for c in "*?[") else [part]
        if not matches:
            raise DataError("--%s: no file matches %s" % (flag, part))
        files.extend(matches)
    for path in files:
        if not os.path.isfile(path):
            raise DataError("--%s: %s does not exist or is not a file" % (flag, path))
        if os.path.getsize(path) == 0:
            raise DataError("--%s: %s is empty; give a file with text" % (flag, path))
    return files


def _manifest_vocab(manifest):
    tok = manifest.get("tokenizer") or {}
    return tok.get("vocab_size"), os.path.dirname(tok["path"]) if tok.get("path") else ""


def _input_differences(manifest, inputs, data_config):
    """Why data built earlier in the run directory is not what these flags would build ([] when it is)."""
    saved = [i["path"] if isinstance(i, dict) else i for i in manifest.get("inputs", [])]
    if [os.path.abspath(p) for p in saved] != [os.path.abspath(p) for p in inputs]:
        return ["inputs %s (data) vs %s (now)" % (",".join(saved), ",".join(inputs))]
    saved_cfg = manifest.get("config") or {}
    return ["--%s=%r (data) vs %r (now)" % (k, saved_cfg[k], v) for k, v in sorted(data_config.to_dict().items())
            if k in saved_cfg and saved_cfg[k] != v]


def _check_vocab_matches(vocab_dir, manifest, data_dir):
    """An explicit --vocab_dir must be the vocab the data was tokenized with; returns its size."""
    from hvd_pretrain.vocab import load_tokenizer
    tokenizer = load_tokenizer(vocab_dir)
    made_with = (manifest.get("tokenizer") or {}).get("fingerprint")
    if made_with and tokenizer.fingerprint != made_with:
        raise DataError("--vocab_dir=%s is not the vocab the data in %s was made with (tokenizer fingerprint %s,"
                           " data %s); drop --vocab_dir to use the data's own vocab or rebuild the data"
                           % (vocab_dir, data_dir, tokenizer.fingerprint[:12], made_with[:12]))
    return tokenizer.vocab_size


def prepare(rundir, data_config, vocab_size, input_files="", data_dir="", vocab_dir="", printer=print):
    """Returns dict(data_dir, vocab_dir, vocab_size, num_instances, files, max_seq_length, max_predictions)."""
    from hvd_pretrain.data import create_pretraining_data, list_shards, read_manifest
    from hvd_pretrain.vocab import load_tokenizer, train_sentencepiece

    from hvd_pretrain.data.mixture import parse_mixture

    mixture = parse_mixture(data_dir) if data_dir else None
    if mixture:
        return _prepare_mixture(rundir, data_config, vocab_size, data_dir, mixture, vocab_dir, printer)
    if data_dir:
        files = list_shards(data_dir)
        if not files:
            raise DataError("--data_dir=%s holds no TFRecord shards; run `hvd-data create` first" % data_dir)
        manifest = read_manifest(data_dir, missing_ok=True) or {}
        data_vocab, manifest_vocab_dir = _manifest_vocab(manifest)
        if vocab_dir:
            data_vocab = _check_vocab_matches(vocab_dir, manifest, data_dir)
        cfg = manifest.get("config") or {}
        return dict(data_dir=data_dir, vocab_dir=vocab_dir or manifest_vocab_dir,
                    vocab_size=data_vocab, num_instances=manifest.get("num_instances"), files=files,
                    max_seq_length=cfg.get("max_seq_length"), max_predictions=cfg.get("max_predictions_per_seq"),
                    sentence_objective=cfg.get("sentence_objective"), data_config=cfg)

    if input_files:
        inputs = expand_files(input_files, "input_files")
        source = "--input_files"
    else:
        from hvd_pretrain.corpus import default_corpus
        inputs = [default_corpus()]
        source = "the embedded default corpus (%s)" % inputs[0]

    vocab_dir = vocab_dir or rundir.vocab_dir
    if not _has_vocab(vocab_dir):
        printer("preparing: training a %d-piece SentencePiece vocab on %s" % (vocab_size, source))
        train_sentencepiece(inputs, vocab_dir, vocab_size)
    tokenizer = load_tokenizer(vocab_dir)

    out = rundir.data_dir
    manifest = read_manifest(out, missing_ok=True)
    differences = _input_differences(manifest, inputs, data_config) if manifest is not None else []
    if differences:
        raise DataError("%s was built from other inputs or options (%s); use a new --run_dir, or"
                           " --data_dir=%s to train on it as it is" % (out, "; ".join(differences[:3]), out))
    if manifest is None:
        printer("preparing: creating pre-training instances from %s into %s" % (source, out))
        manifest = create_pretraining_data(inputs, vocab_dir, out, data_config, num_workers=1)
    return dict(data_dir=out, vocab_dir=vocab_dir, vocab_size=tokenizer.vocab_size,
                num_instances=manifest.get("num_instances"), files=list_shards(out),
                max_seq_length=data_config.max_seq_length,
                max_predictions=data_config.max_predictions_per_seq,
                sentence_objective=data_config.sentence_objective, data_config=data_config.to_dict())


def _prepare_mixture(rundir, data_config, vocab_size, spec, mixture, vocab_dir, printer):
    """Each corpus prepared alone; they must agree on everything a batch depends on."""
    from hvd_pretrain.data import read_manifest

    parts = [prepare(rundir, data_config, vocab_size, data_dir=d, vocab_dir=vocab_dir, printer=printer)
             for d, _ in mixture]
    first = parts[0]
    fingerprints = [(read_manifest(d, missing_ok=True) or {}).get("tokenizer_fingerprint") for d, _ in mixture]
    for (directory, _), part, fp in zip(mixture, parts, fingerprints):
        for key in ("max_seq_length", "max_predictions", "sentence_objective"):
            if part.get(key) != first.get(key):
                raise DataError("--data_dir: %s was made with %s=%s but %s with %s; mix only corpora made with the"
                                " same settings" % (directory, key, part.get(key), mixture[0][0], first.get(key)))
        if fp != fingerprints[0]:
            raise DataError("--data_dir: %s was made with another vocab than %s; mix only corpora tokenized with"
                            " the same vocab" % (directory, mixture[0][0]))
        if (part.get("data_config") or {}).get("masking", "static") != \
                (first.get("data_config") or {}).get("masking", "static"):
            raise DataError("--data_dir: %s and %s differ in --masking; mix only corpora made alike"
                            % (directory, mixture[0][0]))
    counts = [p.get("num_instances") for p in parts]
    return dict(first, data_dir=spec, files=[f for p in parts for f in p["files"]],
                num_instances=sum(counts) if all(isinstance(c, int) for c in counts) else None,
                mixture=[{"data_dir": d, "weight": w, "num_instances": p.get("num_instances"),
                          "num_shards": len(p["files"])} for (d, w), p in zip(mixture, parts)])


def _has_vocab(vocab_dir):
    if os.path.isfile(vocab_dir):
        return True
    return any(os.path.isfile(os.path.join(vocab_dir, name)) for name in ("spm.model", "vocab.txt"))
