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
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ..export.pack import PackedModel, load_packed
from . import ops as _ops
from .layout import (  # noqa: F401 - re-exported: the layout constants used to live here
    ACT_CODES,
    ATTENTION_CODES,
    ATTN_OFF,
    EMB_TENSORS,
    LAYER_TENSORS,
    NORM_OFF,
    PANEL,
    build_config,
    build_weight_list,
    check_length_config,
    weight_panels,
)
from .ops import ISA_NAMES, EngineUnavailableError, resolve_isa, resolve_threads

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "CheckedInputs",
    "NativeRunnerBase",
    "PackedBertEngine",
    "PackedRunnerBase",
    "gelu_sign_threshold",
    "load",
    "resolve_backend",
    "weight_panels",
]

logger = logging.getLogger("paddle_binbert.engine")

BACKENDS = ("auto", "native", "simulated")
BACKEND_ENV = "PADDLE_BINBERT_ENGINE"
_WARNED: set = set()  # fallback reasons already logged by this process

PROFILE_STAGES = (
    "embeddings + LayerNorm",
    "activation packing",
    "QKV GEMM",
    "attention",
    "out-proj GEMM",
    "residual + LayerNorm",
    "FFN1 GEMM",
    "FFN2 GEMM",
    "pooler + head",
    "total",
)

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


class CheckedInputs(NamedTuple):
    """One call's inputs as checked by :class:`PackedRunnerBase`: int64 ``ids`` and ``types``
    ``[batch, seq_len]``, the float32 additive key ``mask`` (``(1 - m) * -1e4``) and the validated
    length configuration (or None)."""

    ids: np.ndarray
    types: np.ndarray
    mask: np.ndarray
    length_config: Optional[Tuple[int, ...]]


#: a backend's forward-pass result: (head output, last hidden state or None)
Outputs = Tuple[np.ndarray, Optional[np.ndarray]]


