"""GLUE evaluation metrics (scikit-learn / scipy based).

Metric names follow the GLUE reference code and the TinyBERT / BiBERT releases:

| task | metrics | main |
|---|---|---|
| CoLA | ``mcc`` | ``mcc`` |
| STS-B | ``pearson``, ``spearmanr``, ``corr`` (their mean) | ``corr`` |
| MRPC, QQP | ``acc``, ``f1``, ``acc_and_f1`` (their mean) | ``acc`` |
| SST-2, MNLI, QNLI, RTE, WNLI | ``acc`` | ``acc`` |

All values are plain Python floats in the natural scale (accuracy in [0, 1], not percent).
"""

from __future__ import annotations

import warnings
from typing import Dict, Sequence, Union

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from paddle_binbert.data.glue import get_task_spec

ArrayLike = Union[np.ndarray, Sequence[float], Sequence[int]]

__all__ = [
    "accuracy",
    "compute_glue_metrics",
    "f1_binary",
    "logits_to_predictions",
    "main_metric_name",
    "matthews_correlation",
    "pearson_correlation",
    "spearman_correlation",
]


def _as_1d(values: ArrayLike) -> np.ndarray:
    return np.asarray(values).reshape(-1)


def _check_same_length(preds: np.ndarray, labels: np.ndarray) -> None:
    if preds.shape[0] != labels.shape[0]:
        raise ValueError(f"predictions and labels differ in length: {preds.shape[0]} != {labels.shape[0]}")
    if preds.shape[0] == 0:
        raise ValueError("cannot compute a metric on zero examples")


def accuracy(preds: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of predicted class ids equal to the labels."""
    preds, labels = _as_1d(preds), _as_1d(labels)
    _check_same_length(preds, labels)
    return float(np.mean(preds == labels))


def f1_binary(preds: ArrayLike, labels: ArrayLike) -> float:
    """F1 of the positive class (label 1) for binary classification (0 when there is no positive)."""
    preds, labels = _as_1d(preds), _as_1d(labels)
    _check_same_length(preds, labels)
    return float(f1_score(labels, preds, average="binary", pos_label=1, zero_division=0))


def matthews_correlation(preds: ArrayLike, labels: ArrayLike) -> float:
    """Matthews correlation coefficient (0 when either side is constant)."""
    preds, labels = _as_1d(preds), _as_1d(labels)
    _check_same_length(preds, labels)
    return float(matthews_corrcoef(labels, preds))


def _correlation(fn, preds: ArrayLike, labels: ArrayLike) -> float:
    preds, labels = _as_1d(preds).astype(np.float64), _as_1d(labels).astype(np.float64)
    _check_same_length(preds, labels)
    if preds.shape[0] < 2 or np.all(preds == preds[0]) or np.all(labels == labels[0]):
        # undefined (constant input): report "no correlation" rather than NaN, so that
        # best-checkpoint comparisons keep working
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(preds, labels)[0])
    return 0.0 if np.isnan(value) else value


def pearson_correlation(preds: ArrayLike, labels: ArrayLike) -> float:
    """Pearson correlation coefficient (0 for constant input)."""
    return _correlation(stats.pearsonr, preds, labels)


def spearman_correlation(preds: ArrayLike, labels: ArrayLike) -> float:
    """Spearman rank correlation coefficient (0 for constant input)."""
    return _correlation(stats.spearmanr, preds, labels)


def logits_to_predictions(task_name: str, predictions: ArrayLike) -> np.ndarray:
    """Turn model outputs into predictions: argmax over the last axis for classification
    (1-D input is taken as class ids already), a flat float vector for regression (STS-B)."""
    spec = get_task_spec(task_name)
    predictions = np.asarray(predictions)
    if spec.is_regression:
        return predictions.reshape(-1).astype(np.float64)
    if predictions.ndim == 1:
        return predictions.astype(np.int64)
    return np.argmax(predictions, axis=-1).reshape(-1)


def main_metric_name(task_name: str) -> str:
    """Name of the metric used to select the best checkpoint of a task (``mcc``, ``corr`` or ``acc``)."""
    return get_task_spec(task_name).main_metric


def compute_glue_metrics(task_name: str, predictions: ArrayLike, labels: ArrayLike) -> Dict[str, float]:
    """Standard GLUE metrics of a task from logits (or class ids / scores) and labels.

    Returns a flat dict of floats; see the module docstring for the keys per task and
    :func:`main_metric_name` for the key used for model selection.
    """
    spec = get_task_spec(task_name)
    preds = logits_to_predictions(spec.name, predictions)
    labels = _as_1d(labels)
    if spec.is_regression:
        pearson = pearson_correlation(preds, labels)
        spearman = spearman_correlation(preds, labels)
        return {"pearson": pearson, "spearmanr": spearman, "corr": (pearson + spearman) / 2.0}
    labels = labels.astype(np.int64)
    if spec.name == "CoLA":
        return {"mcc": matthews_correlation(preds, labels)}
    acc = accuracy(preds, labels)
    if spec.name in ("MRPC", "QQP"):
        f1 = f1_binary(preds, labels)
        return {"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2.0}
    return {"acc": acc}
