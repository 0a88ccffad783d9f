"""The report files of a length search, each written atomically (a failure leaves the previous file
complete).

* :func:`write_reports`: ``pareto.csv`` (the Pareto front), ``all_configs.csv`` (every evaluated
  configuration, with ``on_front``), ``pareto.md`` (the front as a table and the pick),
  ``pareto.png`` (score vs cost, when matplotlib is installed) and ``pick.json`` (the summary);
* :func:`write_speed_report`: ``speed.md`` (the end-to-end timing table of ``--measure``);
* :func:`write_evaluate_report`: ``evaluate.json`` (``--evaluate``: full model vs one configuration).

Columns: ``config`` (budgets joined by ``-``), ``macs``, ``macs_ratio`` (MACs / full model's),
``latency_ms``, ``speedup`` (full model's latency / latency) and ``score`` (the dev metric).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from typing import Any, Dict, List

from ...io_utils import write_json_atomic, write_text_atomic
from .evolution import Record, config_key, cost_field, pareto_front, pick_config

logger = logging.getLogger(__name__)

__all__ = ["COLUMNS", "write_evaluate_report", "write_reports", "write_speed_report"]

COLUMNS = ("config", "macs", "macs_ratio", "latency_ms", "speedup", "score")


def _row(record: Record, full: Record) -> Dict[str, Any]:
    """The :data:`COLUMNS` of ``record``, ratios and speedup against the full model's record ``full``."""
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
    cost_key = cost_field(cost)
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
    """``pareto.png``: every evaluated configuration, the front, the full model and the pick (score vs cost
    relative to the full model); saved aside then renamed. Returns its path, or None without matplotlib."""
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


def write_speed_report(output_dir: str, table: str) -> str:
    """Write the markdown ``table`` of :func:`~paddle_binbert.length_adaptive.speed.speed_table` to
    ``output_dir/speed.md``; return its path."""
    path = os.path.join(output_dir, "speed.md")
    write_text_atomic(path, table + "\n")
    return path


def write_evaluate_report(output_dir: str, result: Dict[str, Any]) -> str:
    """Write ``result`` (full model vs one configuration) to ``output_dir/evaluate.json``; return its path."""
    path = os.path.join(output_dir, "evaluate.json")
    write_json_atomic(path, result)
    return path