def _as_int64(x: Any, name: str) -> np.ndarray:
    """A ``[batch, seq_len]`` int64 array from numpy / Paddle / nested lists (1-D means batch 1)."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [batch, seq_len], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class PackedRunnerBase:
    """What every engine backend shares: the packed model, its config and task, input checking
    (:meth:`check_length_config`, the id / type / mask arrays) and the call convention, ``model(...)``
    and :meth:`forward` (see :class:`PackedBertEngine`). A backend implements ``_compute``: the
    forward pass on the checked arrays."""

    backend = "base"

    def __init__(self, packed: PackedModel):
        self.packed = packed
        self.meta = packed.meta
        self._config = None

    @property
    def config(self):
        """The packed model's ``BertConfig`` (from its config.json; ``num_labels``, ``id2label``...)."""
        if self._config is None:
            from paddlenlp.transformers import BertConfig

            self._config = BertConfig.from_dict(dict(self.packed.config))
        return self._config

    @property
    def task(self) -> str:
        """``classification`` or ``question_answering``."""
        return self.meta["task"]

    def __call__(
        self,
        input_ids: Any,
        token_type_ids: Any = None,
        attention_mask: Any = None,
        length_config: Optional[Sequence[int]] = None,
    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        logits, _ = self._checked_compute(input_ids, token_type_ids, attention_mask, length_config, want_hidden=False)
        if self.task == "question_answering":
            return np.ascontiguousarray(logits[..., 0]), np.ascontiguousarray(logits[..., 1])
        return logits

    def forward(
        self,
        input_ids: Any,
        token_type_ids: Any = None,
        attention_mask: Any = None,
        length_config: Optional[Sequence[int]] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """(head output, last hidden state ``[batch, seq_len, hidden]``); the head output is
        ``[batch, num_labels]`` or ``[batch, seq_len, 2]`` (QA).

        ``length_config`` ``(l_1, ..., l_L)``: Drop-and-Restore inside the forward pass, the same rule
        as :func:`~paddle_binbert.length_adaptive.length_adaptive_forward` (layer i's feed-forward
        block runs over the ``min(l_i, n_{i-1})`` tokens that received the most attention in it, [CLS]
        always kept, padding never kept over a real token; QA restores every position). A
        classifier's hidden state then holds the kept tokens only, ``[batch, n_L, hidden]``.
        """
        logits, hidden = self._checked_compute(
            input_ids, token_type_ids, attention_mask, length_config, want_hidden=True
        )
        assert hidden is not None
        return logits, hidden

    def check_length_config(self, length_config: Optional[Sequence[int]]) -> Optional[Tuple[int, ...]]:
        """A validated Drop-and-Restore length configuration (one non-increasing token budget per
        layer; see :mod:`paddle_binbert.length_adaptive.drop_restore`), or None.

        The token significance is the attention a token receives; the BWN baseline's packed
        attention (``sgn(softmax) = +1`` at every real key) computes no attention probabilities, so it
        refuses configurations.
        """
        if length_config is None:
            return None
        config = check_length_config(length_config, int(self.meta["num_layers"]))
        if self.meta["attention"] == "ones":
            raise ValueError(
                "length configurations need attention probabilities to rank tokens; this packed model's "
                "attention is all-ones (the BWN baseline, sgn(softmax) = +1), which computes none. "
                "Run the simulated student (paddle_binbert.load_model) with length_config instead"
            )
        return config

    def _compute(self, inputs: CheckedInputs, want_hidden: bool) -> Outputs:
        """The backend's forward pass on checked inputs: (head output, last hidden state, or None
        when not ``want_hidden``)."""
        raise NotImplementedError

    def _checked_compute(
        self,
        input_ids: Any,
        token_type_ids: Any,
        attention_mask: Any,
        length_config: Optional[Sequence[int]],
        want_hidden: bool,
    ) -> Outputs:
        config = self.check_length_config(length_config)
        ids, types, mask = self._prepare(input_ids, token_type_ids, attention_mask)
        return self._compute(CheckedInputs(ids, types, mask, config), want_hidden)

    def _prepare(self, input_ids: Any, token_type_ids: Any, attention_mask: Any) -> Tuple[np.ndarray, ...]:
        """Checked ``(ids, token types, additive key mask)`` arrays of one call."""
        ids = _as_int64(input_ids, "input_ids")
        if token_type_ids is None:
            types = np.zeros_like(ids)
        else:
            types = _as_int64(token_type_ids, "token_type_ids")
            if types.shape != ids.shape:
                raise ValueError(f"token_type_ids shape {types.shape} differs from input_ids {ids.shape}")
        m = self.meta
        for name, arr, size in (("input_ids", ids, m["vocab_size"]), ("token_type_ids", types, m["type_vocab_size"])):
            if arr.size and (arr.min() < 0 or arr.max() >= size):
                raise ValueError(f"{name} must lie in [0, {size}); got values in [{arr.min()}, {arr.max()}]")
        if ids.shape[1] > m["max_position_embeddings"]:
            raise ValueError(
                f"sequence length {ids.shape[1]} exceeds max_position_embeddings {m['max_position_embeddings']}"
            )
        return ids, types, self._additive_mask(ids, attention_mask)

    def _additive_mask(self, ids: np.ndarray, attention_mask: Any) -> np.ndarray:
        """PaddleNLP's additive key mask, computed with the same float32 operations."""
        if attention_mask is None:
            return (ids == self.meta["pad_token_id"]).astype(np.float32) * np.float32(-1e4)
        if hasattr(attention_mask, "numpy") and not isinstance(attention_mask, np.ndarray):
            attention_mask = attention_mask.numpy()
        mask = np.asarray(attention_mask)
        if mask.ndim == 1:
            mask = mask[None, :]
        if mask.shape != ids.shape:
            raise ValueError(
                f"attention_mask must be [batch, seq_len] = {list(ids.shape)} (1 = token, 0 = padding); "
                f"got {list(mask.shape)}"
            )
        return (np.float32(1.0) - mask.astype(np.float32)) * np.float32(-1e4)


class NativeRunnerBase(PackedRunnerBase):
    """A backend running the C++ forward pass ``binbert::bert_forward`` (the Paddle operator of
    :class:`PackedBertEngine`, or the ctypes library of :class:`paddle_binbert.runtime.RuntimeModel`):
    the instruction set, threads and profiling it runs with, and its per-stage profile.

    A subclass implements ``_load_kernels`` (load the kernels; return the best ISA code of this CPU
    as they report it, or None to ask the engine's operators), ``_load_weights``, ``_configure``
    (build the configuration from the ISA, threads and profiling flag), ``_read_raw_profile`` and
    ``_compute``.
    """

    backend = "native"

    def __init__(
        self,
        packed: PackedModel,
        num_threads: Optional[int] = None,
        isa: Union[None, int, str] = None,
        profile: bool = False,
    ):
        super().__init__(packed)
        best_isa = self._load_kernels()
        self.profiling = bool(profile)
        self.isa = resolve_isa(isa, best=best_isa)
        self.num_threads = resolve_threads(num_threads)
        self._load_weights()
        self._configure()

    @property
    def isa_name(self) -> str:
        """The instruction set the kernels run with (``avx512``, ``avx2`` or ``portable``)."""
        return ISA_NAMES[self.isa]

    def set_threads(self, num_threads: Optional[int]) -> None:
        """Change the number of threads (``None``: the CPUs this process may use)."""
        self.num_threads = resolve_threads(num_threads)
        self._configure()

    def set_profiling(self, enabled: bool = True) -> None:
        """Accumulate per-stage times in the kernels (read them with :meth:`read_profile`)."""
        self.profiling = bool(enabled)
        self._configure()

    def read_profile(self) -> Dict[str, float]:
        """Mean seconds per call of each stage since the last read (profiling must be on), then reset.

        Stages: embeddings + LayerNorm, activation packing, QKV GEMM, attention, out-proj GEMM,
        residual + LayerNorm, FFN1 GEMM, FFN2 GEMM, pooler + head, total; ``calls``: the number
        of calls averaged over; thread pool: seconds per call the calling thread waited for chunks
        held by helper threads, parallel jobs per call, and the share of chunks the helpers ran.
        """
        raw = self._read_raw_profile()
        n = len(PROFILE_STAGES)
        calls = max(int(raw[n]), 1)
        out = {name: float(v) / calls for name, v in zip(PROFILE_STAGES, raw[:n])}
        out["calls"] = int(raw[n])
        out["waiting for helper threads"] = float(raw[n + 1]) / calls
        out["parallel jobs"] = float(raw[n + 2]) / calls
        out["helper share of chunks"] = float(raw[n + 3]) / max(float(raw[n + 4]), 1.0)
        return out

    def _load_kernels(self) -> Optional[int]:
        """Load the kernels (building them if needed); the best ISA code they report, or None."""
        raise NotImplementedError

    def _load_weights(self) -> None:
        """Hand the packed tensors (:func:`~paddle_binbert.engine.layout.build_weight_list`) to the kernels."""
        raise NotImplementedError

    def _configure(self) -> None:
        """(Re)build the forward pass's configuration from the ISA, threads and profiling flag."""
        raise NotImplementedError

    def _read_raw_profile(self) -> np.ndarray:
        """The kernels' raw profile counters (stage seconds, calls, thread-pool counters), then reset."""
        raise NotImplementedError

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"{type(self).__name__}({m['architecture']}, preset={m['preset']!r}, layers={m['num_layers']}, "
            f"hidden={m['hidden_size']}, attention={m['attention']}, isa={self.isa_name}, threads={self.num_threads})"
        )


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
        out_dir: the folder (or an already loaded :class:`~paddle_binbert.export.PackedModel`).
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
