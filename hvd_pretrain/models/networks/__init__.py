"""Networks: combinations of layers that are not trained alone."""

from hvd_pretrain.models.networks.encoder import TransformerEncoder

__all__ = ["TransformerEncoder"]
