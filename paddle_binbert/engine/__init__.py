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

The public names are imported lazily (on first access), so that the Paddle-free parts
(:mod:`.layout`, :mod:`.ops`' build helpers, :class:`.runner.PackedRunnerBase`) can be used by
:mod:`paddle_binbert.runtime` without importing Paddle.
"""

from __future__ import annotations

import importlib
from typing import Any, List

#: public name -> submodule that defines it
_EXPORTS = {
    "EngineUnavailableError": "ops",
    "cpu_info": "ops",
    "is_available": "ops",
    "load_ops": "ops",
    "resolve_isa": "ops",
    "BACKEND_ENV": "runner",
    "BACKENDS": "runner",
    "PackedBertEngine": "runner",
    "PackedRunnerBase": "runner",
    "gelu_sign_threshold": "runner",
    "load": "runner",
    "resolve_backend": "runner",
    "weight_panels": "layout",
    "SimulatedBertEngine": "simulated",
}

_SUBMODULES = ("layout", "ops", "runner", "simulated")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first access (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
