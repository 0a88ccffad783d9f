"""What every backend of a packed 1-bit BERT shares: the call convention, input checks and profile.

:class:`PackedRunnerBase` holds the validated packed model and turns a call
``model(input_ids, token_type_ids=None, attention_mask=None, length_config=None)`` into checked
arrays (:class:`CheckedInputs`) for the backend's forward pass; :class:`NativeRunnerBase` adds the
instruction set, threads and per-stage profile of the C++ forward pass ``binbert::bert_forward``.
The backends: :class:`paddle_binbert.engine.PackedBertEngine` (Paddle custom operator),
:class:`paddle_binbert.engine.SimulatedBertEngine` (Paddle float32 operators) and
:class:`paddle_binbert.runtime.RuntimeModel` (ctypes library, no Paddle). Paddle-free: numpy and
the engine's build settings (:mod:`.ops`) only.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ..format.packed import PackedModel
from .layout import check_length_config
from .ops import ISA_NAMES, resolve_isa, resolve_threads

__all__ = [
    "PROFILE_STAGES",
    "CheckedInputs",
    "NativeRunnerBase",
    "Outputs",
    "PackedRunnerBase",
]

#: the stages of :meth:`NativeRunnerBase.read_profile`, in the order of the kernels' profile counters
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
