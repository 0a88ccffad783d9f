"""Evolutionary search of length configurations (score vs cost Pareto front), resumable.

Length-Adaptive Transformer (Kim & Cho, ACL 2021), section "Evolutionary search"; Dynamic-TinyBERT
(Guskin et al., 2021) ran this step with SigOpt, here it runs locally.

* Cost: MACs of the configuration on a ``max_seq_length`` input (:mod:`.costs`) and the measured
  latency of a ``[latency_batch_size, max_seq_length]`` forward pass on this machine. The initial
  spread and the cost bounds use MACs; the Pareto front and the pick use ``--cost`` (MACs by default).
* Initial population: ``population_size`` configurations spread evenly in MACs between the bounds
  (one per equal-width MACs bin, from a large pool of random LengthDrop samples), plus the full model.
* Each of ``evo_iter`` iterations: parents = the Pareto front (maximal score, minimal cost) of
  everything evaluated so far; ``mutation_size`` mutants (each ``l_i`` resampled uniformly in
  ``[l_{i+1}, l_{i-1}]`` with probability ``mutation_prob``, ``l_0`` = sequence length,
  ``l_{L+1}`` = minimum length) and ``crossover_size`` children (``ceil((a_i + b_i) / 2)``), new and
  within the bounds.
* Pick: the cheapest (by ``--cost``) configuration whose score is at least the full model's minus
  ``--tolerance`` ("within 1 point": 0.01 for GLUE metrics in [0, 1], 1.0 for SQuAD F1 in percent).

Tasks: GLUE classification checkpoints (:class:`GlueDevEvaluator`, dev split of ``--data_dir``, the
task's main metric) and SQuAD v1.1 ``BertForQuestionAnswering`` checkpoints (:class:`SquadDevEvaluator`,
``--task_name squad --predict_file FILE``: sliding windows of ``max_seq_length``, Drop-and-Restore
so every token gets start/end logits, the project's SQuAD post-processing and official EM / F1; the
score is F1).

Evaluations are cached in ``OUTPUT_DIR/search_cache.json`` (rewritten atomically after each one);
the search is seeded, so a rerun replays the same candidates and only evaluates the missing ones.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.sampler import dev_subset
from ..engine.layout import parse_length_config
from ..io_utils import write_json_atomic, write_text_atomic
from ..train import run_setup
from ..train.arguments import Arguments, FlagError

logger = logging.getLogger(__name__)

__all__ = [
    "config_key",
    "parse_length_config",
    "pareto_front",
    "mutate",
    "crossover",
    "initial_population",
    "SearchCache",
    "GlueDevEvaluator",
    "SquadDevEvaluator",
    "evolutionary_search",
    "pick_config",
    "SearchArguments",
    "validate_search_args",
    "run_search",
    "write_reports",
    "build_parser",
    "main",
]

Config = Tuple[int, ...]
Record = Dict[str, Any]
CACHE_FILE = "search_cache.json"


def config_key(config: Sequence[int]) -> str:
    """``(64, 60, 48)`` -> ``"64-60-48"`` (cache key and table label)."""
    return "-".join(str(int(v)) for v in config)


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
    from .lengthdrop import sample_length_config

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


class SearchCache:
    """Evaluated configurations in ``OUTPUT_DIR/search_cache.json``, rewritten atomically per entry.

    ``meta`` describes what the scores mean (checkpoint, task, length, examples); a cache written with
    other ``meta`` is refused (start over with ``overwrite=True``).
    """

    def __init__(self, output_dir: str, meta: Dict[str, Any], overwrite: bool = False) -> None:
        self.path = os.path.join(output_dir, CACHE_FILE)
        self.meta = meta
        self.entries: Dict[str, Record] = {}
        if os.path.isfile(self.path) and not overwrite:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"{self.path} is not a readable search cache ({err}); pass --overwrite") from err
            if data.get("meta") != meta:
                old = data.get("meta") or {}
                diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
                raise ValueError(
                    f"{self.path} was written for another search (cached vs now: {diff}); "
                    "pass --overwrite to start over or choose another --output_dir"
                )
            self.entries = data.get("entries", {})

    def __contains__(self, config: Sequence[int]) -> bool:
        return config_key(config) in self.entries

    def get(self, config: Sequence[int]) -> Optional[Record]:
        """The cached record of ``config`` or None."""
        return self.entries.get(config_key(config))

    def put(self, record: Record) -> None:
        """Store ``record`` (with a ``config`` list) and rewrite the file atomically."""
        self.entries[config_key(record["config"])] = record
        write_json_atomic(self.path, {"meta": self.meta, "entries": self.entries}, indent=1)


class _BatchedDevEvaluator:
    """Shared part of the dev evaluators: the dev inputs, stored padded to ``max_seq_length``, run in
    batches through :func:`length_adaptive_forward`, each batch trimmed to its longest sequence.

    Budgets are absolute token counts at ``max_seq_length`` and ``n_i = min(l_i, n_{i-1})``, so the
    trimming changes no output on the real tokens (padding is never kept over a real token and is
    masked as a key; tests/length_adaptive/test_drop_restore.py) and saves the padding's work.

    Subclasses fill :attr:`input_ids`, :attr:`token_type_ids`, :attr:`attention_mask` (``[n, max_seq_length]``
    int64 arrays), set :attr:`metric` and turn the outputs of :meth:`_outputs` into metrics in ``__call__``.
    """

    metric: str = ""

    def __init__(self, model: Any, arrays: Dict[str, np.ndarray], batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.input_ids = arrays["input_ids"]
        self.token_type_ids = arrays["token_type_ids"]
        self.attention_mask = arrays["attention_mask"]

    def _outputs(self, config: Optional[Sequence[int]]):
        """Yield the :class:`~.drop_restore.LengthAdaptiveOutput` of every batch, in order (eval mode, no
        grad); token-level outputs are ``[batch, longest sequence of the batch]``."""
        import paddle
        from tqdm.auto import tqdm

        from .drop_restore import length_adaptive_forward

        self.model.eval()
        starts = range(0, len(self.input_ids), self.batch_size)
        label = "full" if config is None else config_key(config)
        with paddle.no_grad():
            for start in tqdm(starts, desc=f"dev {label}", unit="batch", leave=False):
                sl = slice(start, start + self.batch_size)
                width = max(int(self.attention_mask[sl].sum(axis=1).max()), 1)
                arrays = (self.input_ids, self.token_type_ids, self.attention_mask)
                tensors = [paddle.to_tensor(a[sl, :width]) for a in arrays]
                yield length_adaptive_forward(self.model, *tensors, length_config=config)


class GlueDevEvaluator(_BatchedDevEvaluator):
    """Scores a length configuration on a GLUE dev split: inputs truncated to ``max_seq_length`` (budgets
    are absolute token counts at that length), batched, :func:`length_adaptive_forward`, GLUE metrics.

    ``__call__(config)`` returns the metrics dict; :attr:`metric` names the main one.
    """

    def __init__(
        self,
        model: Any,
        features: List[Dict[str, Any]],
        task_name: str,
        max_seq_length: int,
        pad_token_id: int = 0,
        batch_size: int = 32,
    ) -> None:
        from ..data.metrics import main_metric_name

        if not features:
            raise ValueError("the dev set is empty")
        n = len(features)
        arrays = {
            "input_ids": np.full((n, max_seq_length), pad_token_id, dtype="int64"),
            "token_type_ids": np.zeros((n, max_seq_length), dtype="int64"),
            "attention_mask": np.zeros((n, max_seq_length), dtype="int64"),
        }
        for i, feat in enumerate(features):
            ids = feat["input_ids"][:max_seq_length]
            arrays["input_ids"][i, : len(ids)] = ids
            arrays["token_type_ids"][i, : len(ids)] = feat["token_type_ids"][: len(ids)]
            arrays["attention_mask"][i, : len(ids)] = 1
        super().__init__(model, arrays, batch_size)
        self.task_name = task_name
        self.metric = main_metric_name(task_name)
        self.labels = np.array([feat["labels"] for feat in features])

    def __call__(self, config: Optional[Sequence[int]]) -> Dict[str, float]:
        from ..data.metrics import compute_glue_metrics

        logits = [out.logits.numpy() for out in self._outputs(config)]
        return compute_glue_metrics(self.task_name, np.concatenate(logits), self.labels)


class SquadDevEvaluator(_BatchedDevEvaluator):
    """Scores a length configuration on SQuAD v1.1 questions with a ``BertForQuestionAnswering``.

    The sliding windows of ``data`` (a :class:`~paddle_binbert.data.squad.datasets.SquadEvalData`, e.g. from
    :func:`~paddle_binbert.data.squad.datasets.load_squad_eval`, at most ``max_seq_length`` tokens: budgets are
    absolute token counts at that length) run in batches of ``batch_size`` windows through
    :func:`length_adaptive_forward`, which restores the dropped tokens so every position gets a start
    and end logit. :func:`~paddle_binbert.data.squad.postprocess_predictions` (``n_best_size``,
    ``max_answer_length``) picks each question's answer over all its windows and
    :func:`~paddle_binbert.data.squad.squad_evaluate` scores it with the official v1.1 rules.

    ``__call__(config)`` returns ``{"exact_match", "f1"}`` in percent (as everywhere else in the
    project); :attr:`metric` is ``"f1"``. The answers of the last call stay in :attr:`last_predictions`.
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        max_seq_length: int,
        pad_token_id: int = 0,
        batch_size: int = 32,
        n_best_size: int = 20,
        max_answer_length: int = 30,
    ) -> None:
        from ..data.squad import collate_features

        if not data.features:
            raise ValueError("the SQuAD dev set has no window")
        super().__init__(model, collate_features(data.features, pad_token_id, max_length=max_seq_length), batch_size)
        self.data = data
        self.metric = "f1"
        self.n_best_size = n_best_size
        self.max_answer_length = max_answer_length
        self.last_predictions: Optional[Dict[str, str]] = None

    def __call__(self, config: Optional[Sequence[int]]) -> Dict[str, float]:
        from ..data.squad import postprocess_predictions, squad_evaluate

        starts, ends = [], []
        for out in self._outputs(config):  # one row per window, as wide as its batch (>= the window)
            starts.extend(out.start_logits.numpy())
            ends.extend(out.end_logits.numpy())
        predictions, _ = postprocess_predictions(
            self.data.examples,
            self.data.features,
            starts,
            ends,
            n_best_size=self.n_best_size,
            max_answer_length=self.max_answer_length,
        )
        self.last_predictions = predictions
        scores = squad_evaluate(self.data.dataset, predictions)
        return {"exact_match": float(scores["exact_match"]), "f1": float(scores["f1"])}


