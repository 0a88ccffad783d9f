"""From start/end logits of every window back to one answer text per question."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np

from ...io_utils import write_json_atomic
from .features import SquadFeature
from .reader import SquadExample

__all__ = ["postprocess_predictions", "write_predictions"]

NBest = Dict[str, List[Dict[str, Any]]]


def _softmax(scores: Sequence[float]) -> List[float]:
    """Numerically stable softmax of a short list of scores."""
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _top_indices(logits: np.ndarray, candidates: np.ndarray, k: int) -> List[int]:
    """Return up to ``k`` indices from ``candidates`` with the largest logits, best first."""
    order = np.argsort(-logits[candidates], kind="stable")[:k]
    return [int(i) for i in candidates[order]]


def postprocess_predictions(
    examples: Sequence[SquadExample],
    features: Sequence[SquadFeature],
    all_start_logits: Sequence[Any],
    all_end_logits: Sequence[Any],
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> Tuple[Dict[str, str], NBest]:
    """Pick the best answer span of every question from the logits of all its windows.

    For each window, the ``n_best_size`` best start and end positions among the context tokens
    are paired; a pair is kept when ``end >= start`` and it spans at most ``max_answer_length``
    tokens. Its score is ``start_logit + end_logit`` and its text is the original context between
    the start token's first character and the end token's last one. Candidates of all windows of a
    question are ranked together; equal texts are kept once (best score); the ``n_best_size`` best
    get a softmax probability over that list.

    Args:
        examples: The examples the features were built from.
        features: Eval features (:func:`~paddle_binbert.data.squad.prepare_eval_features`).
        all_start_logits: One row of start logits per feature, in feature order (lists or arrays;
            rows may be padded beyond the feature's length).
        all_end_logits: The end logits, same layout.
        n_best_size: Start/end positions tried per window, and answers kept per question.
        max_answer_length: Longest answer, in tokens.

    Returns:
        ``(predictions, nbest)``: ``{id: text}`` with one answer per example, and
        ``{id: [{"text", "probability", "start_logit", "end_logit"}, ...]}`` best first. A
        question with no valid span (or no feature) gets the empty answer "".

    Raises:
        ValueError: The numbers of features and logit rows differ, or a row is shorter than its
            feature.
    """
    if len(all_start_logits) != len(features) or len(all_end_logits) != len(features):
        raise ValueError(
            f"got {len(features)} features but {len(all_start_logits)} start and {len(all_end_logits)} end logit rows"
        )
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError("n_best_size and max_answer_length must be >= 1")

    by_example: Dict[str, List[int]] = defaultdict(list)
    for index, feature in enumerate(features):
        by_example[feature.example_id].append(index)

    predictions: Dict[str, str] = {}
    nbest: NBest = {}
    for example in examples:
        candidates: List[Tuple[float, float, float, int, int]] = []
        for index in by_example.get(example.id, []):
            feature = features[index]
            n = len(feature.input_ids)
            start_logits = np.asarray(all_start_logits[index], dtype="float64").reshape(-1)
            end_logits = np.asarray(all_end_logits[index], dtype="float64").reshape(-1)
            if start_logits.shape[0] < n or end_logits.shape[0] < n:
                raise ValueError(
                    f"logit row {index} has {start_logits.shape[0]}/{end_logits.shape[0]} values, "
                    f"its feature {n} tokens"
                )
            start_logits, end_logits = start_logits[:n], end_logits[:n]
            offsets = feature.offset_mapping
            context_positions = np.array([i for i, span in enumerate(offsets) if span is not None], dtype="int64")
            if context_positions.size == 0:
                continue
            starts = _top_indices(start_logits, context_positions, n_best_size)
            ends = _top_indices(end_logits, context_positions, n_best_size)
            for s in starts:
                for e in ends:
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    s_logit, e_logit = float(start_logits[s]), float(end_logits[e])
                    candidates.append((s_logit + e_logit, s_logit, e_logit, offsets[s][0], offsets[e][1]))

        candidates.sort(key=lambda c: c[0], reverse=True)
        entries: List[Dict[str, Any]] = []
        seen_texts = set()
        for _, s_logit, e_logit, char_start, char_end in candidates:
            text = example.context[char_start:char_end]
            if text in seen_texts:
                continue
            seen_texts.add(text)
            entries.append({"text": text, "start_logit": s_logit, "end_logit": e_logit})
            if len(entries) == n_best_size:
                break
        if not entries:
            entries.append({"text": "", "start_logit": 0.0, "end_logit": 0.0})
        probabilities = _softmax([e["start_logit"] + e["end_logit"] for e in entries])
        nbest[example.id] = [
            {
                "text": e["text"],
                "probability": p,
                "start_logit": e["start_logit"],
                "end_logit": e["end_logit"],
            }
            for e, p in zip(entries, probabilities)
        ]
        predictions[example.id] = entries[0]["text"]
    return predictions, nbest


def write_predictions(
    predictions: Dict[str, str],
    nbest: NBest,
    out_dir: Union[str, Path],
) -> Tuple[Path, Path]:
    """Write ``predictions.json`` (the official ``{id: text}`` format) and ``nbest_predictions.json``.

    Each file is written to a temporary file in ``out_dir`` and renamed into place, so a reader
    never sees a half-written file.

    Args:
        predictions: ``{id: text}`` from :func:`postprocess_predictions`.
        nbest: The n-best lists from :func:`postprocess_predictions`.
        out_dir: Output folder (created if missing).

    Returns:
        The paths of ``predictions.json`` and ``nbest_predictions.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = out / "predictions.json"
    nbest_path = out / "nbest_predictions.json"
    write_json_atomic(pred_path, predictions)
    write_json_atomic(nbest_path, nbest)
    return pred_path, nbest_path
