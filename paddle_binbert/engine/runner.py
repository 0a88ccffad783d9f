"""Run a packed 1-bit BERT with the engine's custom operators.

``paddle_binbert.engine.load(out_dir)`` returns a :class:`PackedBertEngine` (or, when the operators
cannot be built or ``backend="simulated"`` is asked for, a
:class:`~paddle_binbert.engine.SimulatedBertEngine` with the same call and outputs)::

    model = paddle_binbert.engine.load("sst2_bibert_packed")
    logits = model(input_ids, token_type_ids, attention_mask)          # classification
    start_logits, end_logits = qa_model(input_ids, token_type_ids)     # question answering

Inputs are numpy arrays, Paddle tensors or nested lists of ints; outputs are numpy float32.
The whole network (embeddings, every encoder layer, pooler and head) runs in one call of the
``binbert_bert_forward`` operator:

- binary linears: activation bits packed on the fly from the quantizer of the layer's input,
  ``y_j = alpha_j * dot + b_j`` with ``dot = K - 2 popcount(x XOR w)`` (or
  ``2 popcount(a AND w) - popcount(a)`` for BiT's unsigned FFN2 input);
- attention: BiBERT ``A = 1[dot / sqrt(d) + M > 0]``, context by AND-popcount; BiT softmax in
  float then ``{0, alpha}`` probabilities; the BWN baseline's ``sgn(softmax) = +1`` at every real
  key; in every variant a masked key gets attention 0, as in the model;
- FP islands (embedding sum + LayerNorm, residual + LayerNorm, pooler tanh, classifier) in C++.

GELU before a sign quantizer: ``sgn(GELU(x)) = +1`` iff ``x >= 0`` or ``GELU(x)`` is ``-0.0``,
which Paddle's float32 GELU returns below a threshold (about -5.5547). The engine does not
evaluate GELU; it uses that rule with the threshold probed from ``paddle.nn.functional.gelu``
(:func:`gelu_sign_threshold`), so its bits equal the simulated model's.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..format.packed import PackedModel, load_packed
from . import ops as _ops
from .base import CheckedInputs, NativeRunnerBase, Outputs, PackedRunnerBase
from .layout import build_config, build_weight_list
from .ops import EngineUnavailableError

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "PackedBertEngine",
    "gelu_sign_threshold",
    "load",
    "resolve_backend",
]

logger = logging.getLogger("paddle_binbert.engine")

BACKENDS = ("auto", "native", "simulated")
BACKEND_ENV = "PADDLE_BINBERT_ENGINE"
_WARNED: set = set()  # fallback reasons already logged by this process

_GELU_THRESHOLD: Optional[float] = None


def gelu_sign_threshold() -> float:
    """The largest float32 ``x`` for which Paddle's CPU ``F.gelu(x)`` returns zero (-0.0).

    For ``x <= t`` GELU underflows to -0.0 (1 + erf(x / sqrt 2) rounds to 0) and the sign
    quantizer (ties to +1) gives +1; for ``t < x < 0`` it gives -1. Found by bisection over the
    float32 bit patterns and checked on a window around the transition; ``-inf`` (never zero) if
    Paddle's GELU has no such transition.
    """
    global _GELU_THRESHOLD
    if _GELU_THRESHOLD is not None:
        return _GELU_THRESHOLD
    import paddle
    import paddle.nn.functional as F

    def is_zero(bit_patterns: np.ndarray) -> np.ndarray:
        x = (bit_patterns.astype(np.uint32) | np.uint32(0x80000000)).view(np.float32)  # negative floats
        with paddle.no_grad():
            y = F.gelu(paddle.to_tensor(x)).numpy()
        return y == 0.0

    lo = int(np.float32(1.0).view(np.uint32))  # |x| = 1: GELU(-1) != 0
    hi = int(np.float32(30.0).view(np.uint32))  # |x| = 30: GELU(-30) == 0
    if not is_zero(np.array([hi]))[0] or is_zero(np.array([lo]))[0]:
        _GELU_THRESHOLD = float("-inf")
        return _GELU_THRESHOLD
    while hi - lo > 1:  # invariant: |x| = lo gives nonzero, |x| = hi gives zero
        mid = (lo + hi) // 2
        if is_zero(np.array([mid]))[0]:
            hi = mid
        else:
            lo = mid
    window = np.arange(max(lo - 8192, 0), hi + 8192, dtype=np.int64)
    zero = is_zero(window)
    if not (np.all(zero[window >= hi]) and not np.any(zero[window <= lo])):
        raise RuntimeError("paddle's gelu has no single -0.0 threshold; the engine cannot skip GELU exactly")
    _GELU_THRESHOLD = -float(np.uint32(hi).view(np.float32))
    return _GELU_THRESHOLD


class PackedBertEngine(NativeRunnerBase):
    """A packed binary BERT ready to run. Build with :func:`load`.

    Call ``model(input_ids, token_type_ids=None, attention_mask=None)``:

    - ``input_ids`` ``[batch, seq_len]`` ints (a 1-D sequence is taken as batch 1);
    - ``token_type_ids`` defaults to zeros;
    - ``attention_mask`` ``[batch, seq_len]`` with 1 for real tokens and 0 for padding (PaddleNLP's
      2-D mask, turned into ``(1 - mask) * -1e4``); ``None`` masks the keys equal to
      ``pad_token_id``, as PaddleNLP's ``BertModel`` does.

    Returns logits ``[batch, num_labels]`` (classification) or ``(start_logits, end_logits)``, each
    ``[batch, seq_len]`` (question answering), as numpy float32.
    """

    backend = "native"

    # ------------------------------------------------------------------ internals
    def _load_kernels(self) -> Optional[int]:
        self._ops = _ops.load_ops()
        return None  # resolve_isa asks the operators (cpu_info)

    def _load_weights(self) -> None:
        import paddle

        self._paddle = paddle
        # the tensor list of binbert_bert_forward (layout documented in binbert_forward.h)
        self._weights = [paddle.to_tensor(a) for a in build_weight_list(self.meta, self.packed.tensors)]

    def _configure(self) -> None:
        thr = gelu_sign_threshold() if self.meta["hidden_act"] == "gelu" else float("-inf")
        self._icfg, self._fcfg = build_config(self.meta, self.isa, self.num_threads, self.profiling, thr)

    def _read_raw_profile(self) -> np.ndarray:
        return self._ops.binbert_profile(self._paddle.zeros([1], dtype="float32")).numpy()

    def _compute(self, inputs: CheckedInputs, want_hidden: bool) -> Outputs:
        paddle = self._paddle
        tensors = [paddle.to_tensor(inputs.ids), paddle.to_tensor(inputs.types), paddle.to_tensor(inputs.mask)]
        config = inputs.length_config
        icfg = self._icfg if config is None else self._icfg + list(config)
        logits, hidden = self._ops.binbert_bert_forward(*tensors, self._weights, icfg, self._fcfg)
        return logits.numpy(), hidden.numpy()


def resolve_backend(backend: Optional[str] = None) -> str:
    """The backend to use: ``backend``, else ``$PADDLE_BINBERT_ENGINE``, else ``"auto"``.

    ``auto``: the native operators when they build, else the simulated backend (with one warning);
    ``native``: the operators or :class:`~paddle_binbert.engine.EngineUnavailableError`;
    ``simulated``: Paddle float32 arithmetic on the packed file (no compiler needed).
    """
    source = "backend"
    if backend is None:
        backend, source = os.environ.get(BACKEND_ENV) or "auto", f"${BACKEND_ENV}"
    name = str(backend).strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown engine backend {backend!r} (from {source}); valid: {list(BACKENDS)}")
    return name


def _warn_fallback(err: BaseException) -> None:
    """Log once per process (and reason) that the simulated backend replaces the native one, why, and
    how to get the native engine back (the error's ``advice``: install a compiler only when none
    was found, fix or delete a failed build otherwise)."""
    reason = str(err)
    if reason in _WARNED:
        return
    _WARNED.add(reason)
    advice = getattr(err, "advice", None) or "see the reason"
    logger.warning(
        "paddle_binbert.engine: the native 1-bit kernels are unavailable, so the packed model runs on the "
        "simulated backend (same logits, computed in Paddle float32 arithmetic; slower, and the weights are "
        "held as float32). Reason: %s. To get the native engine: %s. Set %s=simulated to choose the simulated "
        "backend without this warning, or %s=native to make this an error.",
        reason,
        advice,
        BACKEND_ENV,
        BACKEND_ENV,
    )


def load(
    out_dir: Union[str, Path, PackedModel],
    num_threads: Optional[int] = None,
    isa: Union[None, int, str] = None,
    profile: bool = False,
    backend: Optional[str] = None,
) -> PackedRunnerBase:
    """Load a packed folder (see :func:`paddle_binbert.export.pack_model`) into a callable engine.

    Args:
        out_dir: the folder (or an already loaded :class:`~paddle_binbert.format.packed.PackedModel`).
        num_threads: threads for the kernels (default: the CPUs this process may use).
        isa: ``"avx512"``, ``"avx2"``, ``"portable"`` or None (``$PADDLE_BINBERT_ISA``, else the best);
            ignored by the simulated backend.
        profile: accumulate per-stage times (:meth:`PackedBertEngine.read_profile`).
        backend: ``"auto"``, ``"native"`` or ``"simulated"``; None reads ``$PADDLE_BINBERT_ENGINE``
            (default ``auto``). ``auto`` returns a :class:`PackedBertEngine` when the C++ operators
            build, else logs one warning (the reason, and how to fix it) and returns a
            :class:`~paddle_binbert.engine.SimulatedBertEngine`: same call, same logits (relative
            error < 1e-4), computed in Paddle float32 arithmetic from the packed file.

    Raises :class:`~paddle_binbert.engine.EngineUnavailableError` only with ``backend="native"``
    when the operators cannot be built (no compiler, unsupported platform).
    """
    name = resolve_backend(backend)
    packed = out_dir if isinstance(out_dir, PackedModel) else load_packed(out_dir)
    if name == "auto":
        try:
            _ops.load_ops()
        except EngineUnavailableError as err:
            _warn_fallback(err)
            name = "simulated"
    if name == "simulated":
        from .simulated import SimulatedBertEngine

        return SimulatedBertEngine(packed, num_threads=num_threads, profile=profile)
    return PackedBertEngine(packed, num_threads=num_threads, isa=isa, profile=profile)
