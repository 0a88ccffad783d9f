"""Quantizers (PyLayer straight-through estimators), quantized layers and QuantConfig."""

from .config import QuantConfig, available_presets
from .layers import EngineLayerNorm, QuantEmbedding, QuantLinear
from .quantizers import Quantizer, available_quantizers, get_quantizer, quantizer_arguments

__all__ = [
    "QuantConfig",
    "available_presets",
    "EngineLayerNorm",
    "QuantEmbedding",
    "QuantLinear",
    "Quantizer",
    "available_quantizers",
    "get_quantizer",
    "quantizer_arguments",
]
