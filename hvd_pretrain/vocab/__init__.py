"""Vocabularies: SentencePiece and WordPiece training, and loading SentencePiece or WordPiece tokenizers.

(Chinese new-word discovery lives in the subpackages `newwords` and `rules`.)
"""

from hvd_pretrain.vocab.coverage import coverage_report
from hvd_pretrain.vocab.sentencepiece_trainer import (CONTROL_SYMBOLS, default_character_coverage,
                                                      train_sentencepiece)
from hvd_pretrain.vocab.tokenizer import (SentencePieceTokenizer, Tokenizer, WordPieceTokenizer, load_tokenizer,
                                          resolve_vocab)
from hvd_pretrain.vocab.wordpiece_trainer import train_wordpiece

__all__ = ["CONTROL_SYMBOLS", "SentencePieceTokenizer", "Tokenizer", "WordPieceTokenizer", "coverage_report",
           "default_character_coverage", "load_tokenizer", "resolve_vocab", "train_sentencepiece",
           "train_wordpiece"]
