"""``Predictor``: text in, predictions out, for packed folders, without Paddle.

The output format is :class:`paddle_binbert.Taskflow`'s::

    from paddle_binbert.runtime import Predictor

    cls = Predictor("sst2_bibert_packed", batch_size=32, max_length=128)
    cls(["a gripping, funny film", ("a premise", "a hypothesis")])
    # [{"text": "a gripping, funny film", "predictions": [{"label": "1", "score": 0.93}]}, ...]

    qa = Predictor("squad_bibert_packed", max_length=384)
    qa({"question": "Who wrote it?", "context": "It was written by Ann Lee in 1990."})
    # [{"answer": "Ann Lee", "score": 0.81, "start": 18, "end": 25}]

The task follows from the packed model (classification or question answering). Tokenization is
:class:`~paddle_binbert.runtime.WordPieceTokenizer` (the ids of PaddleNLP's ``BertTokenizer``);
question answering reuses the SQuAD windowing and post-processing of
:mod:`paddle_binbert.data.squad` (plain Python / numpy). Tested equal to ``Taskflow`` on the same
packed folder (``tests/runtime/test_predictor.py``).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .model import RuntimeModel, load
from .tokenizer import WordPieceTokenizer

__all__ = ["Predictor"]

logger = logging.getLogger("paddle_binbert.runtime")

_CLS_OPTIONS = ("top_k", "id2label")
_QA_OPTIONS = ("doc_stride", "max_query_length", "n_best_size", "max_answer_length")


def _int_option(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (integral floats accepted); ValueError naming the option."""
    expected = f"{name} must be an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{expected}, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral) and not (math.isfinite(float(value)) and float(value).is_integer()):
        raise ValueError(f"{expected}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{expected}, got {value!r}")
    return int(value)


def _softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype("float64")
    exp = np.exp(row - row.max())
    return exp / exp.sum()


