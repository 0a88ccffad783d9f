"""The binary inference engine: XNOR/AND-popcount kernels as Paddle custom C++ operators.

    from paddle_binbert.export import pack_model
    from paddle_binbert import engine

    pack_model(student, "packed/")            # 1-bit model folder (paddle_binbert.format.packed)
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
(:mod:`.layout`, :mod:`.buildcache`, :mod:`.ops`' build settings, and :mod:`.base`'s
:class:`~.base.PackedRunnerBase` and :class:`~.base.NativeRunnerBase`) can be used by
:mod:`paddle_binbert.runtime` without importing Paddle. The packed folder's format, writer and reader
are :mod:`paddle_binbert.format.packed`.
"""

from __future__ import annotations

from ..lazy import lazy_attributes

#: public name -> submodule that defines it
_EXPORTS = {
    "EngineUnavailableError": "ops",
    "cpu_info": "ops",
    "is_available": "ops",
    "load_ops": "ops",
    "resolve_isa": "ops",
    "BACKEND_ENV": "runner",
    "BACKENDS": "runner",
    "NativeRunnerBase": "base",
    "PackedBertEngine": "runner",
    "PackedRunnerBase": "base",
    "gelu_sign_threshold": "runner",
    "load": "runner",
    "resolve_backend": "runner",
    "weight_panels": "layout",
    "SimulatedBertEngine": "simulated",
}

_SUBMODULES = ("base", "buildcache", "layout", "ops", "runner", "simulated")

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, _SUBMODULES)
