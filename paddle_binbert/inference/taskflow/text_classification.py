"""Taskflow's ``text_classification`` task (numpy only, no Paddle).

"a text", ("text", "pair") or a list of them
-> [{"text": input, "predictions": [{"label": ..., "score": ...}, ...]}, ...]
   ({"text": input, "score": value} for a regression model, ``num_labels == 1``)
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .task import ForwardFn, Task, pad_encodings

__all__ = ["EncodeFn", "TextClassificationTask", "TextItem", "read_id2label", "softmax", "split_item", "text_items"]

TextItem = Union[str, Tuple[str, str], List[str]]
#: ``encode(pairs)``: tokenizer encodings (``input_ids``, ``token_type_ids``) of ``(text, pair or None)``
EncodeFn = Callable[[Sequence[Tuple[str, Optional[str]]]], List[Mapping[str, Sequence[int]]]]


def read_id2label(
    mapping: Optional[Mapping[Any, Any]], folder: Union[str, os.PathLike], fallback: Any, num_labels: int
) -> Dict[int, Any]:
    """Label names ``{0: ..., num_labels - 1: ...}``: from ``mapping`` (the ``id2label`` option), else
    ``folder/id2label.json`` (as PaddleNLP reads it), else ``fallback`` (the config's ``id2label``);
    ``LABEL_i`` for an index none of them names."""
    if mapping is None:
        path = os.path.join(folder, "id2label.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                mapping = json.load(handle)
    if mapping is None:
        mapping = fallback or {}
    labels = {int(k): v for k, v in dict(mapping).items()}
    return {i: labels.get(i, f"LABEL_{i}") for i in range(num_labels)}


def softmax(row: np.ndarray) -> np.ndarray:
    """Softmax of one row of logits, in float64: ``exp(x_i - max x) / sum_j exp(x_j - max x)``."""
    row = row.astype("float64")
    exp = np.exp(row - row.max())
    return exp / exp.sum()


def text_items(inputs: Any) -> List[TextItem]:
    """Classification inputs as a list: a text or a ``(text, text_pair)`` tuple is one item, a list is
    a batch (of texts and / or pairs)."""
    if isinstance(inputs, str) or (isinstance(inputs, tuple) and len(inputs) == 2):
        return [inputs]
    if isinstance(inputs, list):
        return list(inputs)
    raise TypeError(
        f"text_classification expects a text, a (text, text_pair) tuple or a list; got {type(inputs).__name__}"
    )


def split_item(item: Any, index: int) -> Tuple[str, Optional[str]]:
    """``(text, text_pair or None)`` of the classification input number ``index``."""
    if isinstance(item, str):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
        return item[0], item[1]
    raise TypeError(f"input {index}: expected a string or a pair of strings, got {item!r:.80}")


class TextClassificationTask(Task):
    """Single texts and text pairs -> labels with softmax scores (or a regression score).

    Args:
        forward, tokenizer, batch_size, max_length: see :class:`~.task.Task`.
        encode: ``encode(pairs)`` (:data:`EncodeFn`), at most ``max_length`` tokens per pair.
        num_labels: the classifier's outputs (1: regression, e.g. STS-B).
        id2label: label names by index (see :func:`read_id2label`).
        top_k: labels returned per input, best first (default 1).
    """

    name = "text_classification"
    options = ("top_k", "id2label")

    def __init__(
        self,
        forward: ForwardFn,
        tokenizer: Any,
        batch_size: int,
        max_length: int,
        encode: EncodeFn,
        num_labels: int,
        id2label: Mapping[int, Any],
        top_k: Optional[int] = None,
    ) -> None:
        super().__init__(forward, tokenizer, batch_size, max_length)
        self.encode = encode
        self.num_labels = int(num_labels)
        self.id2label = dict(id2label)
        self.top_k = top_k or 1

    def __call__(self, inputs: Any) -> List[Dict[str, Any]]:
        """Classify a text, a text pair (a tuple of two strings), or a list of texts and / or pairs
        (pairs inside a list may be tuples or two-element lists; a top-level list of strings is a
        batch of single texts, as in PaddleNLP).

        Returns ``{"text": input, "predictions": [{"label", "score"}, ...]}`` per input (softmax
        scores, best first, ``top_k`` of them), or ``{"text": input, "score": value}`` for a
        regression model (``num_labels == 1``).
        """
        items = text_items(inputs)
        pairs = [split_item(item, i) for i, item in enumerate(items)]
        results: List[Dict[str, Any]] = []
        for start in range(0, len(pairs), self.batch_size):
            encoded = self.encode(pairs[start : start + self.batch_size])
            logits = self.run(pad_encodings(encoded, self.tokenizer.pad_token_id))
            logits = np.asarray(logits).reshape(-1, self.num_labels)
            for item, row in zip(items[start : start + self.batch_size], logits):
                if self.num_labels == 1:
                    results.append({"text": item, "score": float(row[0])})
                    continue
                probs = softmax(row)
                order = np.argsort(-probs, kind="stable")[: self.top_k]
                preds = [{"label": self.id2label[int(i)], "score": float(probs[i])} for i in order]
                results.append({"text": item, "predictions": preds})
        return results