def evolutionary_search(
    evaluate: Callable[[Config], Record],
    macs_of: Callable[[Config], int],
    seq_length: int,
    num_layers: int,
    population_size: int = 16,
    evo_iter: int = 10,
    mutation_size: int = 8,
    crossover_size: int = 8,
    mutation_prob: float = 0.5,
    min_length: int = 2,
    cost_bounds: Tuple[float, float] = (0.0, 1.0),
    cost: str = "macs",
    seed: int = 42,
    progress: Any = None,
) -> List[Record]:
    """Run the search (module docstring); ``evaluate(config)`` returns a record with ``score``, ``macs``
    and ``latency_ms`` (typically from the cache). Returns the records of this run, full model first.

    ``cost_bounds`` are fractions of the full model's MACs. ``progress`` (a tqdm bar) is advanced
    once per evaluation.
    """
    rng = np.random.default_rng(seed)
    full = tuple([seq_length] * num_layers)
    full_macs = macs_of(full)
    bounds = (cost_bounds[0] * full_macs, cost_bounds[1] * full_macs)
    seen: Dict[Config, Record] = {}

    def run(config: Config) -> None:
        if config not in seen:
            seen[config] = evaluate(config)
            if progress is not None:
                progress.update(1)

    def in_bounds(config: Config) -> bool:
        return bounds[0] <= macs_of(config) <= bounds[1]

    run(full)
    for config in initial_population(population_size, seq_length, num_layers, macs_of, bounds, rng, min_length):
        run(config)
    cost_key = "latency_ms" if cost == "latency" else "macs"
    for _ in range(evo_iter):
        candidates = [c for c in seen if in_bounds(c) or c == full]
        front_idx = pareto_front([seen[c][cost_key] for c in candidates], [seen[c]["score"] for c in candidates])
        parents = [candidates[i] for i in front_idx]
        new: List[Config] = []
        for size, make in ((mutation_size, "mutation"), (crossover_size, "crossover")):
            made, attempts = 0, 0
            while made < size and attempts < 50 * max(size, 1):
                attempts += 1
                if make == "mutation":
                    parent = parents[int(rng.integers(len(parents)))]
                    child = mutate(parent, seq_length, rng, mutation_prob, min_length)
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
    primary = "latency_ms" if cost == "latency" else "macs"
    secondary = "macs" if cost == "latency" else "latency_ms"
    eligible = [r for r in records if r["score"] >= full_score - tolerance - 1e-12]
    if not eligible:
        raise ValueError("no configuration is within the tolerance of the full model (is the full model evaluated?)")
    return min(eligible, key=lambda r: (r[primary], r[secondary]))


