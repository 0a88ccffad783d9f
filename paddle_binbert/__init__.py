"""paddle_binbert: fully binarized BERT (BiBERT, BiT, BinaryBERT) on PaddlePaddle / PaddleNLP.

Public entry points::

    from paddle_binbert import QuantConfig, quantize_model, load_model, get_quantizer, Taskflow

Packed 1-bit models also run without Paddle (numpy, safetensors and tokenizers only)::

    from paddle_binbert import runtime
    logits = runtime.load("sst2_bibert_packed")(input_ids, token_type_ids, attention_mask)

The names above are imported lazily, on first access (PEP 562): ``import paddle_binbert`` and
``import paddle_binbert.runtime`` do not import Paddle or PaddleNLP; ``from paddle_binbert import
Taskflow`` (or any other Paddle-based name) does.

With ``PADDLE_BINBERT_MKL_AVX2=1`` on an AMD CPU with AVX2, importing the package sets
``MKL_DEBUG_CPU_TYPE=5`` (unless set), so that Paddle's bundled MKL uses its AVX2 kernels, for
training: :mod:`paddle_binbert.cpu_tuning`.
"""

from __future__ import annotations

from .cpu_tuning import enable_mkl_avx2_on_amd
from .lazy import lazy_attributes

# before any Paddle matmul: with PADDLE_BINBERT_MKL_AVX2=1, Paddle's bundled MKL uses its AVX2 kernels on
# AMD CPUs (3-4x faster matmuls; opt-in because it also moves GELU's underflow: cpu_tuning.py)
enable_mkl_avx2_on_amd()

__version__ = "0.1.0"

#: public name -> submodule that defines it
_EXPORTS = {
    "QuantConfig": "quant",
    "available_presets": "quant",
    "available_quantizers": "quant",
    "get_quantizer": "quant",
    "quantize_model": "models",
    "load_model": "checkpoints",
    "load_checkpoint": "checkpoints",
    "Taskflow": "inference.taskflow.taskflow",
}

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


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
