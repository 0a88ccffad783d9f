"""Packed 1-bit BERT models without Paddle: numpy, safetensors and tokenizers only.

    from paddle_binbert import runtime

    model = runtime.load("sst2_bibert_packed")                  # a folder written by pack_model
    logits = model(input_ids, token_type_ids, attention_mask)   # numpy int64 in, numpy float32 out
    start, end = runtime.load("squad_bibert_packed")(input_ids, token_type_ids)

    predictor = runtime.Predictor("sst2_bibert_packed", batch_size=32, max_length=128)
    predictor(["a gripping, funny film", "dull"])     # Taskflow's output format
    # [{"text": "a gripping, funny film", "predictions": [{"label": "1", "score": 0.93}]}, ...]

The kernels and the forward pass are the C++ code of :mod:`paddle_binbert.engine`, compiled without
Paddle headers into a shared library on first use (cached, see :mod:`.library`) and called with
ctypes: the logits equal ``paddle_binbert.engine.load(folder)``'s. Importing this package imports
neither Paddle nor PaddleNLP. Install only what it needs with ``pip install -e .[runtime]`` or
``pip install -r requirements-runtime.txt``.
"""

from __future__ import annotations

from ..engine.layout import GELU_SIGN_THRESHOLD
from ..format.packed import PackedFormatError, PackedModel, load_packed
from .library import RuntimeUnavailableError, load_library
from .model import RuntimeModel, load
from .predictor import Predictor
from .tokenizer import WordPieceTokenizer

__all__ = [
    "GELU_SIGN_THRESHOLD",
    "PackedFormatError",
    "PackedModel",
    "Predictor",
    "RuntimeModel",
    "RuntimeUnavailableError",
    "WordPieceTokenizer",
    "load",
    "load_library",
    "load_packed",
]