COLUMNS = ("config", "macs", "macs_ratio", "latency_ms", "speedup", "score")


def _row(record: Record, full: Record) -> Dict[str, Any]:
    return {
        "config": config_key(record["config"]),
        "macs": record["macs"],
        "macs_ratio": round(record["macs"] / full["macs"], 4),
        "latency_ms": round(record["latency_ms"], 3),
        "speedup": round(full["latency_ms"] / record["latency_ms"], 3) if record["latency_ms"] > 0 else float("nan"),
        "score": round(record["score"], 5),
    }


def write_reports(
    records: List[Record], output_dir: str, metric: str, cost: str = "macs", tolerance: float = 0.01
) -> Dict[str, Any]:
    """Write ``pareto.csv``, ``pareto.md``, ``all_configs.csv``, ``pick.json`` and ``pareto.png`` (when
    matplotlib is installed) to ``output_dir``; return the pick summary. ``records[0]`` is the full model.
    Each file is written atomically (a failure leaves the previous one complete)."""
    full = records[0]
    cost_key = "latency_ms" if cost == "latency" else "macs"
    front = [records[i] for i in pareto_front([r[cost_key] for r in records], [r["score"] for r in records])]
    pick = pick_config(records, full["score"], tolerance, cost)
    front_keys = {config_key(r["config"]) for r in front}

    rows = [
        {**_row(r, full), "on_front": config_key(r["config"]) in front_keys}
        for r in sorted(records, key=lambda r: r["macs"])
    ]
    write_text_atomic(os.path.join(output_dir, "all_configs.csv"), _csv_text(list(COLUMNS) + ["on_front"], rows))
    write_text_atomic(os.path.join(output_dir, "pareto.csv"), _csv_text(list(COLUMNS), [_row(r, full) for r in front]))

    lines = [
        f"Pareto front ({metric} vs {cost}) of {len(records)} evaluated length configurations.",
        "",
        f"| config | MACs (M) | MACs / full | latency (ms) | speedup | {metric} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    table = front if any(r is full for r in front) else front + [full]
    for r in table:
        row = _row(r, full)
        mark = " **(pick)**" if r is pick else (" (full length)" if r is full else "")
        lines.append(
            f"| {row['config']}{mark} | {r['macs'] / 1e6:.2f} | {row['macs_ratio']:.3f} | {row['latency_ms']:.2f} "
            f"| {row['speedup']:.2f} | {r['score']:.4f} |"
        )
    summary = {
        "metric": metric,
        "cost": cost,
        "tolerance": tolerance,
        "full": _row(full, full),
        "pick": _row(pick, full),
        "pick_config": list(pick["config"]),
        "num_evaluated": len(records),
    }
    lines += [
        "",
        f"Pick (cheapest by {cost} within {tolerance} of the full model's {metric} {full['score']:.4f}): "
        f"`{config_key(pick['config'])}`, {metric} {pick['score']:.4f}, "
        f"{summary['pick']['macs_ratio']:.3f} of the MACs, {summary['pick']['speedup']:.2f}x latency speedup.",
    ]
    write_text_atomic(os.path.join(output_dir, "pareto.md"), "\n".join(lines) + "\n")
    summary["plot"] = _plot(records, front, pick, output_dir, metric, cost_key)
    write_json_atomic(os.path.join(output_dir, "pick.json"), summary)
    return summary


def _csv_text(fieldnames: List[str], rows: List[Dict[str, Any]]) -> str:
    """``rows`` as CSV text with a header (the csv module's dialect: ``\\r\\n`` line ends)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _plot(records: List[Record], front: List[Record], pick: Record, output_dir: str, metric: str, cost_key: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no pareto.png (pip install matplotlib)")
        return None
    full = records[0]
    scale = full[cost_key]
    label = "MACs / full model" if cost_key == "macs" else "latency / full model"
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r[cost_key] / scale for r in records], [r["score"] for r in records], s=12, c="0.6", label="evaluated")
    ax.plot([r[cost_key] / scale for r in front], [r["score"] for r in front], "o-", c="C0", label="Pareto front")
    ax.scatter([1.0], [full["score"]], marker="*", s=150, c="C3", label="full length", zorder=3)
    ax.scatter([pick[cost_key] / scale], [pick["score"]], marker="D", s=60, c="C2", label="pick", zorder=3)
    ax.set_xlabel(label)
    ax.set_ylabel(f"dev {metric}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = os.path.join(output_dir, "pareto.png")
    tmp = os.path.join(output_dir, ".pareto.png.tmp")  # saved aside, then renamed: no half-written plot
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


#: defaults that depend on the task: (GLUE, SQuAD)
DEFAULT_MAX_SEQ_LENGTH = (128, 384)
#: "within 1 point": GLUE metrics are in [0, 1], SQuAD exact match / F1 in percent
DEFAULT_TOLERANCE = (0.01, 1.0)


@dataclass
class SearchArguments(Arguments):
    """The settings of ``paddle-binbert search-length`` (field names = flag names, see ``--help``);
    ``squad`` is set by :func:`validate_search_args` from ``task_name``."""

    checkpoint: str = ""
    task_name: str = ""
    data_dir: Optional[str] = None
    output_dir: str = ""
    max_seq_length: Optional[int] = None
    batch_size: int = 32
    max_eval_examples: Optional[int] = None
    subset: str = "spread"
    population_size: int = 16
    evo_iter: int = 10
    mutation_size: int = 8
    crossover_size: int = 8
    mutation_prob: float = 0.5
    min_length: int = 2
    min_cost_ratio: float = 0.0
    max_cost_ratio: float = 1.0
    cost: str = "macs"
    tolerance: Optional[float] = None
    latency_batch_size: int = 1
    latency_repeats: int = 5
    seed: int = 42
    overwrite: bool = False
    measure: bool = False
    length_config: Any = None
    evaluate: bool = False
    measure_backend: str = "paddle"
    measure_examples: int = 64
    predict_file: Optional[str] = None
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30
    squad: bool = False


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``paddle-binbert search-length`` / ``examples/search_length.py``."""
    p = argparse.ArgumentParser(
        prog="paddle-binbert search-length",
        description="Evolutionary search of per-layer token budgets (Length-Adaptive Transformer / Dynamic-TinyBERT) "
        "for a checkpoint trained with --length_adaptive: Pareto front of dev metric vs MACs / latency. "
        "GLUE classification checkpoints are scored on --data_dir, SQuAD v1.1 question answering checkpoints "
        "(--task_name squad) on --predict_file with exact match / F1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint folder (FP or quantized): a BertForSequenceClassification for a GLUE task, "
        "a BertForQuestionAnswering for --task_name squad",
    )
    p.add_argument(
        "--task_name",
        required=True,
        help="GLUE task of the checkpoint (SST-2, MRPC, ...) or 'squad' (SQuAD v1.1, needs --predict_file)",
    )
    p.add_argument("--data_dir", default=None, help="GLUE tasks: folder with the task's dev file(s)")
    p.add_argument("--output_dir", required=True, help="where the cache, Pareto tables, plot and pick go")
    p.add_argument(
        "--max_seq_length",
        type=int,
        default=None,
        help="input length: every input (GLUE example or SQuAD window) is truncated to it and the budgets are "
        f"token counts at it (each dev batch is padded to its longest input only, which gives the same "
        f"outputs); unset: {DEFAULT_MAX_SEQ_LENGTH[0]} for GLUE, {DEFAULT_MAX_SEQ_LENGTH[1]} for squad",
    )
    p.add_argument("--batch_size", type=int, default=32, help="dev evaluation batch size (SQuAD: windows)")
    p.add_argument(
        "--max_eval_examples",
        type=int,
        default=None,
        help="score on N dev examples only (SQuAD: N questions, with all their windows), chosen by --subset",
    )
    p.add_argument(
        "--subset",
        choices=("spread", "first"),
        default="spread",
        help="which N examples --max_eval_examples and --measure_examples take: 'spread' = evenly spaced over "
        "the dev file (SQuAD files are ordered by article, so the first N questions share a few contexts and "
        "their lengths), 'first' = the first N",
    )
    p.add_argument("--population_size", type=int, default=16, help="size of the initial population (spread in MACs)")
    p.add_argument("--evo_iter", type=int, default=10, help="number of evolution iterations")
    p.add_argument("--mutation_size", type=int, default=8, help="mutants per iteration (from the Pareto front)")
    p.add_argument("--crossover_size", type=int, default=8, help="crossover children per iteration")
    p.add_argument("--mutation_prob", type=float, default=0.5, help="probability of resampling each layer's budget")
    p.add_argument("--min_length", type=int, default=2, help="smallest budget of any layer")
    p.add_argument("--min_cost_ratio", type=float, default=0.0, help="lower bound on MACs / full-model MACs")
    p.add_argument("--max_cost_ratio", type=float, default=1.0, help="upper bound on MACs / full-model MACs")
    p.add_argument("--cost", choices=("macs", "latency"), default="macs", help="cost of the Pareto front and the pick")
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="pick: metric at least full-model metric minus this; unset: 1 point, i.e. "
        f"{DEFAULT_TOLERANCE[0]} for GLUE (metrics in [0, 1]), {DEFAULT_TOLERANCE[1]} for squad (F1 in percent)",
    )
    p.add_argument(
        "--latency_batch_size",
        type=int,
        default=1,
        help="batch size of the latency measurement ([batch, max_seq_length] random inputs)",
    )
    p.add_argument("--latency_repeats", type=int, default=5, help="timed runs per configuration (median)")
    p.add_argument("--seed", type=int, default=42, help="seed of the search (a rerun with it replays from the cache)")
    p.add_argument("--overwrite", action="store_true", help="ignore and replace an existing cache in --output_dir")
    p.add_argument(
        "--measure",
        action="store_true",
        help="after the search, time the pick (or --length_config) against the full model end to end and write "
        "speed.md: GLUE tokenise -> logits, batches of 1 and 32 texts; SQuAD question + context -> sliding-window "
        "features -> start/end logits, batches of 1 and 32 questions (all windows of a batch in one forward pass)",
    )
    p.add_argument(
        "--length_config",
        default=None,
        help="skip the search and use this configuration (e.g. 64,60,52,40,32,24) with --measure and / or --evaluate",
    )
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="with --length_config: score the full model and the configuration on the dev data (all of it, or "
        "--max_eval_examples of it) and write evaluate.json, e.g. to check a pick found on a dev subset",
    )
    p.add_argument(
        "--measure_backend",
        choices=("paddle", "engine"),
        default="paddle",
        help="what --measure times: 'paddle' = the checkpoint as a Paddle model (FP or simulated quantization); "
        "'engine' = a binarized student (bibert / bit preset) packed into the 1-bit engine "
        "(paddle_binbert.engine), i.e. the deployed model, with the same inputs",
    )
    p.add_argument(
        "--measure_examples",
        type=int,
        default=64,
        help="N dev examples timed by --measure (GLUE: texts, SQuAD: questions), chosen by --subset",
    )
    g = p.add_argument_group("SQuAD v1.1 (--task_name squad)")
    g.add_argument(
        "--predict_file",
        default=None,
        help="SQuAD v1.1 dev JSON (e.g. mini_dev-v1.1.json) scored with the official exact match / F1; "
        "required with --task_name squad, replaces --data_dir",
    )
    g.add_argument(
        "--doc_stride",
        type=int,
        default=128,
        help="step, in context tokens, between the starts of the sliding windows of a long context",
    )
    g.add_argument("--max_query_length", type=int, default=64, help="questions are cut to this many tokens")
    g.add_argument(
        "--n_best_size", type=int, default=20, help="start/end candidates per window when decoding an answer"
    )
    g.add_argument("--max_answer_length", type=int, default=30, help="longest predicted answer, in tokens")
    return p


