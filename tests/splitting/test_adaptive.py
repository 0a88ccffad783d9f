"""Adaptive splitting: the exact 0/1 knapsack against brute force, integer cost scaling, split
costs and model sizes against paddle_binbert.accounting, sensitivities and the budgeted plan."""

import itertools

import numpy as np
import pytest

from paddle_binbert.accounting import size_mib
from paddle_binbert.splitting import (
    choose_splits,
    knapsack_01,
    model_size_bytes,
    plan_adaptive_split,
    scale_costs,
    sensitivity_by_metric,
    sensitivity_by_proxy,
    split_costs,
    split_ternary_model,
    splittable_layers,
)
from tests.splitting.test_tws import batch, tiny_ternary_student


def brute_force(values, costs, budget):
    best = 0.0
    for r in range(len(values) + 1):
        for subset in itertools.combinations(range(len(values)), r):
            if sum(costs[i] for i in subset) <= budget:
                best = max(best, sum(values[i] for i in subset))
    return best


def check_solution(values, costs, budget):
    best, chosen = knapsack_01(values, costs, budget)
    assert chosen == sorted(set(chosen))
    assert sum(costs[i] for i in chosen) <= budget
    assert best == pytest.approx(sum(values[i] for i in chosen), abs=1e-9)
    assert best == pytest.approx(brute_force(values, costs, budget), abs=1e-9)
    return best, chosen


def test_knapsack_matches_brute_force_on_random_instances():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(0, 9))
        values = rng.uniform(0, 10, n).round(2)
        values[rng.uniform(size=n) < 0.2] = 0.0  # zero-value items
        costs = rng.integers(0, 12, n)
        budget = int(rng.integers(0, 30))
        check_solution(values.tolist(), costs.tolist(), budget)


def test_knapsack_edge_cases():
    assert knapsack_01([], [], 5) == (0.0, [])
    # budget 0: only free items with positive value
    assert check_solution([3.0, 2.0, 0.0, 4.0], [0, 1, 0, 2], 0) == (3.0, [0])
    # every item over budget
    assert check_solution([5.0, 6.0], [4, 9], 3) == (0.0, [])
    # zero and negative values are never taken, even when free
    assert check_solution([0.0, -1.0, 2.0], [0, 0, 1], 1) == (2.0, [2])
    # the greedy value/cost order is not optimal here: DP must take {1, 2}
    assert check_solution([6.0, 5.0, 5.0], [5, 4, 4], 8) == (10.0, [1, 2])
    with pytest.raises(ValueError):
        knapsack_01([1.0], [1.5], 3)
    with pytest.raises(ValueError):
        knapsack_01([1.0], [-1], 3)
    with pytest.raises(ValueError):
        knapsack_01([1.0], [1], -1)
    with pytest.raises(ValueError):
        knapsack_01([float("nan")], [1], 1)


def test_scale_costs_is_exact_for_bytes_and_feasible_for_floats():
    units, res = scale_costs([76800.0, 307200.0, 153600.0])
    assert res == 76800.0 and units == [1, 4, 2]
    costs = [0.3, 1.25, 0.7]
    units, res = scale_costs(costs, resolution=0.5)
    assert units == [1, 3, 2]
    budget = 2.0
    _, chosen = knapsack_01([1.0, 1.0, 1.0], units, int(budget // res))
    assert sum(costs[i] for i in chosen) <= budget
    assert scale_costs([0.0, 0.0]) == ([0, 0], 1.0)
    with pytest.raises(ValueError):
        scale_costs([-1.0])


def test_choose_splits_uses_names_and_the_budget():
    sens = {"a": 6.0, "b": 5.0, "c": 5.0, "d": 0.0}
    costs = {"a": 500.0, "b": 400.0, "c": 400.0, "d": 1.0}
    assert choose_splits(sens, costs, 800) == ["b", "c"]
    assert choose_splits(sens, costs, 0) == []
    assert choose_splits(sens, costs, 1e9) == ["a", "b", "c"]
    with pytest.raises(KeyError):
        choose_splits({"x": 1.0}, costs, 10)
    with pytest.raises(ValueError):
        choose_splits(sens, costs, -1)


def test_costs_and_sizes_follow_the_accounting_convention():
    model = tiny_ternary_student()
    cfg = model.config
    costs = split_costs(model)
    assert list(costs) == splittable_layers(model)
    assert costs["encoder.layers.0.linear1"] == 32 * 64 / 8 + 4 * 64
    assert costs["encoder.layers.0.linear2"] == 64 * 32 / 8 + 4 * 32
    assert costs["embeddings.word_embeddings"] == 100 * 32 / 8 + 4 * 100
    assert model_size_bytes(model) == pytest.approx(size_mib(cfg, "2-2-4") * 2**20)
    base = model_size_bytes(model, as_binary=True)
    assert base == pytest.approx(size_mib(cfg, "1-1-4") * 2**20)
    split_ternary_model(model)
    assert model_size_bytes(model) == pytest.approx(base + sum(costs.values()))
    assert model_size_bytes(model, as_binary=True) == pytest.approx(base)


def test_proxy_sensitivities():
    model = tiny_ternary_student()
    rel = sensitivity_by_proxy(model)
    assert list(rel) == splittable_layers(model)
    assert all(0.0 < u < 1.0 for u in rel.values())
    ab = sensitivity_by_proxy(model, names=["pooler.dense"], kind="absolute")
    assert list(ab) == ["pooler.dense"] and ab["pooler.dense"] > 0
    with pytest.raises(ValueError):
        sensitivity_by_proxy(model, kind="other")
    with pytest.raises(ValueError):
        sensitivity_by_proxy(model, names=["classifier"])


def test_metric_sensitivity_hook_restores_the_model():
    model = tiny_ternary_student()
    ids = batch()
    ternary = model(ids).numpy()
    names = ["encoder.layers.0.linear1", "pooler.dense"]
    calls = []

    def metric(m):  # higher is better: closeness to the ternary logits
        calls.append(1)
        return -float(np.abs(m(ids).numpy() - ternary).mean())

    sens = sensitivity_by_metric(model, metric, names)
    assert list(sens) == names and len(calls) == len(names) + 1
    assert all(np.isfinite(u) for u in sens.values())
    assert sensitivity_by_proxy(model, names=names, metric_fn=metric) == pytest.approx(sens)
    np.testing.assert_array_equal(model(ids).numpy(), ternary)  # quantizers swapped back
    assert splittable_layers(model)[0] == "embeddings.word_embeddings"


def test_plan_respects_the_budget_and_reports():
    model = tiny_ternary_student()
    base = model_size_bytes(model, as_binary=True)
    costs = split_costs(model)
    assert plan_adaptive_split(model, base / 2**20).chosen == []
    full = plan_adaptive_split(model, (base + sum(costs.values())) / 2**20)
    assert full.chosen == splittable_layers(model)
    budget_mb = (base + 1000) / 2**20
    sens = {n: float(i + 1) for i, n in enumerate(costs)}
    plan = plan_adaptive_split(model, budget_mb, sensitivities=sens)
    assert plan.extra_bytes <= 1000 and plan.total_bytes <= budget_mb * 2**20
    units = [int(costs[n]) for n in costs]
    best, _ = knapsack_01(list(sens.values()), units, 1000)
    assert plan.value == pytest.approx(best)
    assert "split " in plan.summary() and "binary" in plan.summary()
    with pytest.raises(ValueError, match="below"):
        plan_adaptive_split(model, base / 2**20 - 0.001)
    split_ternary_model(model, layers=plan.chosen)
    assert model_size_bytes(model) == pytest.approx(plan.total_bytes)
