"""paddle_binbert: fully binarized BERT (BiBERT, BiT, BinaryBERT) on PaddlePaddle / PaddleNLP.

Public entry points::

    from paddle_binbert import QuantConfig, quantize_model, load_model, get_quantizer, Taskflow
"""

from .checkpoints import load_checkpoint
from .models import load_model, quantize_model
from .quant import QuantConfig, available_presets, available_quantizers, get_quantizer
from .taskflow import Taskflow

__version__ = "0.1.0"

__all__ = [
    "QuantConfig",
    "quantize_model",
    "load_model",
    "load_checkpoint",
    "Taskflow",
    "get_quantizer",
    "available_presets",
    "available_quantizers",
    "__version__",
]