def validate_search_args(args: SearchArguments) -> None:
    """Check the settings before anything heavy is loaded and fill in the task defaults
    (``squad``, ``max_seq_length``, ``tolerance``, the parsed ``length_config``); ``FlagError`` on a problem."""
    from ..data.glue import check_glue_files, get_task_spec
    from ..data.squad import is_squad_task
    from ..tasks.squad import check_squad_windows

    if args.measure_backend != "paddle" and not args.measure:
        raise FlagError(f"--measure_backend {args.measure_backend} only applies with --measure")
    args.squad = is_squad_task(args.task_name)
    if args.squad:
        args.task_name = "squad"
        if args.data_dir is not None:
            raise FlagError("--data_dir is for GLUE tasks: --task_name squad reads its questions from --predict_file")
        if not args.predict_file:
            raise FlagError("--task_name squad needs --predict_file (a SQuAD v1.1 dev JSON file)")
        if not os.path.isfile(args.predict_file):
            what = "is a folder, not a file" if os.path.isdir(args.predict_file) else "does not exist"
            raise FlagError(f"--predict_file {args.predict_file} {what} (expected a SQuAD v1.1 JSON file)")
    else:
        if args.predict_file is not None:
            raise FlagError(
                f"--predict_file is only used with --task_name squad; the GLUE task {args.task_name} reads --data_dir"
            )
        try:
            args.task_name = get_task_spec(args.task_name).name
        except ValueError as err:
            raise FlagError(f"{err} (or --task_name squad with --predict_file)") from None
        if args.data_dir is None:
            raise FlagError(f"--data_dir is required for the GLUE task {args.task_name}")
        try:
            check_glue_files(args.data_dir, args.task_name, list(get_task_spec(args.task_name).dev_splits[:1]))
        except (ValueError, FileNotFoundError) as err:
            raise FlagError(str(err)) from None
    if args.max_seq_length is None:
        args.max_seq_length = DEFAULT_MAX_SEQ_LENGTH[int(args.squad)]
    if args.tolerance is None:
        args.tolerance = DEFAULT_TOLERANCE[int(args.squad)]
    if not os.path.isdir(args.checkpoint):
        raise FlagError(f"--checkpoint {args.checkpoint} is not a folder")
    counts = (
        "max_seq_length",
        "batch_size",
        "population_size",
        "latency_batch_size",
        "latency_repeats",
        "min_length",
        "measure_examples",
        "max_eval_examples",
    )
    run_setup.check_positive(args, counts)
    if args.squad:
        check_squad_windows(args)
    for name in ("evo_iter", "mutation_size", "crossover_size"):
        if getattr(args, name) < 0:
            raise FlagError(f"--{name} must be >= 0")
    if not 0.0 <= args.mutation_prob <= 1.0:
        raise FlagError("--mutation_prob must be in [0, 1]")
    if not 0.0 <= args.min_cost_ratio <= args.max_cost_ratio:
        raise FlagError("need 0 <= --min_cost_ratio <= --max_cost_ratio")
    if args.tolerance < 0:
        raise FlagError(f"--tolerance must be >= 0, got {args.tolerance}")
    if args.min_length > args.max_seq_length:
        raise FlagError("--min_length must not exceed --max_seq_length")
    if args.length_config is not None and not (args.measure or args.evaluate):
        raise FlagError("--length_config is only used with --measure or --evaluate")
    if args.evaluate and args.length_config is None:
        raise FlagError("--evaluate needs --length_config (the search itself scores every configuration)")
    if args.length_config is not None:
        try:
            args.length_config = parse_length_config(args.length_config)
        except ValueError as err:
            raise FlagError(str(err)) from None