class Predictor:
    """Classification or question answering with a packed folder on the runtime (no Paddle).

    Args:
        path: a packed folder (``model.safetensors``, ``config.json`` with ``binbert_packed``) holding
            the tokenizer files (``vocab.txt``, ``tokenizer_config.json``).
        batch_size: texts (classification) or windows (QA) per forward pass.
        max_length: longest input in tokens, special tokens included (longer classification inputs are
            truncated, pairs longest-first; QA contexts are split into windows); capped at the model's
            ``max_position_embeddings``.
        num_threads: threads of the kernels (default: the CPUs this process may use).
        length_config: one non-increasing token budget per layer (Drop-and-Restore), a sequence or
            ``"30-18-9-6-6-6"``.
        **options: classification ``top_k`` (labels per input, default 1) and ``id2label`` (overrides the
            folder's ``id2label.json`` and config names); QA ``doc_stride`` (default ``max_length // 3``),
            ``max_query_length`` (default ``min(64, max_length // 2)``), ``n_best_size`` (20) and
            ``max_answer_length`` (30), as :class:`paddle_binbert.Taskflow`.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        batch_size: int = 8,
        max_length: int = 128,
        num_threads: Optional[int] = None,
        length_config: Union[None, str, Sequence[int]] = None,
        **options: Any,
    ) -> None:
        self.path = Path(path)
        self.batch_size = _int_option("batch_size", batch_size, 1)
        max_length = _int_option("max_length", max_length, 4)
        self.model: RuntimeModel = load(self.path, num_threads=num_threads)
        self.task = "text_classification" if self.model.task == "classification" else "question_answering"
        allowed = _CLS_OPTIONS if self.task == "text_classification" else _QA_OPTIONS
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(
                f"Predictor for {self.task} got unknown option(s) {unknown}; valid options: {list(allowed)}"
            )
        if isinstance(length_config, str):  # "64,60,48" or "64-60-48", as Taskflow / search-length
            parts = [p for p in length_config.replace("-", ",").replace(" ", ",").split(",") if p]
            try:
                length_config = tuple(int(p) for p in parts)
            except ValueError as err:
                raise ValueError(
                    f"length configuration {length_config!r} is not a comma-separated list of integers"
                ) from err
        self.length_config = self.model.check_length_config(length_config)
        self.tokenizer = WordPieceTokenizer.from_pretrained(self.path)
        max_positions = int(self.model.meta["max_position_embeddings"])
        if max_length > max_positions:
            logger.warning(
                "max_length=%d exceeds the model's %d positions; using %d", max_length, max_positions, max_positions
            )
            max_length = max_positions
        self.max_length = max_length
        if self.task == "text_classification":
            self.num_labels = int(self.model.meta["num_labels"])
            self.top_k = _int_option("top_k", options["top_k"], 1) if options.get("top_k") is not None else 1
            self.id2label = self._id2label(options.get("id2label"))
        else:
            qa = {k: _int_option(k, v, 1) for k, v in options.items() if v is not None}
            self.max_query_length = qa.get("max_query_length") or min(64, self.max_length // 2)
            self.doc_stride = qa.get("doc_stride") or max(1, self.max_length // 3)
            self.n_best_size = qa.get("n_best_size") or 20
            self.max_answer_length = qa.get("max_answer_length") or 30

    def __call__(self, inputs: Any) -> List[Dict[str, Any]]:
        """Predict one input or a list of them; one result dict per input (Taskflow's format).

        Classification: a text, a ``(text, pair)`` tuple, or a list of texts and / or pairs ->
        ``{"text": input, "predictions": [{"label", "score"}, ...]}`` (softmax scores, best first,
        ``top_k`` of them), or ``{"text": input, "score": value}`` for a regression model.
        QA: ``{"question", "context"}`` or a list of them -> ``{"answer", "score", "start", "end"}``
        with ``answer == context[start:end]``.
        """
        if self.task == "text_classification":
            return self._classify(inputs)
        return self._answer(inputs)

    def _run(self, arrays: Dict[str, np.ndarray]) -> Any:
        return self.model(
            arrays["input_ids"], arrays["token_type_ids"], arrays["attention_mask"], length_config=self.length_config
        )

    # ------------------------------------------------------------------ classification
    def _id2label(self, mapping: Optional[Dict[Any, Any]]) -> Dict[int, Any]:
        if mapping is None:
            path = self.path / "id2label.json"
            if path.is_file():
                mapping = json.loads(path.read_text(encoding="utf-8"))
        if mapping is None:
            mapping = self.model.config.get("id2label") or {}
        labels = {int(k): v for k, v in dict(mapping).items()}
        return {i: labels.get(i, f"LABEL_{i}") for i in range(self.num_labels)}

    @staticmethod
    def _split_item(item: Any, index: int) -> Tuple[str, Optional[str]]:
        if isinstance(item, str):
            return item, None
        if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
            return item[0], item[1]
        raise TypeError(f"input {index}: expected a string or a pair of strings, got {item!r:.80}")

    def _encode(self, pairs: Sequence[Tuple[str, Optional[str]]]) -> Dict[str, np.ndarray]:
        encoded = self.tokenizer.encode_batch(pairs, max_length=self.max_length)
        length = max(len(e["input_ids"]) for e in encoded)
        ids = np.full((len(encoded), length), self.tokenizer.pad_token_id, dtype=np.int64)
        types = np.zeros((len(encoded), length), dtype=np.int64)
        mask = np.zeros((len(encoded), length), dtype=np.int64)
        for row, e in enumerate(encoded):
            n = len(e["input_ids"])
            ids[row, :n] = e["input_ids"]
            types[row, :n] = e["token_type_ids"]
            mask[row, :n] = 1
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}

    def _classify(self, inputs: Any) -> List[Dict[str, Any]]:
        if isinstance(inputs, str) or (isinstance(inputs, tuple) and len(inputs) == 2):
            items = [inputs]
        elif isinstance(inputs, list):
            items = list(inputs)
        else:
            raise TypeError(
                f"text classification expects a text, a (text, text_pair) tuple or a list; got {type(inputs).__name__}"
            )
        pairs = [self._split_item(item, i) for i, item in enumerate(items)]
        results: List[Dict[str, Any]] = []
        for start in range(0, len(pairs), self.batch_size):
            logits = np.asarray(self._run(self._encode(pairs[start : start + self.batch_size])))
            for item, row in zip(items[start : start + self.batch_size], logits.reshape(-1, self.num_labels)):
                if self.num_labels == 1:
                    results.append({"text": item, "score": float(row[0])})
                    continue
                probs = _softmax(row)
                order = np.argsort(-probs, kind="stable")[: self.top_k]
                results.append(
                    {
                        "text": item,
                        "predictions": [{"label": self.id2label[int(i)], "score": float(probs[i])} for i in order],
                    }
                )
        return results

    # ------------------------------------------------------------------ question answering
    @staticmethod
    def _qa_items(inputs: Any) -> List[Dict[str, str]]:
        items = [inputs] if isinstance(inputs, dict) else inputs
        if not isinstance(items, list):
            raise TypeError(
                "question answering expects a {'question', 'context'} dict or a list of them; "
                f"got {type(inputs).__name__}"
            )
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("question", "context")):
                raise TypeError(f"input {i}: expected a dict with string 'question' and 'context', got {item!r:.80}")
        return items

    @staticmethod
    def _answer_span(
        context: str, best: Dict[str, Any], windows: List[Tuple[Any, np.ndarray, np.ndarray]]
    ) -> Tuple[int, int]:
        """Character span of the best n-best entry: its own ``start`` / ``end`` when reported, else the
        window positions whose logits are the entry's and whose characters spell its text."""
        if "start" in best and "end" in best:
            return int(best["start"]), int(best["end"])
        text = best["text"]
        for feature, starts, ends in windows:
            spans = feature.offset_mapping
            first = [i for i, s in enumerate(spans) if s is not None and starts[i] == best["start_logit"]]
            last = [i for i, s in enumerate(spans) if s is not None and ends[i] == best["end_logit"]]
            for s in first:
                for e in last:
                    if e >= s and context[spans[s][0] : spans[e][1]] == text:
                        return spans[s][0], spans[e][1]
        found = context.find(text)
        return (found, found + len(text)) if found >= 0 else (0, 0)

    def _answer(self, inputs: Any) -> List[Dict[str, Any]]:
        from ..data.squad import SquadExample, collate_features, postprocess_predictions, prepare_eval_features

        items = self._qa_items(inputs)
        examples = [SquadExample(id=str(i), question=q["question"], context=q["context"]) for i, q in enumerate(items)]
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
            starts, ends = self._run(collate_features(chunk, pad_token_id=self.tokenizer.pad_token_id))
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
        windows: Dict[str, List[Tuple[Any, np.ndarray, np.ndarray]]] = {}
        for feature, s_row, e_row in zip(features, start_rows, end_rows):
            windows.setdefault(feature.example_id, []).append((feature, s_row, e_row))
        results: List[Dict[str, Any]] = []
        for example in examples:
            best = nbest[example.id][0]
            if not best["text"]:
                results.append({"answer": "", "score": 0.0, "start": 0, "end": 0})
                continue
            start, end = self._answer_span(example.context, best, windows.get(example.id, []))
            results.append(
                {"answer": example.context[start:end], "score": float(best["probability"]), "start": start, "end": end}
            )
        return results

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.path)!r}, task={self.task}, batch_size={self.batch_size}, "
            f"max_length={self.max_length})"
        )
