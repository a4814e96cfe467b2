"""Corpus input: compressed text, JSON Lines and Parquet, read as documents of sentences.

    compression  codec from the magic bytes; streaming decompression (gzip, bz2, xz, zstd)
    sentences    sentence splitting: none, en (sentencex), zh (。！？；…), auto per document
    records      JSON Lines and Parquet records -> documents, skipped records counted
    stats        ReadStats: what was read and what was skipped, and why
    reader       InputConfig (the format flags), inspect_input, canonical lines, documents

Every tool that reads a user's corpus (hvd-data vocab, create, newwords and
hvd-pretrain --input_files) goes through `reader`, so a format works everywhere or nowhere.
"""

from hvd_pretrain.inputs.compression import CODECS, detect_compression, open_binary
from hvd_pretrain.inputs.reader import (DEFAULT_MAX_LINE_BYTES, FORMATS, InputConfig, InputInfo, canonical_lines,
                                        corpus_lines, detect_input, documents_from_lines, inspect_input, inspect_inputs,
                                        needs_conversion, read_documents, write_canonical)
from hvd_pretrain.inputs.sentences import split_sentences
from hvd_pretrain.inputs.stats import ReadStats

__all__ = ["CODECS", "DEFAULT_MAX_LINE_BYTES", "FORMATS", "InputConfig", "InputInfo", "ReadStats", "canonical_lines",
           "corpus_lines", "detect_compression", "detect_input", "documents_from_lines", "inspect_input", "inspect_inputs",
           "needs_conversion", "open_binary", "read_documents", "split_sentences", "write_canonical"]
