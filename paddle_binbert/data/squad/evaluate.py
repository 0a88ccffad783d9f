"""SQuAD v1.1 exact match and F1, following the rules of the official v1.1 evaluation script.

* Answers are normalized: lower case, ASCII punctuation (``string.punctuation``) removed, the
  articles "a", "an", "the" removed as whole words, whitespace collapsed to single spaces.
* Exact match (EM) is 1 when the normalized prediction equals a normalized gold answer.
* F1 is the token-level F1 between the normalized prediction and gold answer split on
  whitespace, with tokens counted with multiplicity; it is 0 when no token is shared (so, as in
  v1.1, an empty prediction scores F1 0 even against an answer that normalizes to "").
* Each question takes the maximum over its gold answers; scores are averaged over all questions
  of the dataset and reported as percentages. A question without a prediction scores 0.
"""

from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from typing import Any, Dict, List, Mapping, Sequence

from .reader import SquadFormatError

__all__ = ["exact_match_score", "f1_score", "normalize_answer", "squad_evaluate"]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Normalize an answer the SQuAD v1.1 way (lower, no punctuation, no articles, single spaces)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, gold: str) -> float:
    """Return 1.0 when both answers are equal after normalization, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Return the token-level F1 (0..1) between a prediction and one gold answer."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    shared = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(pred_tokens)
    recall = shared / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _gold_answers(dataset: Mapping[str, Any]) -> List[tuple]:
    """Return ``(question id, [gold texts])`` for every question of a decoded SQuAD object."""
    if not isinstance(dataset, Mapping) or "data" not in dataset:
        raise SquadFormatError("dataset should be the decoded SQuAD JSON object with a 'data' key")
    out = []
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                out.append((qa["id"], [answer["text"] for answer in qa["answers"]]))
    return out


def _max_over(metric: Any, prediction: str, golds: Sequence[str]) -> float:
    """Best score of ``prediction`` against any gold answer (0 without gold answers)."""
    return max((metric(prediction, gold) for gold in golds), default=0.0)


def squad_evaluate(dataset: Mapping[str, Any], predictions: Mapping[str, str]) -> Dict[str, float]:
    """Score predictions against a SQuAD v1.1 dataset with the official v1.1 rules.

    Args:
        dataset: The decoded SQuAD JSON file (the dict with ``"data"``).
        predictions: ``{question id: answer text}``; ids not in the dataset are ignored.

    Returns:
        ``{"exact_match": float, "f1": float}`` as percentages (0..100) averaged over all questions
        of the dataset. Questions missing from ``predictions`` score 0, with a warning naming them.

    Raises:
        SquadFormatError: ``dataset`` is not a SQuAD object.
    """
    version = dataset.get("version") if isinstance(dataset, Mapping) else None
    if version is not None and str(version) != "1.1":
        warnings.warn(f"evaluation expects SQuAD v1.1, got a dataset of version {version}", stacklevel=2)
    questions = _gold_answers(dataset)
    exact = f1 = 0.0
    missing: List[str] = []
    for qid, golds in questions:
        if qid not in predictions:
            missing.append(qid)
            continue
        prediction = str(predictions[qid])
        exact += _max_over(exact_match_score, prediction, golds)
        f1 += _max_over(f1_score, prediction, golds)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.warn(
            f"{len(missing)} of {len(questions)} questions have no prediction and score 0: {shown}",
            stacklevel=2,
        )
    total = len(questions)
    if total == 0:
        return {"exact_match": 0.0, "f1": 0.0}
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}
