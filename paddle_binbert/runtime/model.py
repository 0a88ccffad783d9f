"""A packed 1-bit BERT run by the runtime's shared library (ctypes; numpy in, numpy out).

:func:`load` reads and validates a packed folder with :func:`paddle_binbert.export.load_packed` (the
same reader and checks as ``paddle_binbert.engine.load``), lays the tensors out as the C++ forward
pass takes them (:mod:`paddle_binbert.engine.layout`, shared with the Paddle engine) and returns a
:class:`RuntimeModel`, whose call convention is the engine's (:class:`~paddle_binbert.engine.runner.PackedRunnerBase`):
``model(input_ids, token_type_ids=None, attention_mask=None, length_config=None)`` returns
``[batch, num_labels]`` float32 logits, or ``(start_logits, end_logits)`` for question answering.
"""

from __future__ import annotations

import ctypes
import weakref
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..engine.layout import GELU_SIGN_THRESHOLD, build_config, build_weight_list
from ..engine.ops import ISA_NAMES, resolve_isa, resolve_threads
from ..engine.runner import PROFILE_STAGES, PackedRunnerBase
from ..export.pack import PackedModel, load_packed
from .library import load_library

__all__ = ["RuntimeModel", "load"]

_DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.int64): 1, np.dtype(np.int32): 2}
_ERR_CAP = 2048


