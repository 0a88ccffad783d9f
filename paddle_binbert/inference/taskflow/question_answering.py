"""Taskflow's ``question_answering`` task (extractive, SQuAD v1.1 style; numpy only, no Paddle).

    {"question": ..., "context": ...} or a list of them
    -> [{"answer": ..., "score": ..., "start": ..., "end": ...}, ...]

Windowing and answer extraction are :mod:`paddle_binbert.data.squad`'s (plain Python / numpy).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .task import ForwardFn, Task

__all__ = ["QuestionAnsweringTask", "locate_answer", "qa_items"]

#: one QA window: (the feature, its start logits, its end logits)
Window = Tuple[Any, np.ndarray, np.ndarray]


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


class QuestionAnsweringTask(Task):
    """Questions about contexts -> answer spans of the contexts.

    Args:
        forward, tokenizer, batch_size, max_length: see :class:`~.task.Task` (the tokenizer must
            provide what :func:`~paddle_binbert.data.squad.prepare_eval_features` needs).
        doc_stride: step between window starts (default ``max_length // 3``).
        max_query_length: question tokens kept (default ``min(64, max_length // 2)``).
        n_best_size: candidate starts / ends per window (default 20).
        max_answer_length: longest answer in tokens (default 30).
    """

    name = "question_answering"
    options = ("doc_stride", "max_query_length", "n_best_size", "max_answer_length")

    def __init__(
        self,
        forward: ForwardFn,
        tokenizer: Any,
        batch_size: int,
        max_length: int,
        doc_stride: Optional[int] = None,
        max_query_length: Optional[int] = None,
        n_best_size: Optional[int] = None,
        max_answer_length: Optional[int] = None,
    ) -> None:
        super().__init__(forward, tokenizer, batch_size, max_length)
        self.max_query_length = max_query_length or min(64, self.max_length // 2)
        self.doc_stride = doc_stride or max(1, self.max_length // 3)
        self.n_best_size = n_best_size or 20
        self.max_answer_length = max_answer_length or 30

    def __call__(self, inputs: Any) -> List[Dict[str, Any]]:
        """Answer ``{"question": ..., "context": ...}`` or a list of them.

        Returns ``{"answer", "score", "start", "end"}`` per input with ``answer ==
        context[start:end]`` (character offsets) and ``score`` the answer's probability among the
        n-best spans (0.0 and an empty answer when the context has no token).
        """
        from ...data.squad import SquadExample, collate_features, postprocess_predictions, prepare_eval_features

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
            starts, ends = self.run(collate_features(chunk, pad_token_id=self.tokenizer.pad_token_id))
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
