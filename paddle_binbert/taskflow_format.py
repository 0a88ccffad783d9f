"""Taskflow's inputs, options, batching and outputs, shared by :class:`paddle_binbert.Taskflow`
(PaddleNLP / packed models) and :class:`paddle_binbert.runtime.Predictor` (packed models, no Paddle).

Paddle-free (numpy; question answering uses :mod:`paddle_binbert.data.squad`, plain Python / numpy).
:class:`TaskPipeline` turns inputs into batches and model outputs into Taskflow's results::

    text_classification   "a text", ("text", "pair") or a list of them
                          -> [{"text": input, "predictions": [{"label": ..., "score": ...}, ...]}, ...]
                             ({"text": input, "score": value} for a regression model)
    question_answering    {"question": ..., "context": ...} or a list of them
                          -> [{"answer": ..., "score": ..., "start": ..., "end": ...}, ...]

A subclass loads the model and tokenizer, sets the attributes and implements the three model hooks
(``_encode_pairs``, ``_classification_logits``, ``_span_logits``).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "INT_OPTIONS",
    "TASK_OPTIONS",
    "TaskPipeline",
    "TextItem",
    "cap_max_length",
    "check_options",
    "check_sizes",
    "int_option",
    "locate_answer",
    "pad_encodings",
    "qa_items",
    "read_id2label",
    "softmax",
    "split_item",
    "text_items",
]

#: the options of each task (besides batch_size and max_length)
TASK_OPTIONS: Dict[str, Tuple[str, ...]] = {
    "text_classification": ("top_k", "id2label"),
    "question_answering": ("doc_stride", "max_query_length", "n_best_size", "max_answer_length"),
}

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

TextItem = Union[str, Tuple[str, str], List[str]]
#: one QA window: (the feature, its start logits, its end logits)
Window = Tuple[Any, np.ndarray, np.ndarray]


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


def check_options(owner: str, task: str, options: Mapping[str, Any], extra: Sequence[str] = ()) -> Dict[str, Any]:
    """The ``options`` of ``task`` (:data:`TASK_OPTIONS`, plus the names ``extra``), their integer ones
    (:data:`INT_OPTIONS`) checked by :func:`int_option` when not None.

    Raises ``TypeError("<owner> got unknown option(s) [...]; valid options: [...]")`` for another name.
    """
    allowed = tuple(extra) + TASK_OPTIONS[task]
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


# ------------------------------------------------------------------------------ classification
def softmax(row: np.ndarray) -> np.ndarray:
    """Softmax of one row of logits, in float64."""
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


# ------------------------------------------------------------------------------ question answering
def qa_items(inputs: Any) -> List[Dict[str, str]]:
    """QA inputs as a list of ``{"question", "context"}`` dicts (one dict is one item)."""
    items = [inputs] if isinstance(inputs, dict) else inputs
    if not isinstance(items, list):
        raise TypeError(
            f"question_answering expects a {{'question', 'context'}} dict or a list of them; got "
            f"{type(inputs).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("question", "context")):
            raise TypeError(f"input {i}: expected a dict with string 'question' and 'context', got {item!r:.80}")
    return items


def locate_answer(context: str, best: Mapping[str, Any], windows: Sequence[Window]) -> Tuple[int, int]:
    """Character span of the best answer of ``postprocess_predictions``.

    Uses its ``start`` / ``end`` when it reports them; otherwise finds the window positions whose
    start / end logits are exactly the answer's and whose span is the answer's text.
    """
    if "start" in best and "end" in best:
        return int(best["start"]), int(best["end"])
    text = best["text"]
    for feature, start_row, end_row in windows:
        offsets = feature.offset_mapping
        starts = [i for i, span in enumerate(offsets) if span is not None and start_row[i] == best["start_logit"]]
        ends = [i for i, span in enumerate(offsets) if span is not None and end_row[i] == best["end_logit"]]
        for s in starts:
            for e in ends:
                a, b = offsets[s][0], offsets[e][1]
                if e >= s and context[a:b] == text:
                    return a, b
    found = context.find(text)  # not reached in practice: the span above always exists
    return (found, found + len(text)) if found >= 0 else (0, 0)


# ------------------------------------------------------------------------------ the pipeline
class TaskPipeline:
    """Taskflow's call: inputs -> batches -> model -> results, for ``text_classification`` and
    ``question_answering``.

    A subclass sets ``task``, ``batch_size``, ``max_length`` and ``tokenizer`` (with
    ``pad_token_id``; for QA also what :func:`~paddle_binbert.data.squad.prepare_eval_features` needs),
    for classification ``num_labels`` and ``id2label``, calls :meth:`_set_task_options`, and implements
    ``_encode_pairs`` (classification), ``_classification_logits`` and ``_span_logits``.
    """

    task: str
    batch_size: int
    max_length: int
    tokenizer: Any
    num_labels: int
    id2label: Dict[int, Any]
    top_k: int
    doc_stride: int
    max_query_length: int
    n_best_size: int
    max_answer_length: int

    def __call__(self, inputs: Any) -> List[Dict[str, Any]]:
        """Run the task on one input or a list of inputs; returns one result dict per input.

        ``text_classification``: a text, a text pair (a tuple of two strings), or a list of texts
        and/or pairs (pairs inside a list may be tuples or two-element lists; a top-level list of
        strings is a batch of single texts, as in PaddleNLP). Results are
        ``{"text": input, "predictions": [{"label", "score"}, ...]}`` (softmax scores, best first,
        ``top_k`` of them), or ``{"text": input, "score": value}`` for a regression model
        (``num_labels == 1``, e.g. STS-B).

        ``question_answering``: ``{"question": ..., "context": ...}`` or a list of them. Results are
        ``{"answer", "score", "start", "end"}`` with ``answer == context[start:end]`` (character
        offsets) and ``score`` the answer's probability among the n-best spans (0.0 and an empty
        answer when the context has no token).
        """
        if self.task == "text_classification":
            return self._classify(inputs)
        return self._answer(inputs)

    def _set_task_options(self, options: Mapping[str, Any]) -> None:
        """The task's options (checked by :func:`check_options`) or their defaults: ``top_k`` 1;
        QA ``max_query_length`` ``min(64, max_length // 2)``, ``doc_stride`` ``max_length // 3``,
        ``n_best_size`` 20, ``max_answer_length`` 30."""
        if self.task == "text_classification":
            self.top_k = options.get("top_k") or 1
        else:
            self.max_query_length = options.get("max_query_length") or min(64, self.max_length // 2)
            self.doc_stride = options.get("doc_stride") or max(1, self.max_length // 3)
            self.n_best_size = options.get("n_best_size") or 20
            self.max_answer_length = options.get("max_answer_length") or 30

    # ------------------------------------------------------------------ model hooks
    def _encode_pairs(self, pairs: Sequence[Tuple[str, Optional[str]]]) -> List[Mapping[str, Sequence[int]]]:
        """Tokenizer encodings (``input_ids``, ``token_type_ids``, at most ``max_length`` tokens) of
        ``(text, text_pair or None)`` pairs."""
        raise NotImplementedError

    def _classification_logits(self, arrays: Dict[str, np.ndarray]) -> Any:
        """The model's ``[batch, num_labels]`` logits of a padded batch (:func:`pad_encodings`)."""
        raise NotImplementedError

    def _span_logits(self, arrays: Dict[str, np.ndarray]) -> Tuple[Any, Any]:
        """The model's ``(start_logits, end_logits)``, each ``[batch, seq_len]``, of a batch of windows."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the tasks
    def _classify(self, inputs: Any) -> List[Dict[str, Any]]:
        items = text_items(inputs)
        pairs = [split_item(item, i) for i, item in enumerate(items)]
        results: List[Dict[str, Any]] = []
        for start in range(0, len(pairs), self.batch_size):
            encoded = self._encode_pairs(pairs[start : start + self.batch_size])
            logits = self._classification_logits(pad_encodings(encoded, self.tokenizer.pad_token_id))
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

    def _answer(self, inputs: Any) -> List[Dict[str, Any]]:
        from .data.squad import SquadExample, collate_features, postprocess_predictions, prepare_eval_features

        items = qa_items(inputs)
        examples = [
            SquadExample(id=str(i), question=it["question"], context=it["context"]) for i, it in enumerate(items)
        ]
        features = prepare_eval_features(
            examples,
            self.tokenizer,
            max_seq_length=self.max_length,
            doc_stride=self.doc_stride,
            max_query_length=self.max_query_length,
        )
        start_rows: List[np.ndarray] = []
        end_rows: List[np.ndarray] = []
        for begin in range(0, len(features), self.batch_size):
            chunk = features[begin : begin + self.batch_size]
            starts, ends = self._span_logits(collate_features(chunk, pad_token_id=self.tokenizer.pad_token_id))
            starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
            for row, feature in enumerate(chunk):
                n = len(feature.input_ids)
                start_rows.append(starts[row, :n])
                end_rows.append(ends[row, :n])
        _, nbest = postprocess_predictions(
            examples,
            features,
            start_rows,
            end_rows,
            n_best_size=self.n_best_size,
            max_answer_length=self.max_answer_length,
        )
        by_example: Dict[str, List[Window]] = {}
        for feature, s_row, e_row in zip(features, start_rows, end_rows):
            by_example.setdefault(feature.example_id, []).append((feature, s_row, e_row))
        results: List[Dict[str, Any]] = []
        for example in examples:
            best = nbest[example.id][0]
            if not best["text"]:
                results.append({"answer": "", "score": 0.0, "start": 0, "end": 0})
                continue
            start, end = locate_answer(example.context, best, by_example.get(example.id, []))
            results.append(
                {"answer": example.context[start:end], "score": float(best["probability"]), "start": start, "end": end}
            )
        return results
