"""Tokenizers for pre-training data: a SentencePiece model, or a WordPiece vocab.txt.

Both expose the same small interface used by the data tools and the trainer:
ids of the special symbols, `encode`, `encode_batch`, `encode_flat` (many texts
into one flat id array, for data creation), `encode_normalized` (the text
as the tokenizer sees it after normalization, and where each token starts in
it, for segmenter-based whole-word masking), `id_to_piece`, `is_word_start`
(SentencePiece: pieces starting with "▁"; WordPiece: pieces not starting with
"##"), the ids that random replacement may draw from, and
a `fingerprint` (SHA-256 of the model file) that manifests and checkpoints
record.

Raw text never becomes a control id ([PAD], [CLS], [SEP], [MASK]): a literal
"[SEP]" in the corpus is ordinary text, split into "[", "sep", "]" as
google-research/bert's BasicTokenizer does (WordPiece), or into ordinary pieces
(SentencePiece, whose control symbols are never matched in text; a model that
declares one of them user-defined is loaded with it made a control symbol).
"""

import abc
import hashlib
import itertools
import json
import os
import unicodedata

import numpy as np

from hvd_pretrain.errors import DataError

SPM_MODEL, WORDPIECE_VOCAB, TOKENIZER_JSON = "spm.model", "vocab.txt", "tokenizer.json"
SPECIAL_PIECES = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTROL_PIECES = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")  # never produced from text
MAX_WORD_CHARS = 200  # a longer word is one [UNK] (google-research/bert's WordpieceTokenizer)


def file_fingerprint(path, extra=""):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(extra.encode("utf-8"))
    return digest.hexdigest()


