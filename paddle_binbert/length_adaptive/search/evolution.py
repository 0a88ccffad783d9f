"""The evolutionary search over length configurations: Pareto front, mutation, crossover, pick.

Length-Adaptive Transformer (Kim & Cho, ACL 2021), section "Evolutionary search"; Dynamic-TinyBERT
(Guskin et al., 2021) ran this step with SigOpt, here it runs locally. Nothing here touches a model:
the search calls ``evaluate(config)`` and ``macs_of(config)``, so it runs on any scoring function.

A length configuration is a non-increasing tuple ``(l_1, ..., l_L)`` of per-layer token budgets at the
input length ``N`` (``l_0 = N``); every budget is at least ``min_length`` (``m``).

* Initial population (:func:`initial_population`): ``population_size`` configurations spread evenly
  in MACs between the cost bounds (one per equal-width MACs bin, from a large pool of random
  LengthDrop samples), plus the full model ``(N, ..., N)``.
* Each of ``evo_iter`` iterations (:func:`evolutionary_search`): parents = the Pareto front
  (:func:`pareto_front`: maximal score, minimal cost) of everything evaluated so far;
  ``mutation_size`` mutants (:func:`mutate`: each ``l_i`` resampled uniformly in
  ``[l_{i+1}, l_{i-1}]`` with probability ``mutation_prob``, ``l_{L+1} = m``) and
  ``crossover_size`` children (:func:`crossover`: ``ceil((a_i + b_i) / 2)``), new and within the bounds.
* Pick (:func:`pick_config`): the cheapest configuration whose score is at least the full model's
  minus the tolerance.

The cost bounds are fractions of the full model's MACs; the Pareto front and the pick use
:attr:`EvolutionConfig.cost` (MACs, or the measured latency). One seed fixes every random draw, so
the same seed and the same scores give the same candidates in the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..lengthdrop import sample_length_config

__all__ = [
    "COSTS",
    "Config",
    "EvolutionConfig",
    "Record",
    "config_key",
    "cost_field",
    "crossover",
    "evolutionary_search",
    "initial_population",
    "mutate",
    "pareto_front",
    "pick_config",
]

#: a length configuration: one token budget per layer
Config = Tuple[int, ...]
#: an evaluated configuration: ``config`` (list), ``score``, ``macs``, ``latency_ms`` (and ``metrics``)
Record = Dict[str, Any]
#: what a configuration's cost can be
COSTS = ("macs", "latency")


@dataclass
class EvolutionConfig:
    """Settings of :func:`evolutionary_search` (the ``search-length`` flags of the same names).

    Attributes:
        population_size: size of the initial population, spread in MACs.
        evo_iter: number of evolution iterations.
        mutation_size: mutants per iteration, from the Pareto front.
        crossover_size: crossover children per iteration.
        mutation_prob: probability of resampling each layer's budget in a mutation.
        min_length: smallest budget of any layer.
        min_cost_ratio: lower bound of a candidate's MACs, as a fraction of the full model's.
        max_cost_ratio: upper bound of a candidate's MACs, as a fraction of the full model's.
        cost: ``"macs"`` or ``"latency"``: the cost of the Pareto front (and of the pick).
        seed: seed of every random draw of the search.
    """

    population_size: int = 16
    evo_iter: int = 10
    mutation_size: int = 8
    crossover_size: int = 8
    mutation_prob: float = 0.5
    min_length: int = 2
    min_cost_ratio: float = 0.0
    max_cost_ratio: float = 1.0
    cost: str = "macs"
    seed: int = 42


def config_key(config: Sequence[int]) -> str:
    """``(64, 60, 48)`` -> ``"64-60-48"`` (cache key and table label)."""
    return "-".join(str(int(v)) for v in config)


def cost_field(cost: str) -> str:
    """The record field of a cost: ``"latency"`` -> ``"latency_ms"``, ``"macs"`` -> ``"macs"``."""
    return "latency_ms" if cost == "latency" else "macs"


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> List[int]:
    """Indices of the non-dominated points (minimise cost, maximise score), by increasing cost.

    Point ``p`` is dominated iff some ``q`` has ``cost_q <= cost_p``, ``score_q >= score_p`` and one of
    the two strictly; exact duplicates of a non-dominated point are all kept.
    """
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i]))
    front: List[int] = []
    best, last = -math.inf, None
    for i in order:
        point = (costs[i], scores[i])
        if scores[i] > best:
            front.append(i)
            best, last = scores[i], point
        elif point == last:
            front.append(i)
    return front


def mutate(
    config: Sequence[int], seq_length: int, rng: np.random.Generator, prob: float = 0.5, min_length: int = 2
) -> Config:
    """Each ``l_i`` resampled with probability ``prob`` uniformly in ``[l_{i+1}, l_{i-1}]`` (neighbours of
    the partly mutated configuration; ``l_0`` = ``seq_length``, ``l_{L+1}`` = ``min_length``); the
    result stays non-increasing."""
    out = list(config)
    for i in range(len(out)):
        if rng.random() < prob:
            upper = seq_length if i == 0 else out[i - 1]
            lower = min_length if i == len(out) - 1 else out[i + 1]
            lower = min(lower, upper)
            out[i] = int(rng.integers(lower, upper + 1))
    return tuple(out)


def crossover(a: Sequence[int], b: Sequence[int]) -> Config:
    """Elementwise ``ceil((a_i + b_i) / 2)`` (non-increasing when both parents are)."""
    return tuple((int(x) + int(y) + 1) // 2 for x, y in zip(a, b))


def initial_population(
    size: int,
    seq_length: int,
    num_layers: int,
    macs_of: Callable[[Config], int],
    bounds: Tuple[float, float],
    rng: np.random.Generator,
    min_length: int = 2,
    pool_size: Optional[int] = None,
) -> List[Config]:
    """``size`` distinct configurations spread evenly in MACs within ``bounds``: the ``[lo, hi]`` range
    of a pool of random LengthDrop samples (ratio bound drawn uniformly in [0, 1) per sample) is cut
    into ``size`` equal bins and the unused pool member nearest each bin centre is taken."""
    pool_size = pool_size or max(200, 20 * size)
    pool = {sample_length_config(seq_length, num_layers, float(r), rng, min_length) for r in rng.random(pool_size)}
    pool.add(tuple([min_length] * num_layers))
    pool_sorted = sorted(pool)
    costs = np.array([macs_of(c) for c in pool_sorted], dtype=float)
    inside = [i for i, c in enumerate(costs) if bounds[0] <= c <= bounds[1]]
    if not inside:
        return []
    lo, hi = costs[inside].min(), costs[inside].max()
    centres = lo + (np.arange(size) + 0.5) * (hi - lo) / size
    chosen: List[Config] = []
    used = set()
    for centre in centres:
        candidates = sorted((abs(costs[i] - centre), i) for i in inside if i not in used)
        if not candidates:
            break
        used.add(candidates[0][1])
        chosen.append(pool_sorted[candidates[0][1]])
    return chosen


def evolutionary_search(
    evaluate: Callable[[Config], Record],
    macs_of: Callable[[Config], int],
    seq_length: int,
    num_layers: int,
    config: Optional[EvolutionConfig] = None,
    progress: Any = None,
) -> List[Record]:
    """Run the search (module docstring) and return the records of this run, full model first.

    Args:
        evaluate: ``evaluate(config)`` returns the record of a configuration, with ``score``, ``macs``
            and ``latency_ms`` (typically from a cache). Called once per distinct candidate.
        macs_of: MACs of a configuration (the initial spread and the cost bounds use them).
        seq_length: the input length ``N`` the budgets are counted at.
        num_layers: ``L``.
        config: the search settings (defaults: :class:`EvolutionConfig`).
        progress: a tqdm bar (or anything with ``update(n)``), advanced once per evaluation.
    """
    settings = config if config is not None else EvolutionConfig()
    rng = np.random.default_rng(settings.seed)
    min_length = settings.min_length
    full = tuple([seq_length] * num_layers)
    full_macs = macs_of(full)
    bounds = (settings.min_cost_ratio * full_macs, settings.max_cost_ratio * full_macs)
    seen: Dict[Config, Record] = {}

    def run(candidate: Config) -> None:
        if candidate not in seen:
            seen[candidate] = evaluate(candidate)
            if progress is not None:
                progress.update(1)

    def in_bounds(candidate: Config) -> bool:
        return bounds[0] <= macs_of(candidate) <= bounds[1]

    run(full)
    for candidate in initial_population(
        settings.population_size, seq_length, num_layers, macs_of, bounds, rng, min_length
    ):
        run(candidate)
    cost_key = cost_field(settings.cost)
    for _ in range(settings.evo_iter):
        candidates = [c for c in seen if in_bounds(c) or c == full]
        front_idx = pareto_front([seen[c][cost_key] for c in candidates], [seen[c]["score"] for c in candidates])
        parents = [candidates[i] for i in front_idx]
        new: List[Config] = []
        for size, make in ((settings.mutation_size, "mutation"), (settings.crossover_size, "crossover")):
            made, attempts = 0, 0
            while made < size and attempts < 50 * max(size, 1):
                attempts += 1
                if make == "mutation":
                    parent = parents[int(rng.integers(len(parents)))]
                    child = mutate(parent, seq_length, rng, settings.mutation_prob, min_length)
                else:
                    pool = parents if len(parents) >= 2 else list(seen)
                    if len(pool) < 2:
                        break
                    i, j = rng.choice(len(pool), size=2, replace=False)
                    child = crossover(pool[int(i)], pool[int(j)])
                if child not in seen and child not in new and in_bounds(child):
                    new.append(child)
                    made += 1
        for child in new:
            run(child)
    return list(seen.values())


def pick_config(records: List[Record], full_score: float, tolerance: float = 0.01, cost: str = "macs") -> Record:
    """The cheapest record (by ``cost``: ``macs`` or ``latency``, ties broken by the other) whose score is
    ``>= full_score - tolerance``."""
    primary = cost_field(cost)
    secondary = "macs" if cost == "latency" else "latency_ms"
    eligible = [r for r in records if r["score"] >= full_score - tolerance - 1e-12]
    if not eligible:
        raise ValueError("no configuration is within the tolerance of the full model (is the full model evaluated?)")
    return min(eligible, key=lambda r: (r[primary], r[secondary]))
