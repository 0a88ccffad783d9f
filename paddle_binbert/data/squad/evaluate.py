"""SQuAD v1.1 exact match and F1, following the rules of the official v1.1 evaluation script.

* Answers are normalized: lower case, ASCII punctuation (``string.punctuation``) removed, the
  articles "a", "an", "the" removed as whole words, whitespace collapsed to single spaces.
* Exact match (EM) is 1 when the normalized prediction equals a normalized gold answer.
* F1 is the token-level F1 between the normalized prediction and gold answer split on
  whitespace, with tokens counted with multiplicity; it is 0 when no token is shared (so, as in
  v1.1, an empty prediction scores F1 0 even against an answer that normalizes to "").
* Each question takes the maximum over its gold answers; scores are averaged over all questions
  of the dataset and reported as percentages. A question without a prediction scores 0.

Predictions must be strings (the answer text): a list, object, number or ``null`` is refused
with the question id rather than scored through its ``str()`` (``["gold"]`` would otherwise
match "gold" exactly). The dataset's layout is checked as it is read; a missing or mistyped
``data`` / ``paragraphs`` / ``qas`` / ``id`` / ``answers`` / ``text`` names the article (and
paragraph, question) where it happens.
"""

from __future__ import annotations

import json
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


def _field(obj: Any, key: str, expected: type, where: str) -> Any:
    """``obj[key]``, checked to exist and to be of type ``expected`` (errors name ``where``)."""
    if not isinstance(obj, Mapping):
        raise SquadFormatError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    if key not in obj:
        raise SquadFormatError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, expected):
        raise SquadFormatError(
            f"{where}: key {key!r} should be of type {expected.__name__}, found {type(value).__name__}"
        )
    return value


def _gold_answers(dataset: Mapping[str, Any], source: str = "dataset") -> List[tuple]:
    """Return ``(question id, [gold texts])`` for every question of a decoded SQuAD object.

    Raises:
        SquadFormatError: a missing or mistyped key, naming ``source`` and the article index (and
            paragraph / question / answer index) where it is.
    """
    if not isinstance(dataset, Mapping) or "data" not in dataset:
        raise SquadFormatError(f"{source}: should be the decoded SQuAD JSON object with a 'data' key")
    out = []
    for a_idx, article in enumerate(_field(dataset, "data", list, source)):
        a_loc = f"{source}: article {a_idx}"
        for p_idx, paragraph in enumerate(_field(article, "paragraphs", list, a_loc)):
            p_loc = f"{a_loc}, paragraph {p_idx}"
            for q_idx, qa in enumerate(_field(paragraph, "qas", list, p_loc)):
                qid = _field(qa, "id", str, f"{p_loc}, question {q_idx}")
                q_loc = f"{p_loc}, question id {qid!r}"
                answers = _field(qa, "answers", list, q_loc)
                out.append((qid, [_field(a, "text", str, f"{q_loc}, answer {n}") for n, a in enumerate(answers)]))
    return out


def _check_predictions(predictions: Mapping[str, Any], source: str) -> None:
    """Refuse non-string answers, naming the question ids (they would be scored through ``str()``)."""
    if not isinstance(predictions, Mapping):
        raise SquadFormatError(
            f"{source}: expected an object {{question id: answer text}}, got {type(predictions).__name__}"
        )
    bad = [(qid, value) for qid, value in predictions.items() if not isinstance(value, str)]
    if bad:
        shown = ", ".join(f"{qid!r} ({_kind(value)} {_short(value)})" for qid, value in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise SquadFormatError(
            f"{source}: the prediction of every question should be a string (the answer text); "
            f"{len(bad)} are not: question id {shown}{more}"
        )


def _kind(value: Any) -> str:
    kinds = {list: "a list", dict: "an object", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _max_over(metric: Any, prediction: str, golds: Sequence[str]) -> float:
    """Best score of ``prediction`` against any gold answer (0 without gold answers)."""
    return max((metric(prediction, gold) for gold in golds), default=0.0)


def squad_evaluate(
    dataset: Mapping[str, Any],
    predictions: Mapping[str, str],
    source: str = "dataset",
    predictions_source: str = "predictions",
) -> Dict[str, float]:
    """Score predictions against a SQuAD v1.1 dataset with the official v1.1 rules.

    Args:
        dataset: The decoded SQuAD JSON file (the dict with ``"data"``).
        predictions: ``{question id: answer text}``; ids not in the dataset are ignored. Every
            answer must be a string.
        source: Name of the dataset in error messages (usually its file).
        predictions_source: Name of the predictions in error messages (usually their file).

    Returns:
        ``{"exact_match": float, "f1": float}`` as percentages (0..100) averaged over all questions
        of the dataset. Questions missing from ``predictions`` score 0, with a warning naming them.

    Raises:
        SquadFormatError: ``dataset`` is not a SQuAD object (the message names the article,
            paragraph or question), or a prediction is not a string (the message names its
            question id).
    """
    version = dataset.get("version") if isinstance(dataset, Mapping) else None
    if version is not None and str(version) != "1.1":
        warnings.warn(f"evaluation expects SQuAD v1.1, got a dataset of version {version}", stacklevel=2)
    questions = _gold_answers(dataset, source)
    _check_predictions(predictions, predictions_source)
    exact = f1 = 0.0
    missing: List[str] = []
    for qid, golds in questions:
        if qid not in predictions:
            missing.append(qid)
            continue
        prediction = predictions[qid]
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
