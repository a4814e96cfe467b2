"""A SentencePiece unigram model as a transformers `tokenizer.json` (tokenizers library).

transformers turns a bare spiece.model into a fast tokenizer by parsing its
protobuf with a generated module that needs a newer protobuf runtime than
TensorFlow allows, so the export writes tokenizer.json itself. The few
fields needed (pieces, scores, types, the normalizer's precompiled charsmap)
are read straight from the protobuf wire format.
"""

import struct

from hvd_pretrain.models.config import ConfigError
from hvd_pretrain.vocab.spm_proto import UNKNOWN, fields

# sentencepiece ModelProto field numbers (sentencepiece_model.proto).
_PIECES, _TRAINER, _NORMALIZER = 1, 2, 3
_UNIGRAM = 1


def _fields(buf):
    """Yield (field number, wire type, value) of one protobuf message."""
    for number, wire, value, _ in fields(buf):
        yield number, wire, value


def read_spm(path):
    """{"pieces": [(piece, score, type)], "model_type", "byte_fallback", "charsmap", "add_dummy_prefix",
    "remove_extra_whitespaces"} from a SentencePiece model file."""
    with open(path, "rb") as f:
        buf = f.read()
    out = {"pieces": [], "model_type": _UNIGRAM, "byte_fallback": False, "charsmap": b"",
           "add_dummy_prefix": True, "remove_extra_whitespaces": True}
    try:
        for number, _, value in _fields(buf):
            if number == _PIECES:
                piece, score, kind = "", 0.0, 1
                for n, _, v in _fields(value):
                    if n == 1:
                        piece = v.decode("utf-8")
                    elif n == 2:
                        score = struct.unpack("<f", v)[0]
                    elif n == 3:
                        kind = v
                out["pieces"].append((piece, score, kind))
            elif number == _TRAINER:
                for n, _, v in _fields(value):
                    if n == 3:
                        out["model_type"] = v
                    elif n == 35:
                        out["byte_fallback"] = bool(v)
            elif number == _NORMALIZER:
                for n, _, v in _fields(value):
                    if n == 2:
                        out["charsmap"] = bytes(v)
                    elif n == 3:
                        out["add_dummy_prefix"] = bool(v)
                    elif n == 4:
                        out["remove_extra_whitespaces"] = bool(v)
    except (IndexError, ValueError, UnicodeDecodeError, struct.error) as e:
        raise ConfigError("cannot read SentencePiece model %s: %s" % (path, e)) from None
    if not out["pieces"]:
        raise ConfigError("SentencePiece model %s holds no pieces" % path)
    return out


def spm_tokenizer_json(path, special_tokens, cls_token="[CLS]", sep_token="[SEP]"):
    """The tokenizer.json text for the unigram model at `path`, or None for other model types."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import AddedToken

    spm = read_spm(path)
    if spm["model_type"] != _UNIGRAM:
        return None
    pieces = spm["pieces"]
    unk_id = next((i for i, p in enumerate(pieces) if p[2] == UNKNOWN), 0)
    tokenizer = Tokenizer(models.Unigram([(p, s) for p, s, _ in pieces], unk_id=unk_id,
                                         byte_fallback=spm["byte_fallback"]))
    steps = []
    if spm["charsmap"]:
        steps.append(normalizers.Precompiled(spm["charsmap"]))
    if spm["remove_extra_whitespaces"]:
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip(left=True, right=True)]
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    scheme = "always" if spm["add_dummy_prefix"] else "never"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme)
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme=scheme)
    ids = {p: i for i, (p, _, _) in enumerate(pieces)}
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="%s:0 $A:0 %s:0" % (cls_token, sep_token),
        pair="%s:0 $A:0 %s:0 $B:1 %s:1" % (cls_token, sep_token, sep_token),
        special_tokens=[(cls_token, ids[cls_token]), (sep_token, ids[sep_token])])
    return tokenizer.to_str()
