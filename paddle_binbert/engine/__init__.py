"""The binary inference engine: XNOR/AND-popcount kernels as Paddle custom C++ operators.

    from paddle_binbert.export import pack_model
    from paddle_binbert import engine

    pack_model(student, "packed/")            # 1-bit model file (safetensors + config.json)
    model = engine.load("packed/")            # builds the operators once (cached), then runs them
    logits = model(input_ids, token_type_ids, attention_mask)

Its logits equal the simulated (fake-quant) student's in eval mode to float tolerance: every
binary product is exact integer arithmetic.

Backends (``engine.load(path, backend=...)`` or ``$PADDLE_BINBERT_ENGINE``): ``auto`` (default)
runs the native operators, and when they cannot be built (no C++ compiler, unsupported platform)
logs one warning saying why and how to fix it, then returns a :class:`SimulatedBertEngine`, which
computes the same logits from the same packed file in Paddle float32 arithmetic; ``simulated``
asks for that backend directly; ``native`` raises ``EngineUnavailableError`` instead of falling back.
"""

from .ops import EngineUnavailableError, cpu_info, is_available, load_ops, resolve_isa
from .runner import (
    BACKEND_ENV,
    BACKENDS,
    PackedBertEngine,
    PackedRunnerBase,
    gelu_sign_threshold,
    load,
    resolve_backend,
    weight_panels,
)
from .simulated import SimulatedBertEngine

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "EngineUnavailableError",
    "PackedBertEngine",
    "PackedRunnerBase",
    "SimulatedBertEngine",
    "cpu_info",
    "gelu_sign_threshold",
    "is_available",
    "load",
    "load_ops",
    "resolve_backend",
    "resolve_isa",
    "weight_panels",
]