def _check_model(args: SearchArguments, model: Any) -> None:
    """``FlagError`` when the checkpoint's head does not fit the task, or its positions are too few."""
    from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

    from ..models import get_bert

    kind = type(model).__name__
    if args.squad and not isinstance(model, BertForQuestionAnswering):
        raise FlagError(
            f"--checkpoint {args.checkpoint} holds a {kind}, but --task_name squad needs a SQuAD question answering "
            "checkpoint (BertForQuestionAnswering, e.g. from examples/run_squad.py)"
        )
    if not args.squad and not isinstance(model, BertForSequenceClassification):
        hint = " (a SQuAD checkpoint: pass --task_name squad --predict_file FILE)"
        raise FlagError(
            f"--checkpoint {args.checkpoint} holds a {kind}, but the GLUE task {args.task_name} needs a "
            "classification checkpoint (BertForSequenceClassification)"
            + (hint if isinstance(model, BertForQuestionAnswering) else "")
        )
    positions = getattr(get_bert(model).config, "max_position_embeddings", None)
    if positions is not None and args.max_seq_length > positions:
        raise FlagError(
            f"--max_seq_length {args.max_seq_length} exceeds the {positions} position embeddings of "
            f"--checkpoint {args.checkpoint}"
        )


def _load_dev(args: SearchArguments, model: Any, tokenizer: Any):
    """``(evaluator, cache meta)`` of the dev set named by the arguments."""
    meta: Dict[str, Any] = {"checkpoint": os.path.abspath(args.checkpoint), "task": args.task_name}
    pad_id = tokenizer.pad_token_id or 0
    if args.squad:
        from ..data.squad.datasets import load_squad_eval

        try:
            data = load_squad_eval(
                args.predict_file,
                tokenizer,
                args.max_seq_length,
                args.doc_stride,
                args.max_query_length,
                args.max_eval_examples,
                spread=args.subset == "spread",
            )
        except ValueError as err:  # SquadFormatError names the file and the question
            raise FlagError(f"--predict_file: {err}") from err
        evaluator: Any = SquadDevEvaluator(
            model, data, args.max_seq_length, pad_id, args.batch_size, args.n_best_size, args.max_answer_length
        )
        meta.update(
            predict_file=os.path.abspath(args.predict_file),
            max_seq_length=args.max_seq_length,
            doc_stride=args.doc_stride,
            max_query_length=args.max_query_length,
            n_best_size=args.n_best_size,
            max_answer_length=args.max_answer_length,
            num_examples=len(data.examples),
            num_windows=len(data.features),
        )
    else:
        from ..data.glue import get_task_spec, load_glue_features

        split = get_task_spec(args.task_name).dev_splits[0]
        features = load_glue_features(args.data_dir, args.task_name, split, tokenizer, args.max_seq_length)
        features = dev_subset(features, args.max_eval_examples, args.subset == "spread")
        evaluator = GlueDevEvaluator(model, features, args.task_name, args.max_seq_length, pad_id, args.batch_size)
        meta.update(split=split, max_seq_length=args.max_seq_length, num_examples=len(features))
    meta["latency_batch_size"] = args.latency_batch_size
    if args.max_eval_examples is not None:
        meta["subset"] = args.subset
    return evaluator, meta


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``paddle-binbert search-length``: parse, validate, :func:`run_search`; a bad
    flag, file or checkpoint exits through ``parser.error``."""
    parser = build_parser()
    args = SearchArguments.from_flags(vars(parser.parse_args(argv)))
    try:
        validate_search_args(args)
        run_setup.setup_logging()
        run_search(args)
    except FlagError as err:
        parser.error(str(err))
    return 0


def run_search(args: SearchArguments) -> Dict[str, Any]:
    """Run the search (and optionally the speed measurement) with validated ``args``
    (:func:`validate_search_args`); prints the pick summary as JSON and returns it."""
    os.makedirs(args.output_dir, exist_ok=True)

    from paddlenlp.transformers import BertTokenizer
    from tqdm.auto import tqdm

    from ..checkpoints import load_model
    from ..models import get_bert
    from .costs import measure_latency, model_macs
    from .drop_restore import check_length_config

    model = load_model(args.checkpoint)
    model.eval()
    _check_model(args, model)
    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    num_layers = len(get_bert(model).encoder.layers)

    if args.length_config is not None:
        try:
            check_length_config(args.length_config, num_layers)
        except ValueError as err:
            raise FlagError(str(err)) from None
        summary: Dict[str, Any] = {"pick_config": list(args.length_config)}
        if args.evaluate:
            summary["evaluate"] = _evaluate_config(args, model, tokenizer, args.length_config)
    else:
        evaluator, meta = _load_dev(args, model, tokenizer)
        try:
            cache = SearchCache(args.output_dir, meta, overwrite=args.overwrite)
        except ValueError as err:
            raise FlagError(str(err)) from None
        hits = {"n": 0}

        def macs_of(config: Config) -> int:
            return model_macs(model, config, args.max_seq_length)

        def evaluate(config: Config) -> Record:
            cached = cache.get(config)
            if cached is not None:
                hits["n"] += 1
                bar.set_postfix(cached=hits["n"])
                return cached
            metrics = evaluator(config)
            record = {
                "config": list(config),
                "score": float(metrics[evaluator.metric]),
                "metrics": {k: float(v) for k, v in metrics.items()},
                "macs": macs_of(config),
                "latency_ms": measure_latency(
                    model, config, args.max_seq_length, args.latency_batch_size, args.latency_repeats
                ),
            }
            cache.put(record)
            return record

        planned = 1 + args.population_size + args.evo_iter * (args.mutation_size + args.crossover_size)
        with tqdm(total=planned, desc="length search", unit="config") as bar:
            records = evolutionary_search(
                evaluate,
                macs_of,
                args.max_seq_length,
                num_layers,
                population_size=args.population_size,
                evo_iter=args.evo_iter,
                mutation_size=args.mutation_size,
                crossover_size=args.crossover_size,
                mutation_prob=args.mutation_prob,
                min_length=args.min_length,
                cost_bounds=(args.min_cost_ratio, args.max_cost_ratio),
                cost=args.cost,
                seed=args.seed,
                progress=bar,
            )
            bar.total = bar.n  # fewer candidates than planned when the space or the bounds are small
            bar.refresh()
        summary = write_reports(records, args.output_dir, evaluator.metric, args.cost, args.tolerance)
        summary["cache_hits"] = hits["n"]
        logger.info("Pareto table in %s", os.path.join(args.output_dir, "pareto.md"))

    if args.measure:
        config = tuple(summary["pick_config"])
        forward = _engine_forward(args, model, tokenizer) if args.measure_backend == "engine" else None
        if args.squad:
            from .speed import measure_squad_end_to_end, speed_table

            examples = _squad_questions(args.predict_file, args.measure_examples, args.subset)
            rows = measure_squad_end_to_end(
                model,
                tokenizer,
                examples,
                config,
                args.max_seq_length,
                args.doc_stride,
                args.max_query_length,
                forward=forward,
            )
            table = speed_table(rows, config, squad=True)
        else:
            from ..data.glue import get_task_spec
            from .speed import measure_end_to_end, speed_table

            split = get_task_spec(args.task_name).dev_splits[0]
            texts = _dev_texts(args.data_dir, args.task_name, split, args.measure_examples, args.subset)
            rows = measure_end_to_end(model, tokenizer, texts, config, args.max_seq_length, forward=forward)
            table = speed_table(rows, config)
        if forward is not None:
            table = f"Packed 1-bit engine ({forward.backend} backend). " + table
        write_text_atomic(os.path.join(args.output_dir, "speed.md"), table + "\n")
        print(table)
        summary["speed"] = rows
    print(json.dumps(summary, indent=2, default=str))
    return summary


def _evaluate_config(args: SearchArguments, model: Any, tokenizer: Any, config: Config) -> Dict[str, Any]:
    """Dev metrics of the full model and of ``config`` (``--evaluate``), written to ``evaluate.json``."""
    evaluator, meta = _load_dev(args, model, tokenizer)
    result = {
        **meta,
        "metric": evaluator.metric,
        "full": {k: float(v) for k, v in evaluator(None).items()},
        "config": list(config),
        "config_metrics": {k: float(v) for k, v in evaluator(config).items()},
    }
    result["drop"] = result["full"][evaluator.metric] - result["config_metrics"][evaluator.metric]
    write_json_atomic(os.path.join(args.output_dir, "evaluate.json"), result)
    logger.info(
        "%s: full %.2f, %s %.2f",
        evaluator.metric,
        result["full"][evaluator.metric],
        config_key(config),
        result["config_metrics"][evaluator.metric],
    )
    return result


def _engine_forward(args: SearchArguments, model: Any, tokenizer: Any):
    """``--measure_backend engine``: pack the checkpoint into ``output_dir/packed`` and wrap the engine
    for :mod:`.speed`. The runner's ``backend`` ("native" or, without a compiler, "simulated") is kept
    on the returned function so the table says which one ran."""
    from .. import engine
    from ..export import pack_model
    from .speed import engine_forward

    packed_dir = os.path.join(args.output_dir, "packed")
    try:
        pack_model(model, packed_dir, tokenizer=tokenizer)
    except (ValueError, NotImplementedError) as err:
        raise FlagError(f"--measure_backend engine: {args.checkpoint} cannot be packed: {err}") from err
    runner = engine.load(packed_dir)
    forward = engine_forward(runner)
    forward.backend = runner.backend
    return forward


def _dev_texts(data_dir: str, task: str, split: str, limit: int, subset: str) -> List[Tuple[str, Optional[str]]]:
    from ..data.glue import read_glue_examples

    return [
        (ex.text_a, ex.text_b)
        for ex in dev_subset(read_glue_examples(data_dir, task, split), limit, subset == "spread")
    ]


def _squad_questions(path: str, limit: int, subset: str) -> List[Any]:
    from ..data.squad import read_squad_examples

    try:
        examples = dev_subset(read_squad_examples(path), limit, subset == "spread")
    except ValueError as err:
        raise FlagError(f"--predict_file: {err}") from err
    if not examples:
        raise FlagError(f"--predict_file {path} holds no question")
    return examples


if __name__ == "__main__":
    sys.exit(main())
