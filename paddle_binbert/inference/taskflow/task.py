"""The base of the Taskflow tasks and the option checks they share (numpy only, no Paddle).

A task turns its inputs into padded batches, runs a loaded model on them and turns the model's
outputs into Taskflow's result dicts. It does not load anything: it is given

* ``forward(input_ids, token_type_ids, attention_mask)``: int64 numpy arrays ``[batch, seq_len]`` in,
  numpy logits out (``[batch, num_labels]``, or ``(start_logits, end_logits)`` ``[batch, seq_len]``);
  :class:`paddle_binbert.inference.predictor.Predictor` or a :class:`paddle_binbert.runtime` model;
* the tokenizer (PaddleNLP's ``BertTokenizer`` or :class:`paddle_binbert.runtime.WordPieceTokenizer`).

The tasks (one class each, as in ``paddlenlp.taskflow``) are
:class:`~paddle_binbert.inference.taskflow.text_classification.TextClassificationTask` and
:class:`~paddle_binbert.inference.taskflow.question_answering.QuestionAnsweringTask`; the front ends
that load a model and build one are :class:`paddle_binbert.Taskflow` (Paddle) and
:class:`paddle_binbert.runtime.Predictor` (packed models, no Paddle).
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "INT_OPTIONS",
    "ForwardFn",
    "Task",
    "cap_max_length",
    "check_options",
    "check_sizes",
    "int_option",
    "pad_encodings",
]

#: ``forward(input_ids, token_type_ids, attention_mask)`` on int64 numpy arrays -> numpy outputs
ForwardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], Any]

#: integer options and their smallest accepted value
INT_OPTIONS: Dict[str, int] = {
    "batch_size": 1,
    "max_length": 4,
    "top_k": 1,
    "doc_stride": 1,
    "max_query_length": 1,
    "n_best_size": 1,
    "max_answer_length": 1,
}


# ------------------------------------------------------------------------------ options
def int_option(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; a ValueError naming the option otherwise (NaN, inf, 2.5,
    strings, booleans, values below ``minimum``). Integral floats such as ``128.0`` are accepted."""
    expected = f"{name} must be an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{expected}, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral):
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise ValueError(f"{expected}, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{expected}, got {value!r}")
    return number


def check_sizes(batch_size: Any, max_length: Any) -> Tuple[int, int]:
    """``batch_size`` (>= 1) and ``max_length`` (>= 4) checked by :func:`int_option`."""
    return (
        int_option("batch_size", batch_size, INT_OPTIONS["batch_size"]),
        int_option("max_length", max_length, INT_OPTIONS["max_length"]),
    )


def check_options(owner: str, allowed: Sequence[str], options: Mapping[str, Any]) -> Dict[str, Any]:
    """``options`` restricted to the names ``allowed``, their integer ones (:data:`INT_OPTIONS`)
    checked by :func:`int_option` when not None.

    Raises ``TypeError("<owner> got unknown option(s) [...]; valid options: [...]")`` for another name.
    """
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{owner} got unknown option(s) {unknown}; valid options: {list(allowed)}")
    return {
        name: int_option(name, value, INT_OPTIONS[name]) if name in INT_OPTIONS and value is not None else value
        for name, value in options.items()
    }


def cap_max_length(max_length: int, max_positions: Optional[int], logger: logging.Logger) -> int:
    """``max_length``, capped (with a warning) at the model's ``max_positions`` when given."""
    if max_positions and max_length > max_positions:
        logger.warning(
            "max_length=%d exceeds the model's %d positions; using %d", max_length, max_positions, max_positions
        )
        return int(max_positions)
    return int(max_length)


def pad_encodings(encoded: Sequence[Mapping[str, Sequence[int]]], pad_token_id: int) -> Dict[str, np.ndarray]:
    """Tokenizer encodings (``input_ids``, ``token_type_ids``) as a right-padded int64 batch with its
    ``attention_mask`` (1 = token, 0 = padding)."""
    length = max(len(e["input_ids"]) for e in encoded)
    ids = np.full((len(encoded), length), pad_token_id, dtype=np.int64)
    types = np.zeros((len(encoded), length), dtype=np.int64)
    mask = np.zeros((len(encoded), length), dtype=np.int64)
    for row, e in enumerate(encoded):
        n = len(e["input_ids"])
        ids[row, :n] = e["input_ids"]
        types[row, :n] = e["token_type_ids"]
        mask[row, :n] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


# ------------------------------------------------------------------------------ the base class
class Task:
    """One Taskflow task on a loaded model: inputs -> batches -> ``forward`` -> result dicts.

    Args:
        forward: the model (see the module docstring).
        tokenizer: the model's tokenizer (``pad_token_id``; what the task's encoding needs).
        batch_size: inputs (classification) or windows (QA) per ``forward`` call.
        max_length: longest input in tokens, special tokens included (already capped at the model's
            positions by the front end).

    Subclasses set :attr:`name` (the Taskflow task name) and :attr:`options` (their keyword
    options, checked by :func:`check_options` in :meth:`check`) and implement ``__call__``.
    """

    name: ClassVar[str] = ""
    options: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, forward: ForwardFn, tokenizer: Any, batch_size: int, max_length: int) -> None:
        self.forward = forward
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)

    @classmethod
    def check(cls, owner: str, options: Mapping[str, Any], extra: Sequence[str] = ()) -> Dict[str, Any]:
        """The task's ``options`` (plus the names ``extra``, e.g. a front end's loading options) checked
        by :func:`check_options`; ``owner`` names the caller in the error."""
        return check_options(owner, tuple(extra) + cls.options, options)

    def run(self, arrays: Mapping[str, np.ndarray]) -> Any:
        """``forward`` on a padded batch (``input_ids``, ``token_type_ids``, ``attention_mask``)."""
        return self.forward(arrays["input_ids"], arrays["token_type_ids"], arrays["attention_mask"])

    def __call__(self, inputs: Any) -> List[Dict[str, Any]]:
        """One result dict per input (see the subclass)."""
        raise NotImplementedError
