"""A chunk's documents, tokenized into one flat array: the layout instance creation works on.

Sentences lie back to back in `tokens`, documents are runs of sentences, so any
run of consecutive sentences of a document is one contiguous token range. An
instance can then be described by a few (start, length) ranges instead of
copies of token arrays. One [SEP] token follows the last sentence, at index
`separator`, for sequences that need a separator inside a segment (packing).
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class TokenDocuments:
    tokens: np.ndarray  # int32 token ids of every sentence, back to back, then one [SEP]
    word_starts: np.ndarray  # bool, per token: it starts a word (whole-word masking)
    sentence_bounds: list  # sentence s is tokens[sentence_bounds[s]:sentence_bounds[s + 1]]
    document_bounds: list  # document d is sentences document_bounds[d] .. document_bounds[d + 1] - 1
    separator: int  # index of the [SEP] token after the last sentence

    @property
    def num_documents(self):
        return len(self.document_bounds) - 1


def tokenize_documents(raw_documents, tokenizer, segmenter=None):
    """Lists of sentence strings -> TokenDocuments; sentences without tokens and empty documents dropped.

    Word starts come from the tokenizer's pieces (▁ / ##), or, with a segmenter, from its
    word boundaries on the normalized text the tokenizer saw (a token starts a word when
    its first character starts a segmenter word; see `segmenter.token_word_starts`), or,
    with a reference file (`reference_file.ReferenceFile`), from the pieces less the tokens
    each sentence's reference lists as continuations.
    """
    sentences = [s for document in raw_documents for s in document]
    by_line = getattr(segmenter, "by_line", False)
    if segmenter is None or by_line:
        flat, lengths = tokenizer.encode_flat(sentences)
        starts = tokenizer.word_start_table[flat]
        if by_line:  # boundaries read with the lines (a reference file): clear the referenced tokens' starts
            starts = segmenter.clear_continuations(sentences, lengths, np.array(starts, dtype=bool))
    else:
        pieces, flags = [], []
        for text in sentences:
            ids, normalized, token_starts, inside = tokenizer.encode_normalized(text)
            pieces.append(np.asarray(ids, dtype=np.int32))
            flags.append(segmenter.token_word_starts(normalized, token_starts, inside))
        lengths = np.array([p.size for p in pieces], dtype=np.int64)
        flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
        starts = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    sentence_bounds, document_bounds = [0], [0]
    end, k = 0, 0
    for document in raw_documents:
        kept = 0
        for length in lengths[k:k + len(document)].tolist():
            if length:
                end += length
                sentence_bounds.append(end)
                kept += 1
        k += len(document)
        if kept:
            document_bounds.append(document_bounds[-1] + kept)
    tokens = np.append(flat.astype(np.int32, copy=False), np.int32(tokenizer.sep_id))
    word_starts = np.append(starts.astype(bool, copy=False), True)
    return TokenDocuments(tokens, word_starts, sentence_bounds, document_bounds, separator=int(flat.size))
