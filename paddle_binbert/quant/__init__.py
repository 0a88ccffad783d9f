"""Quantizers (PyLayer straight-through estimators), quantized layers and QuantConfig."""

from .config import QuantConfig, available_presets
from .layers import QuantEmbedding, QuantLinear
from .quantizers import Quantizer, available_quantizers, get_quantizer

__all__ = [
    "QuantConfig",
    "available_presets",
    "QuantEmbedding",
    "QuantLinear",
    "Quantizer",
    "available_quantizers",
    "get_quantizer",
]
