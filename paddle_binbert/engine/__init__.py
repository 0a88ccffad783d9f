"""The binary inference engine: XNOR/AND-popcount kernels as Paddle custom C++ operators.

    from paddle_binbert.export import pack_model
    from paddle_binbert import engine

    pack_model(student, "packed/")            # 1-bit model file (safetensors + config.json)
    model = engine.load("packed/")            # builds the operators once (cached), then runs them
    logits = model(input_ids, token_type_ids, attention_mask)

Its logits equal the simulated (fake-quant) student's in eval mode to float tolerance: every
binary product is exact integer arithmetic. ``EngineUnavailableError`` is raised when the
operators cannot be compiled (no C++ compiler); callers can fall back to the simulated model.
"""

from .ops import EngineUnavailableError, cpu_info, is_available, load_ops, resolve_isa
from .runner import PackedBertEngine, gelu_sign_threshold, load, weight_panels

__all__ = [
    "EngineUnavailableError",
    "PackedBertEngine",
    "cpu_info",
    "gelu_sign_threshold",
    "is_available",
    "load",
    "load_ops",
    "resolve_isa",
    "weight_panels",
]