class Tokenizer(abc.ABC):
    """Common interface; subclasses fill the tables in their constructor."""

    kind = "base"
    path = None
    fingerprint = None
    vocab_size = pad_id = unk_id = cls_id = sep_id = mask_id = None

    def _build_tables(self, pieces, special_ids, piece_is_word_start):
        self.special_ids = np.array(sorted(set(special_ids)), dtype=np.int32)
        special = np.zeros(self.vocab_size, dtype=bool)
        special[self.special_ids] = True
        self.word_start_table = np.array([piece_is_word_start(p) for p in pieces], dtype=bool)
        self.word_start_table[special] = True
        self.random_ids = np.flatnonzero(~special).astype(np.int32)

    def is_word_start(self, token_id):
        return bool(self.word_start_table[int(token_id)])

    @abc.abstractmethod
    def encode_normalized(self, text):
        """(ids, normalized text, start of each token in it, inside: one bool per token).

        Normalization (NFKC, lower-casing, ...) can turn one character of `text` into
        several tokens ("½" -> "1⁄2", "㎏" -> "kg"), which would all share that character's
        offset in `text`; in the normalized text each token has its own start, so word
        boundaries for whole-word masking are taken there. inside[i] is True when token i
        begins within the normalized form of the source character the token before it
        ends in (the "2" of "½"): such a token never starts a word. Starts never decrease;
        tokens that encode one character together (byte fallback) share its start.
        """

    def encode_flat(self, texts):
        """(ids of all texts back to back as int32, number of ids of each text as int64)."""
        encoded = self.encode_batch(texts)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=int(lengths.sum()))
        return flat, lengths

    def describe(self):
        return {"kind": self.kind, "path": os.path.abspath(self.path), "fingerprint": self.fingerprint,
                "vocab_size": self.vocab_size, "pad_id": self.pad_id, "unk_id": self.unk_id, "cls_id": self.cls_id,
                "sep_id": self.sep_id, "mask_id": self.mask_id}


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"
    added_words = ()

    def __init__(self, model_path):
        import sentencepiece as spm

        self.path = model_path
        if not os.path.isfile(model_path):
            raise DataError("SentencePiece model not found: %s; run hvd-data vocab first" % model_path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=model_path)
            self.sp = self._without_user_defined_specials(spm, self.sp, model_path)
        except OSError as e:
            raise DataError("cannot read SentencePiece model %s: %s" % (model_path, e.strerror or e)) from None
        except (RuntimeError, ValueError, IndexError, UnicodeDecodeError):
            raise DataError("%s is not a SentencePiece model (it does not parse); pass the spm.model made by "
                            "hvd-data vocab, or re-create it" % model_path) from None
        self.fingerprint = file_fingerprint(model_path)
        self.vocab_size = self.sp.get_piece_size()
        ids = {piece: self.sp.piece_to_id(piece) for piece in SPECIAL_PIECES[2:]}
        for piece, token_id in ids.items():
            if token_id == self.sp.unk_id() or self.sp.id_to_piece(token_id) != piece:
                raise DataError("SentencePiece model %s has no %s symbol; train it with hvd-data vocab"
                                % (model_path, piece))
        self.pad_id = self.sp.pad_id()
        if self.pad_id < 0:
            raise DataError("SentencePiece model %s has no pad id; train it with hvd-data vocab" % model_path)
        self.unk_id = self.sp.unk_id()
        self.cls_id, self.sep_id, self.mask_id = ids["[CLS]"], ids["[SEP]"], ids["[MASK]"]
        pieces = [self.sp.id_to_piece(i) for i in range(self.vocab_size)]
        special = [i for i in range(self.vocab_size)
                   if self.sp.is_control(i) or self.sp.is_unknown(i) or self.sp.is_unused(i)]
        self._build_tables(pieces, special + [self.pad_id], lambda piece: piece.startswith("\u2581"))
        # [UNK] never carries the "▁": SentencePiece puts a "▁" piece before an unknown character that
        # starts a word, and an unknown character inside a word ("½" -> "▁1" [UNK] "2") continues it.
        self.word_start_table[self.unk_id] = False

    @staticmethod
    def _without_user_defined_specials(spm, sp, model_path):
        """`sp`, or, when the literal text of [CLS]/[SEP]/[MASK]/the pad piece encodes to that very
        symbol (the model declares it user-defined), the same model with those pieces made control."""
        from hvd_pretrain.vocab.spm_proto import with_control_pieces

        names = set(CONTROL_PIECES)
        if sp.pad_id() >= 0:
            names.add(sp.id_to_piece(sp.pad_id()))
        matched = [name for name in sorted(names)
                   if sp.piece_to_id(name) != sp.unk_id() and sp.piece_to_id(name) in sp.encode(name, out_type=int)]
        if not matched:
            return sp
        with open(model_path, "rb") as f:
            model = with_control_pieces(f.read(), matched)
        return spm.SentencePieceProcessor(model_proto=model)

    def encode(self, text):
        return self.sp.encode(text, out_type=int)

    def encode_batch(self, texts):
        return self.sp.encode(list(texts), out_type=int, num_threads=1)

    def encode_normalized(self, text):
        """(ids, normalized text, token starts, inside), as for `Tokenizer.encode_normalized`.

        The normalized text is the concatenation of the pieces, "▁" shown as a space; an
        unknown token contributes the normalized characters it stands for, a run of
        byte-fallback tokens the character they encode (all of them start where it does).
        """
        ids, parts, starts, pos = [], [], [], 0
        for piece in self.sp.encode(text, out_type="proto").pieces:
            shown = (piece.surface if self.sp.is_byte(piece.id) else piece.piece).replace("\u2581", " ")
            ids.append(piece.id)
            starts.append(pos)
            parts.append(shown)
            pos += len(shown)
        normalized = "".join(parts)
        escaped, sources = self.sp.normalize(text, with_offsets=True)  # source offset of each normalized character
        if len(escaped) != len(normalized):
            return ids, normalized, starts, [False] * len(ids)
        inside = [0 < s < len(normalized) and sources[s] == sources[s - 1] for s in starts]
        return ids, normalized, starts, inside

    def id_to_piece(self, token_id):
        return self.sp.id_to_piece(int(token_id))

    def piece_to_id(self, piece):
        return self.sp.piece_to_id(piece)


def has_accent(piece):
    """True when `piece` holds an accent: a nonspacing mark (Unicode category Mn) after NFD, which
    accent stripping (google-research/bert's `_run_strip_accents`) would remove."""
    return any(unicodedata.category(c) == "Mn" for c in unicodedata.normalize("NFD", piece))


def vocab_keeps_accents(pieces):
    """True when some ordinary piece holds an accent (a nonspacing mark after NFD).

    Accent stripping would make such a piece unreachable, so a vocab that holds one was
    made from text whose accents were kept.
    """
    return any(has_accent(p) for p in pieces if not (p.startswith("[") and p.endswith("]")))


