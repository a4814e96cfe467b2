"""Keras layers with one job each; every layer round-trips through get_config."""

from hvd_pretrain.models.layers.attention import MultiHeadSelfAttention
from hvd_pretrain.models.layers.embeddings import Embeddings
from hvd_pretrain.models.layers.heads import MaskedLMHead, ReplacedTokenHead, SentenceHead
from hvd_pretrain.models.layers.normalization import LayerNorm
from hvd_pretrain.models.layers.transformer import AttentionSublayer, FeedForwardSublayer, TransformerBlock

__all__ = ["Embeddings", "MultiHeadSelfAttention", "AttentionSublayer", "FeedForwardSublayer",
           "TransformerBlock", "LayerNorm", "MaskedLMHead", "SentenceHead", "ReplacedTokenHead"]