class RuntimeModel(PackedRunnerBase):
    """A packed binary BERT on the runtime library. Build with :func:`load`.

    Call ``model(input_ids, token_type_ids=None, attention_mask=None, length_config=None)``:

    - ``input_ids`` ``[batch, seq_len]`` integers (numpy or nested lists; 1-D means batch 1);
    - ``token_type_ids`` defaults to zeros;
    - ``attention_mask`` ``[batch, seq_len]``, 1 for tokens and 0 for padding; ``None`` masks the keys
      equal to ``pad_token_id`` (as PaddleNLP's ``BertModel``);
    - ``length_config``: one non-increasing token budget per layer (Drop-and-Restore inside the
      kernels, as ``engine.load(...)(..., length_config=...)``).

    Returns numpy float32 logits ``[batch, num_labels]``, or ``(start_logits, end_logits)`` each
    ``[batch, seq_len]`` for question answering; :meth:`forward` also returns the last hidden state.
    Equal to the Paddle engine's outputs (the same C++ forward pass and kernels).
    """

    backend = "runtime"

    def __init__(
        self,
        packed: PackedModel,
        num_threads: Optional[int] = None,
        isa: Union[None, int, str] = None,
        profile: bool = False,
    ) -> None:
        super().__init__(packed)
        self._lib = load_library()
        self.isa = resolve_isa(isa, best=self._lib.bb_best_isa())
        self.num_threads = resolve_threads(num_threads)
        self.profiling = bool(profile)
        self._weights: List[np.ndarray] = build_weight_list(self.meta, packed.tensors)
        self._handle = self._create_handle(self._weights)
        self._finalizer = weakref.finalize(self, self._lib.bbrt_model_free, self._handle)
        self._set_config()

    # ------------------------------------------------------------------ public
    @property
    def config(self) -> Dict[str, Any]:
        """The packed folder's ``config.json`` as a dict (the engine returns a PaddleNLP
        ``BertConfig``; the runtime does not import PaddleNLP)."""
        return self.packed.config

    @property
    def isa_name(self) -> str:
        """The instruction set the kernels run with (``avx512``, ``avx2`` or ``portable``)."""
        return ISA_NAMES[self.isa]

    def set_threads(self, num_threads: Optional[int]) -> None:
        """Change the number of threads (``None``: the CPUs this process may use)."""
        self.num_threads = resolve_threads(num_threads)
        self._set_config()

    def set_profiling(self, enabled: bool = True) -> None:
        """Accumulate per-stage times in the library (read them with :meth:`read_profile`)."""
        self.profiling = bool(enabled)
        self._set_config()

    def read_profile(self) -> Dict[str, float]:
        """Mean seconds per call of each stage since the last read, then reset (as
        :meth:`paddle_binbert.engine.PackedBertEngine.read_profile`)."""
        raw = np.zeros(int(self._lib.bbrt_profile_size()), dtype=np.float64)
        if self._lib.bbrt_profile_read(raw.ctypes.data, raw.size) != 0:
            raise RuntimeError("bbrt_profile_read: buffer too small")
        n = len(PROFILE_STAGES)
        calls = max(int(raw[n]), 1)
        out = {name: float(v) / calls for name, v in zip(PROFILE_STAGES, raw[:n])}
        out["calls"] = int(raw[n])
        out["waiting for helper threads"] = float(raw[n + 1]) / calls
        out["parallel jobs"] = float(raw[n + 2]) / calls
        out["helper share of chunks"] = float(raw[n + 3]) / max(float(raw[n + 4]), 1.0)
        return out

    def __call__(
        self,
        input_ids: Any,
        token_type_ids: Any = None,
        attention_mask: Any = None,
        length_config: Optional[Sequence[int]] = None,
    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        logits, _ = self._run(input_ids, token_type_ids, attention_mask, length_config, want_hidden=False)
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
        """(head output, last hidden state ``[batch, seq_len, hidden]``), as
        :meth:`paddle_binbert.engine.PackedBertEngine.forward` (a classifier's hidden state holds
        the kept tokens only under a length configuration)."""
        logits, hidden = self._run(input_ids, token_type_ids, attention_mask, length_config, want_hidden=True)
        assert hidden is not None
        return logits, hidden

    # ------------------------------------------------------------------ internals
    def _set_config(self) -> None:
        icfg, fcfg = build_config(self.meta, self.isa, self.num_threads, self.profiling, GELU_SIGN_THRESHOLD)
        self._icfg = icfg
        self._fcfg = np.asarray(fcfg, dtype=np.float32)

    def _create_handle(self, weights: List[np.ndarray]) -> int:
        n = len(weights)
        data = np.zeros(n, dtype=np.uintp)
        numel = np.zeros(n, dtype=np.int64)
        ndim = np.zeros(n, dtype=np.int32)
        dims = np.zeros((n, 3), dtype=np.int64)
        dtype = np.zeros(n, dtype=np.int32)
        for i, arr in enumerate(weights):
            if not arr.flags.c_contiguous:
                raise ValueError(f"weight {i} is not C-contiguous")
            code = _DTYPE_CODES.get(arr.dtype)
            if code is None:
                raise TypeError(f"weight {i} has dtype {arr.dtype}; the runtime takes float32, int64 and int32")
            data[i] = arr.ctypes.data
            numel[i] = arr.size
            ndim[i] = arr.ndim
            dims[i, : min(arr.ndim, 3)] = arr.shape[:3]
            dtype[i] = code
        err = ctypes.create_string_buffer(_ERR_CAP)
        handle = self._lib.bbrt_model_create(
            n, data.ctypes.data, numel.ctypes.data, ndim.ctypes.data, dims.ctypes.data, dtype.ctypes.data, err, _ERR_CAP
        )
        if not handle:
            raise RuntimeError(err.value.decode("utf-8", "replace"))
        return handle

    def _run(
        self,
        input_ids: Any,
        token_type_ids: Any,
        attention_mask: Any,
        length_config: Optional[Sequence[int]],
        want_hidden: bool,
    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        config = self.check_length_config(length_config)
        ids, types, mask = self._prepare(input_ids, token_type_ids, attention_mask)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        types = np.ascontiguousarray(types, dtype=np.int64)
        mask = np.ascontiguousarray(mask, dtype=np.float32)
        batch, seq_len = ids.shape
        hidden_size, classes = int(self.meta["hidden_size"]), int(self.meta["num_labels"])
        qa = self.task == "question_answering"
        logits = np.empty((batch, seq_len, classes) if qa else (batch, classes), dtype=np.float32)
        hidden = np.empty((batch, seq_len, hidden_size), dtype=np.float32) if want_hidden else None
        icfg = np.asarray(self._icfg if config is None else self._icfg + list(config), dtype=np.int32)
        shape = np.zeros(4, dtype=np.int64)
        err = ctypes.create_string_buffer(_ERR_CAP)
        status = self._lib.bbrt_forward(
            self._handle,
            ids.ctypes.data,
            types.ctypes.data,
            mask.ctypes.data,
            batch,
            seq_len,
            icfg.ctypes.data,
            icfg.size,
            self._fcfg.ctypes.data,
            self._fcfg.size,
            logits.ctypes.data,
            logits.size,
            None if hidden is None else hidden.ctypes.data,
            0 if hidden is None else hidden.size,
            shape.ctypes.data,
            err,
            _ERR_CAP,
        )
        if status != 0:
            raise RuntimeError(err.value.decode("utf-8", "replace"))
        if hidden is not None and int(shape[2]) != seq_len:  # a classifier under a length configuration
            hidden = np.ascontiguousarray(hidden.reshape(-1)[: batch * int(shape[2]) * hidden_size]).reshape(
                batch, int(shape[2]), hidden_size
            )
        return logits, hidden

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"RuntimeModel({m['architecture']}, preset={m['preset']!r}, layers={m['num_layers']}, "
            f"hidden={m['hidden_size']}, attention={m['attention']}, isa={self.isa_name}, threads={self.num_threads})"
        )


def load(
    path: Union[str, Path, PackedModel],
    num_threads: Optional[int] = None,
    isa: Union[None, int, str] = None,
    profile: bool = False,
) -> RuntimeModel:
    """Load a packed folder (written by :func:`paddle_binbert.export.pack_model`) into a callable model.

    Args:
        path: the folder, or an already loaded :class:`~paddle_binbert.export.PackedModel`.
        num_threads: threads of the kernels (default: the CPUs this process may use).
        isa: ``"avx512"``, ``"avx2"``, ``"portable"`` or None (``$PADDLE_BINBERT_ISA``, else the best).
        profile: accumulate per-stage times (:meth:`RuntimeModel.read_profile`).

    Raises :class:`~paddle_binbert.export.PackedFormatError` for a missing, truncated, corrupted or
    inconsistent folder (the same checks and messages as ``engine.load``), and
    :class:`~paddle_binbert.runtime.RuntimeUnavailableError` when the library cannot be built
    (no C++ compiler, not Linux x86-64).
    """
    packed = path if isinstance(path, PackedModel) else load_packed(path)
    return RuntimeModel(packed, num_threads=num_threads, isa=isa, profile=profile)