def vocab_has_capitals(pieces):
    """True when some ordinary piece holds an upper-case letter (the vocab is cased)."""
    return any(any(c.isupper() for c in p) for p in pieces if not (p.startswith("[") and p.endswith("]")))


class WordPieceTokenizer(Tokenizer):
    """A BERT vocab.txt through HF `tokenizers` (a maintained, fast WordPiece implementation).

    The pipeline is google-research/bert's FullTokenizer: BertNormalizer (clean text,
    space around CJK characters, lower-casing, accent stripping), BertPreTokenizer
    (whitespace and punctuation), WordPiece with "##" continuations and words of at most
    200 characters (longer ones are [UNK]). Special tokens are
    not added to the HF tokenizer, so "[SEP]" in the text is "[", "sep", "]".

    do_lower_case None: lower-case when the vocab has no capitals (Google's uncased vocabs).
    strip_accents None: strip (NFD, drop Mn) when lower-casing, unless the vocab holds
    accented pieces (which stripping would make unreachable); HF BertNormalizer's
    `strip_accents`, set apart from `lowercase`. Google's uncased rule (lower + strip) is
    what a vocab with neither capitals nor accents gets.
    """

    kind = "wordpiece"

    def __init__(self, vocab_path, do_lower_case=None, strip_accents=None, added_words=()):
        from tokenizers import AddedToken
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, normalizers, pre_tokenizers

        self.path = vocab_path
        try:
            with open(vocab_path, encoding="utf-8") as f:
                pieces = [line.rstrip("\n").rstrip("\r") for line in f]
        except OSError as e:
            raise DataError("cannot read WordPiece vocab %s: %s" % (vocab_path, e.strerror or e)) from None
        except UnicodeDecodeError:
            raise DataError("WordPiece vocab %s is not UTF-8 text; pass a BERT vocab.txt (one piece per line)"
                            % vocab_path) from None
        while pieces and not pieces[-1]:
            pieces.pop()
        index = {piece: i for i, piece in enumerate(pieces)}  # a repeated piece: its last id (as Google)
        missing = [p for p in SPECIAL_PIECES if p not in index]
        if missing:
            raise DataError("WordPiece vocab %s lacks %s; use a BERT vocab.txt" % (vocab_path, " ".join(missing)))
        if do_lower_case is None:
            do_lower_case = not vocab_has_capitals(pieces)
        self.do_lower_case = bool(do_lower_case)
        if strip_accents is None:
            strip_accents = self.do_lower_case and not vocab_keeps_accents(pieces)
        self.strip_accents = bool(strip_accents)
        settings = "lower=%d" % self.do_lower_case
        if self.strip_accents != self.do_lower_case:  # Google's rule ties them; record only a departure
            settings += " strip_accents=%d" % self.strip_accents
        self.added_words = sorted(set(added_words or ()))
        if self.added_words:  # words the pre-tokenizer would split (vocab/extend.py): matched before it
            missing = [w for w in self.added_words if w not in index]
            if missing:
                raise DataError("tokenizer.json beside %s lists added words that vocab.txt lacks (%s); rebuild the"
                                " vocab with hvd-data vocab --extend" % (vocab_path, " ".join(missing[:3])))
            settings += " added=%s" % hashlib.sha256("\n".join(self.added_words).encode()).hexdigest()[:12]
        self.fingerprint = file_fingerprint(vocab_path, extra=settings)
        self.vocab_size = len(pieces)
        self._pieces = pieces
        self._index = index
        self.pad_id, self.unk_id = index["[PAD]"], index["[UNK]"]
        self.cls_id, self.sep_id, self.mask_id = index["[CLS]"], index["[SEP]"], index["[MASK]"]
        self.hf = HFTokenizer(models.WordPiece(index, unk_token="[UNK]", continuing_subword_prefix="##",
                                               max_input_chars_per_word=MAX_WORD_CHARS))
        self.hf.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                        strip_accents=self.strip_accents,
                                                        lowercase=self.do_lower_case)
        self.hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        if self.added_words:
            self.hf.add_tokens([AddedToken(w, normalized=False, single_word=False) for w in self.added_words])
        self._normalizer_for_segmenter = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=False, strip_accents=self.strip_accents, lowercase=self.do_lower_case)
        special = [i for i, p in enumerate(pieces) if p.startswith("[") and p.endswith("]")]
        self._build_tables(pieces, special, lambda piece: not piece.startswith("##"))
        self._piece_cache = None

    def encode(self, text):
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts):
        return [e.ids for e in self.hf.encode_batch(list(texts), add_special_tokens=False)]

    def encode_normalized(self, text):
        """(ids, normalized text, token starts, inside), as for `Tokenizer.encode_normalized`.

        The normalized text is BertNormalizer's output without the spaces it puts around
        CJK characters (a word segmenter needs the characters together); tokenizing it
        gives the ids of `text`, since the normalizer changes nothing the second time.
        """
        original = self.hf.encode(text, add_special_tokens=False)
        sources = [start for start, _ in original.offsets]
        inside = [i > 0 and sources[i] == sources[i - 1] for i in range(len(sources))]
        normalized = self._normalizer_for_segmenter.normalize_str(text)
        encoding = self.hf.encode(normalized, add_special_tokens=False)
        if encoding.ids != original.ids:  # not expected; then fall back to the offsets in `text`
            return original.ids, text, sources, inside
        return encoding.ids, normalized, [start for start, _ in encoding.offsets], inside

    def encode_flat(self, texts):
        """Like the base class, through a cache that encodes each space-separated piece once (same ids)."""
        if self._piece_cache is None:
            from hvd_pretrain.vocab.piece_cache import PieceCache

            def encode_batch_with_offsets(batch):
                return [(e.ids, [start for start, _ in e.offsets])
                        for e in self.hf.encode_batch(batch, add_special_tokens=False)]

            self._piece_cache = PieceCache(encode_batch_with_offsets)
        return self._piece_cache.encode_flat(list(texts))

    def id_to_piece(self, token_id):
        return self._pieces[int(token_id)]

    def piece_to_id(self, piece):
        return self._index.get(piece, self.unk_id)

    def describe(self):
        info = super().describe()
        info["do_lower_case"] = self.do_lower_case
        info["strip_accents"] = self.strip_accents
        if self.added_words:
            info["added_words"] = len(self.added_words)
        return info


