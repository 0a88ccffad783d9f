"""Adaptive splitting (Bai et al., ACL 2021, "BinaryBERT"; specs/splitting.md): split only the matrices
that matter most under a size budget.

For every ternary matrix z of the student: a sensitivity u_z (how much keeping z ternary, i.e.
splitting it, helps) and a cost c_z (extra bytes of splitting it).  With C0 the size of the
all-binary model and C the budget, the chosen set s solves the 0/1 knapsack

    maximise  sum_z u_z s_z   subject to   sum_z c_z s_z <= C - C0,   s in {0, 1}^Z,

solved exactly by dynamic programming over integer costs (:func:`scale_costs`,
:func:`knapsack_01`).  The chosen matrices are split by
:func:`~paddle_binbert.splitting.split_ternary_model` (``layers=``), the others become plain
``bwn`` binary matrices.

Sizes follow ``paddle_binbert.accounting`` (specs/accounting_and_engine.md): a k-bit matrix
stores ``numel * k / 8`` bytes plus an FP32 scale vector (``alpha[out]`` of a linear,
``alpha[vocab]`` of the word embedding); every other parameter is FP32; the scalar activation
quantizer parameters are not counted.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ..models.quantize import get_bert
from ..quant.functional import bwn_weight, twn_weight
from ..quant.layers import QuantEmbedding, QuantLinear
from ..quant.quantizers import Quantizer, get_quantizer
from .tws import SplitQuantEmbedding, SplitQuantLinear, splittable_layers

__all__ = [
    "MetricFn",
    "SplitPlan",
    "scale_costs",
    "knapsack_01",
    "split_costs",
    "model_size_bytes",
    "sensitivity_by_proxy",
    "sensitivity_by_metric",
    "choose_splits",
    "plan_adaptive_split",
]

MetricFn = Callable[[nn.Layer], float]
MIB = float(2**20)
FP_BYTES = 4
MAX_BUDGET_UNITS = 10_000_000  # the DP keeps a (items x units) table of booleans


# --------------------------------------------------------------------------------------------
# Exact 0/1 knapsack
# --------------------------------------------------------------------------------------------


def scale_costs(costs: Sequence[float], resolution: Optional[float] = None) -> Tuple[List[int], float]:
    """Integer costs for :func:`knapsack_01`: ``units_z = ceil(c_z / resolution)``.

    Rounding up keeps every set that fits in ``floor(budget / resolution)`` units feasible for
    the real costs: sum_z c_z <= resolution * sum_z units_z <= budget.  With ``resolution=None``:
    integral costs (bytes) use their greatest common divisor, which is exact (every feasible set
    keeps fitting, the knapsack optimum is the true optimum); other costs use max(c) / 1000
    (feasible, optimal up to that granularity).

    Returns ``(units, resolution)``; the budget converts with ``floor(budget / resolution)``.
    """
    c = np.asarray(list(costs), dtype=np.float64)
    if c.size and (not np.all(np.isfinite(c)) or np.any(c < 0)):
        raise ValueError(f"costs must be finite and >= 0, got {c.tolist()}")
    if resolution is None:
        integral = np.all(np.abs(c - np.round(c)) <= 1e-9 * np.maximum(1.0, np.abs(c)))
        positive = np.round(c[c > 0]).astype(np.int64) if integral else c[c > 0]
        if positive.size == 0:
            resolution = 1.0
        elif integral:
            resolution = float(np.gcd.reduce(positive))
        else:
            resolution = float(positive.max()) / 1000.0
    if not resolution > 0:
        raise ValueError(f"resolution must be > 0, got {resolution}")
    units = [int(math.ceil(v / resolution - 1e-9)) for v in c]
    return units, float(resolution)


def _budget_units(budget: float, resolution: float) -> int:
    return int(math.floor(budget / resolution + 1e-9))


def knapsack_01(values: Sequence[float], costs: Sequence[int], budget: int) -> Tuple[float, List[int]]:
    """Exact 0/1 knapsack by dynamic programming over integer costs.

    best_i(c) = max(best_{i-1}(c), best_{i-1}(c - c_i) + v_i), best_0 = 0: the maximum of
    sum_i v_i s_i subject to sum_i c_i s_i <= budget, s in {0, 1}^n, in O(n * budget).
    Items with v_i <= 0 or c_i > budget are never taken; zero-cost items with v_i > 0 always
    are; ties keep the item out (the earliest optimal set of fewest items wins).

    Args:
        values: item values (finite floats, may be 0 or negative).
        costs: non-negative integer costs (see :func:`scale_costs` for float costs).
        budget: non-negative integer capacity.

    Returns:
        ``(best_value, chosen_indices)`` with the indices sorted increasingly.
    """
    vals = [float(v) for v in values]
    if any(not math.isfinite(v) for v in vals):
        raise ValueError(f"values must be finite, got {vals}")
    if len(costs) != len(vals):
        raise ValueError(f"{len(vals)} values but {len(costs)} costs")
    ints = [int(c) for c in costs]
    if any(int(c) != c or c < 0 for c in costs):
        raise ValueError(f"costs must be non-negative integers, got {list(costs)}")
    if int(budget) != budget or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget}")
    budget = min(int(budget), sum(ints))  # a capacity above the total cost changes nothing
    if budget > MAX_BUDGET_UNITS:
        raise ValueError(f"budget of {budget} units is too fine for the DP table: use a coarser resolution")

    best = np.zeros(budget + 1, dtype=np.float64)  # best[c]: max value with total cost <= c
    take = np.zeros((len(vals), budget + 1), dtype=bool)
    for i, (v, c) in enumerate(zip(vals, ints)):
        if v <= 0 or c > budget:
            continue
        candidate = best[: budget + 1 - c] + v
        improve = candidate > best[c:]
        take[i, c:] = improve
        best[c:] = np.where(improve, candidate, best[c:])

    chosen, capacity = [], budget
    for i in range(len(vals) - 1, -1, -1):
        if take[i, capacity]:
            chosen.append(i)
            capacity -= ints[i]
    return float(best[budget]), sorted(chosen)


# --------------------------------------------------------------------------------------------
# Costs and sizes
# --------------------------------------------------------------------------------------------


def _matrix_bytes(numel: int, bits: int, scales: int) -> float:
    return numel * bits / 8.0 + (scales * FP_BYTES if bits < 32 else 0)


def _scales_of(layer: nn.Layer) -> int:
    if isinstance(layer, (QuantLinear, SplitQuantLinear)):
        return layer.out_features
    return layer.num_embeddings


def split_costs(model: nn.Layer) -> Dict[str, float]:
    """Extra bytes of splitting each ternary matrix z of ``model`` (name -> c_z), from its shape.

    A split matrix stores two binary matrices and two scale vectors instead of one of each:
    c_z = numel / 8 + 4 * scales, with scales = out_features (linear, ``alpha[out]`` of the
    packed format) or vocab rows (word embedding).  The bias is shared (summed), no extra cost.
    """
    sublayers = dict(get_bert(model).named_sublayers())
    return {
        name: _matrix_bytes(int(np.prod(sublayers[name].weight.shape)), 1, _scales_of(sublayers[name]))
        for name in splittable_layers(model)
    }


def model_size_bytes(model: nn.Layer, as_binary: bool = False) -> float:
    """Storage of ``model`` in bytes, following ``paddle_binbert.accounting``.

    Each quantized matrix: numel * bits / 8 + 4 * scales (bits of its weight quantizer); a split
    matrix counts two binary matrices; everything else (biases, LayerNorms, position / type
    embeddings, the head) at 32 bits; activation quantizer parameters are ignored.
    ``as_binary=True`` counts every quantized matrix as ONE 1-bit matrix: the size C0 of the
    unsplit all-binary model (the base of the split budget).
    """
    quantizer_params = set()
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, Quantizer):
            quantizer_params.update(id(p) for p in layer.parameters())
    counted, total = set(), 0.0
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, (QuantLinear, QuantEmbedding)) and layer.weight_quantizer is not None:
            bits = 1 if as_binary else layer.weight_quantizer.bits
            total += _matrix_bytes(int(np.prod(layer.weight.shape)), bits, _scales_of(layer))
            counted.add(id(layer.weight))
        elif isinstance(layer, (SplitQuantLinear, SplitQuantEmbedding)):
            copies = 1 if as_binary else 2
            bits = 1 if as_binary or layer.weight_quantizer is None else layer.weight_quantizer.bits
            total += copies * _matrix_bytes(int(np.prod(layer.weight1.shape)), bits, _scales_of(layer))
            counted.update((id(layer.weight1), id(layer.weight2)))
    for p in model.parameters():
        if id(p) not in counted and id(p) not in quantizer_params:
            total += int(np.prod(p.shape)) * FP_BYTES
    return total


# --------------------------------------------------------------------------------------------
# Sensitivities
# --------------------------------------------------------------------------------------------


def _ternary_layers(model: nn.Layer, names: Optional[Sequence[str]]) -> Dict[str, nn.Layer]:
    sublayers = dict(get_bert(model).named_sublayers())
    candidates = splittable_layers(model)
    names = candidates if names is None else list(names)
    unknown = sorted(set(names) - set(candidates))
    if unknown:
        raise ValueError(f"not ternary layers of the model: {unknown}; splittable: {candidates}")
    return {name: sublayers[name] for name in names}


def sensitivity_by_proxy(
    model: nn.Layer,
    names: Optional[Sequence[str]] = None,
    kind: str = "relative",
    metric_fn: Optional[MetricFn] = None,
) -> Dict[str, float]:
    """Per-matrix sensitivity u_z of a ternary student, by a cheap weight-space proxy.

    Splitting z keeps twn(W_z) (exactly, by TWS); not splitting it replaces twn(W_z) by
    bwn(W_z).  The proxy is the size of that change of the matrix the layer multiplies with:

    - ``kind="relative"`` (default): u_z = ||twn(W_z) - bwn(W_z)||_F / ||twn(W_z)||_F, the relative
      perturbation of the layer output x @ Q(W) for isotropic inputs; scale-free, so matrices of
      any shape and learned magnitude compare;
    - ``kind="absolute"``: u_z = ||twn(W_z) - bwn(W_z)||_F^2, the total squared distortion (grows
      with numel: the knapsack then compares distortion per byte).

    BinaryBERT defines u_z as the dev-metric gain of keeping z ternary with the rest binary
    (adaptive splitting), which needs |Z| + 1 evaluations; pass ``metric_fn`` to get exactly that
    (:func:`sensitivity_by_metric`).  ``names`` defaults to every ternary matrix.
    """
    if metric_fn is not None:
        return sensitivity_by_metric(model, metric_fn, names)
    if kind not in ("relative", "absolute"):
        raise ValueError(f"kind must be 'relative' or 'absolute', got {kind!r}")
    out = {}
    with paddle.no_grad():
        for name, layer in _ternary_layers(model, names).items():
            w = layer.weight.detach().astype("float64")
            axis = layer.weight_quantizer.axis
            t = twn_weight(w, axis=axis)
            err = float(paddle.linalg.norm(t - bwn_weight(w, axis=axis)))
            if kind == "absolute":
                out[name] = err**2
            else:
                ref = float(paddle.linalg.norm(t))
                out[name] = err / ref if ref > 0 else 0.0
    return out


@contextlib.contextmanager
def _binarized(layers: Dict[str, nn.Layer]) -> Iterator[Dict[str, Tuple[Quantizer, Quantizer]]]:
    """Temporarily give every layer a ``bwn`` quantizer; yields name -> (twn, bwn) to toggle."""
    swaps = {
        name: (layer.weight_quantizer, get_quantizer("bwn", axis=layer.weight_quantizer.axis))
        for name, layer in layers.items()
    }
    try:
        for name, layer in layers.items():
            layer.weight_quantizer = swaps[name][1]
        yield swaps
    finally:
        for name, layer in layers.items():
            layer.weight_quantizer = swaps[name][0]


def sensitivity_by_metric(
    model: nn.Layer, metric_fn: MetricFn, names: Optional[Sequence[str]] = None
) -> Dict[str, float]:
    """BinaryBERT's sensitivity (adaptive splitting): u_z = metric(z ternary, rest binary) - metric(all binary).

    ``metric_fn(model) -> float`` (higher is better, e.g. dev accuracy) is called |Z| + 1 times.
    Keeping z ternary is what splitting z computes (TWS is exact), so the model is not split:
    its ``twn`` quantizers are swapped for ``bwn`` ones and back; the model is unchanged afterwards.
    """
    layers = _ternary_layers(model, names)
    out = {}
    with _binarized(layers) as swaps:
        base = float(metric_fn(model))
        for name, layer in layers.items():
            layer.weight_quantizer = swaps[name][0]
            try:
                out[name] = float(metric_fn(model)) - base
            finally:
                layer.weight_quantizer = swaps[name][1]
    return out


# --------------------------------------------------------------------------------------------
# Choosing and planning
# --------------------------------------------------------------------------------------------


def choose_splits(
    sensitivities: Dict[str, float],
    costs: Dict[str, float],
    budget_bytes: float,
    resolution: Optional[float] = None,
) -> List[str]:
    """The matrices to split: argmax_s sum u_z s_z subject to sum c_z s_z <= budget_bytes (0/1 knapsack).

    ``budget_bytes`` is the extra size allowed on top of the all-binary model (C - C0); costs are
    turned into integers by :func:`scale_costs` (exact for byte costs).  Returns the chosen names
    in the order of ``sensitivities``.
    """
    missing = sorted(set(sensitivities) - set(costs))
    if missing:
        raise KeyError(f"no cost for {missing}")
    if budget_bytes < 0:
        raise ValueError(f"budget_bytes={budget_bytes} < 0: the budget is below the unsplit binary model")
    names = list(sensitivities)
    units, resolution = scale_costs([costs[n] for n in names], resolution)
    _, chosen = knapsack_01([sensitivities[n] for n in names], units, _budget_units(budget_bytes, resolution))
    return [names[i] for i in chosen]


@dataclass
class SplitPlan:
    """The outcome of :func:`plan_adaptive_split` (sizes in bytes)."""

    chosen: List[str]
    sensitivities: Dict[str, float]
    costs: Dict[str, float]
    base_bytes: float
    budget_bytes: float
    extra_bytes: float = field(init=False)
    total_bytes: float = field(init=False)
    value: float = field(init=False)

    def __post_init__(self) -> None:
        self.extra_bytes = float(sum(self.costs[n] for n in self.chosen))
        self.total_bytes = self.base_bytes + self.extra_bytes
        self.value = float(sum(self.sensitivities[n] for n in self.chosen))

    def summary(self) -> str:
        """A human-readable report: the assignment (split / binary per matrix) and the sizes."""
        lines = [
            f"adaptive splitting: {len(self.chosen)}/{len(self.sensitivities)} matrices split, "
            f"size {self.total_bytes / MIB:.3f} MiB (binary {self.base_bytes / MIB:.3f} + split "
            f"{self.extra_bytes / MIB:.3f}; budget {self.budget_bytes / MIB:.3f}), value {self.value:.6g}"
        ]
        chosen = set(self.chosen)
        for name, u in self.sensitivities.items():
            state = "split " if name in chosen else "binary"
            lines.append(f"  {state} {name}  u={u:.6g}  cost={self.costs[name] / MIB:.4f} MiB")
        return "\n".join(lines)


def plan_adaptive_split(
    model: nn.Layer,
    budget_mb: float,
    sensitivities: Optional[Dict[str, float]] = None,
    metric_fn: Optional[MetricFn] = None,
    resolution: Optional[float] = None,
) -> SplitPlan:
    """Plan adaptive splitting of a ternary student under a total size budget (``--split_budget_mb``).

    C0 = :func:`model_size_bytes` (``as_binary=True``), c_z = :func:`split_costs`, u_z = the given
    ``sensitivities`` or :func:`sensitivity_by_proxy` (``metric_fn`` = the paper's measured gain);
    the chosen set maximises sum u_z subject to C0 + sum c_z <= budget_mb * 2^20.  Apply it with
    ``split_ternary_model(model, layers=plan.chosen)``.
    """
    costs = split_costs(model)
    if sensitivities is None:
        sensitivities = sensitivity_by_proxy(model, metric_fn=metric_fn)
    base = model_size_bytes(model, as_binary=True)
    budget = budget_mb * MIB
    if budget < base:
        raise ValueError(f"split budget {budget_mb} MiB is below the all-binary model ({base / MIB:.3f} MiB)")
    chosen = choose_splits(sensitivities, costs, budget - base, resolution)
    return SplitPlan(
        chosen=chosen, sensitivities=dict(sensitivities), costs=costs, base_bytes=base, budget_bytes=budget
    )
