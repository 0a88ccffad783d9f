"""A packed 1-bit BERT run by the runtime's shared library (ctypes; numpy in, numpy out).

:func:`load` reads and validates a packed folder with :func:`paddle_binbert.format.packed.load_packed`
(the same reader and checks as ``paddle_binbert.engine.load``), lays the tensors out as the C++ forward
pass takes them (:mod:`paddle_binbert.engine.layout`, shared with the Paddle engine) and returns a
:class:`RuntimeModel`, whose call convention, input checks, threads, ISA and profiling are the engine's
(:class:`~paddle_binbert.engine.base.NativeRunnerBase`):
``model(input_ids, token_type_ids=None, attention_mask=None, length_config=None)`` returns
``[batch, num_labels]`` float32 logits, or ``(start_logits, end_logits)`` for question answering.
"""

from __future__ import annotations

import ctypes
import weakref
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..engine.base import CheckedInputs, NativeRunnerBase, Outputs
from ..engine.layout import GELU_SIGN_THRESHOLD, build_config, build_weight_list
from ..format.packed import PackedModel, load_packed
from .library import load_library

__all__ = ["RuntimeModel", "load"]

_DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.int64): 1, np.dtype(np.int32): 2}
_ERR_CAP = 2048


class RuntimeModel(NativeRunnerBase):
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
    Equal to the Paddle engine's outputs (the same C++ forward pass and kernels). Threads, ISA and
    profiling (:meth:`set_threads`, :attr:`isa_name`, :meth:`set_profiling`, :meth:`read_profile`) as
    :class:`paddle_binbert.engine.PackedBertEngine`.
    """

    backend = "runtime"

    @property
    def config(self) -> Dict[str, Any]:
        """The packed folder's ``config.json`` as a dict (the engine returns a PaddleNLP
        ``BertConfig``; the runtime does not import PaddleNLP)."""
        return self.packed.config

    # ------------------------------------------------------------------ internals
    def _load_kernels(self) -> Optional[int]:
        self._lib = load_library()
        return int(self._lib.bb_best_isa())

    def _load_weights(self) -> None:
        self._weights: List[np.ndarray] = build_weight_list(self.meta, self.packed.tensors)
        self._handle = self._create_handle(self._weights)
        self._finalizer = weakref.finalize(self, self._lib.bbrt_model_free, self._handle)

    def _configure(self) -> None:
        icfg, fcfg = build_config(self.meta, self.isa, self.num_threads, self.profiling, GELU_SIGN_THRESHOLD)
        self._icfg = icfg
        self._fcfg = np.asarray(fcfg, dtype=np.float32)

    def _read_raw_profile(self) -> np.ndarray:
        raw = np.zeros(int(self._lib.bbrt_profile_size()), dtype=np.float64)
        if self._lib.bbrt_profile_read(raw.ctypes.data, raw.size) != 0:
            raise RuntimeError("bbrt_profile_read: buffer too small")
        return raw

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

    def _compute(self, inputs: CheckedInputs, want_hidden: bool) -> Outputs:
        ids = np.ascontiguousarray(inputs.ids, dtype=np.int64)
        types = np.ascontiguousarray(inputs.types, dtype=np.int64)
        mask = np.ascontiguousarray(inputs.mask, dtype=np.float32)
        config = inputs.length_config
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


def load(
    path: Union[str, Path, PackedModel],
    num_threads: Optional[int] = None,
    isa: Union[None, int, str] = None,
    profile: bool = False,
) -> RuntimeModel:
    """Load a packed folder (written by :func:`paddle_binbert.export.pack_model`) into a callable model.

    Args:
        path: the folder, or an already loaded :class:`~paddle_binbert.format.packed.PackedModel`.
        num_threads: threads of the kernels (default: the CPUs this process may use).
        isa: ``"avx512"``, ``"avx2"``, ``"portable"`` or None (``$PADDLE_BINBERT_ISA``, else the best).
        profile: accumulate per-stage times (:meth:`RuntimeModel.read_profile`).

    Raises :class:`~paddle_binbert.format.packed.PackedFormatError` for a missing, truncated, corrupted or
    inconsistent folder (the same checks and messages as ``engine.load``), and
    :class:`~paddle_binbert.runtime.RuntimeUnavailableError` when the library cannot be built
    (no C++ compiler, not Linux x86-64).
    """
    packed = path if isinstance(path, PackedModel) else load_packed(path)
    return RuntimeModel(packed, num_threads=num_threads, isa=isa, profile=profile)