def resolve_vocab(vocab_dir):
    """(kind, path) for a vocab dir holding spm.model or vocab.txt, or a direct path to either."""
    if not vocab_dir:
        raise DataError("--vocab is empty; pass the directory made by hvd-data vocab (spm.model) or a vocab.txt")
    if os.path.isfile(vocab_dir):
        kind = "wordpiece" if vocab_dir.endswith(".txt") else "sentencepiece"
        return kind, vocab_dir
    if not os.path.isdir(vocab_dir):
        raise DataError("vocab not found: %s; run hvd-data vocab --out=%s first" % (vocab_dir, vocab_dir))
    for name, kind in ((SPM_MODEL, "sentencepiece"), (WORDPIECE_VOCAB, "wordpiece")):
        path = os.path.join(vocab_dir, name)
        if os.path.isfile(path):
            return kind, path
    raise DataError("vocab dir %s holds neither %s nor %s; run hvd-data vocab --out=%s"
                    % (vocab_dir, SPM_MODEL, WORDPIECE_VOCAB, vocab_dir))


def load_tokenizer(vocab_dir, do_lower_case=None, strip_accents=None):
    """The tokenizer stored in `vocab_dir` (or at a direct path to spm.model / vocab.txt).

    WordPiece settings left None come from the dir's tokenizer.json (written by hvd-data
    vocab), else from the vocab itself (see WordPieceTokenizer).
    """
    kind, path = resolve_vocab(vocab_dir)
    if kind == "sentencepiece":
        return SentencePieceTokenizer(path)
    recorded = {}
    if os.path.isdir(vocab_dir):
        try:
            with open(os.path.join(vocab_dir, TOKENIZER_JSON)) as f:
                recorded = json.load(f)
        except (OSError, ValueError):
            recorded = {}
        recorded = recorded if isinstance(recorded, dict) else {}
    if do_lower_case is None:
        do_lower_case = recorded.get("do_lower_case")
    if strip_accents is None:
        strip_accents = recorded.get("strip_accents")
    return WordPieceTokenizer(path, do_lower_case=do_lower_case, strip_accents=strip_accents,
                              added_words=recorded.get("added_words") or ())
