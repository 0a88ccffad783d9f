"""Tests of the GLUE metrics against scikit-learn / scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from paddle_binbert.data.glue import GLUE_TASKS
from paddle_binbert.data.metrics import (
    accuracy,
    compute_glue_metrics,
    f1_binary,
    logits_to_predictions,
    main_metric_name,
    matthews_correlation,
    pearson_correlation,
    spearman_correlation,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 2, size=200)
    preds = np.where(rng.rand(200) < 0.7, labels, 1 - labels)
    assert accuracy(preds, labels) == pytest.approx(accuracy_score(labels, preds))
    assert f1_binary(preds, labels) == pytest.approx(f1_score(labels, preds))
    assert matthews_correlation(preds, labels) == pytest.approx(matthews_corrcoef(labels, preds))


@pytest.mark.parametrize("seed", [0, 1])
def test_correlations_match_scipy(seed: int) -> None:
    rng = np.random.RandomState(seed)
    labels = rng.uniform(0, 5, size=300)
    preds = labels + rng.normal(0, 1.5, size=300)
    assert pearson_correlation(preds, labels) == pytest.approx(stats.pearsonr(preds, labels)[0])
    assert spearman_correlation(preds, labels) == pytest.approx(stats.spearmanr(preds, labels)[0])


def test_constant_predictions_give_zero_not_nan() -> None:
    labels = np.array([0.0, 1.0, 2.5, 4.0])
    assert pearson_correlation(np.ones(4), labels) == 0.0
    assert spearman_correlation(np.ones(4), labels) == 0.0
    assert matthews_correlation(np.ones(4, dtype=int), np.array([0, 1, 0, 1])) == 0.0
    assert f1_binary(np.zeros(4, dtype=int), np.array([0, 1, 0, 1])) == 0.0


def test_length_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError):
        accuracy([], [])


def test_per_task_keys_and_main_metric() -> None:
    expected = {
        "CoLA": ({"mcc"}, "mcc"),
        "SST-2": ({"acc"}, "acc"),
        "MRPC": ({"acc", "f1", "acc_and_f1"}, "acc"),
        "QQP": ({"acc", "f1", "acc_and_f1"}, "acc"),
        "STS-B": ({"pearson", "spearmanr", "corr"}, "corr"),
        "MNLI": ({"acc"}, "acc"),
        "QNLI": ({"acc"}, "acc"),
        "RTE": ({"acc"}, "acc"),
        "WNLI": ({"acc"}, "acc"),
    }
    assert set(expected) == set(GLUE_TASKS)
    rng = np.random.RandomState(0)
    for task, (keys, main) in expected.items():
        spec = GLUE_TASKS[task]
        if spec.is_regression:
            logits, labels = rng.uniform(0, 5, size=(40, 1)), rng.uniform(0, 5, size=40)
        else:
            logits, labels = rng.randn(40, spec.num_labels), rng.randint(0, spec.num_labels, size=40)
        metrics = compute_glue_metrics(task.lower(), logits, labels)
        assert set(metrics) == keys, task
        assert main_metric_name(task) == main and main in metrics
        assert all(isinstance(v, float) for v in metrics.values())


def test_compute_from_logits_matches_direct_metrics() -> None:
    rng = np.random.RandomState(3)
    logits, labels = rng.randn(64, 2), rng.randint(0, 2, size=64)
    preds = logits.argmax(-1)
    mrpc = compute_glue_metrics("mrpc", logits, labels)
    assert mrpc["acc"] == pytest.approx(accuracy_score(labels, preds))
    assert mrpc["f1"] == pytest.approx(f1_score(labels, preds))
    assert mrpc["acc_and_f1"] == pytest.approx((mrpc["acc"] + mrpc["f1"]) / 2)
    assert compute_glue_metrics("cola", logits, labels)["mcc"] == pytest.approx(matthews_corrcoef(labels, preds))
    mnli_logits = rng.randn(30, 3)
    mnli_labels = rng.randint(0, 3, size=30)
    assert compute_glue_metrics("mnli", mnli_logits, mnli_labels)["acc"] == pytest.approx(
        np.mean(mnli_logits.argmax(-1) == mnli_labels)
    )


def test_stsb_squeezes_regression_output() -> None:
    rng = np.random.RandomState(4)
    labels = rng.uniform(0, 5, size=50)
    out = (labels + rng.normal(0, 1, size=50)).reshape(50, 1).astype(np.float32)
    metrics = compute_glue_metrics("sts-b", out, labels)
    pearson = stats.pearsonr(out[:, 0], labels)[0]
    spearman = stats.spearmanr(out[:, 0], labels)[0]
    assert metrics["pearson"] == pytest.approx(pearson, rel=1e-6)
    assert metrics["spearmanr"] == pytest.approx(spearman, rel=1e-6)
    assert metrics["corr"] == pytest.approx((pearson + spearman) / 2, rel=1e-6)


def test_logits_to_predictions() -> None:
    assert logits_to_predictions("sst2", np.array([[0.1, 0.9], [2.0, -1.0]])).tolist() == [1, 0]
    assert logits_to_predictions("sst2", np.array([1, 0, 1])).tolist() == [1, 0, 1]
    assert logits_to_predictions("stsb", np.array([[1.5], [2.5]])).tolist() == [1.5, 2.5]
