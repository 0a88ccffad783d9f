#!/usr/bin/env python
"""Collect the learning curves of distillation runs into one CSV and one PNG per task.

    python benchmarks/learning_curves.py --task_name SST-2 --data_dir ../shared/data/glue/SST-2 \
        --run bit=../runs/sst2_bit --run bibert=../runs/sst2_bibert [--teacher ../runs/sst2_teacher] \
        [--out benchmarks/results/curves] [--x examples|step|wall_minutes]

Each ``--run LABEL=DIR`` reads ``DIR/learning_curve.csv`` (written by every training run after
each evaluation; a multi-stage run's stages are read in order from ``DIR/stage*/``, their steps and
minutes laid end to end). ``OUT/<task>.csv`` gets one row per run and evaluation (label, stage, step,
examples, wall minutes, the task's main metric); ``OUT/<task>.png`` plots the main metric against
``--x`` for every run, with horizontal lines for the teacher (``--teacher``: its ``results.json``,
else the students' recorded teacher metric) and the majority class of the dev set. Runs still in
progress can be collected at any time: the files are rewritten atomically.

A run that starts from another run's student (a chain continued from a saved stage, a second
epoch) is laid after it with ``--lineage FILE``, a YAML mapping ``LABEL: {from: PARENT[/STAGE],
at_step: N}``: the run's steps, examples and minutes then count from the parent's evaluation at
stage step N (default: the parent's first best evaluation, the checkpoint its trainer keeps), and
its line starts at that point of the parent's. Without it such a run would be drawn from zero, as if
it had learned from the teacher alone.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections import Counter
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from paddle_binbert.data.glue import get_task_spec, read_glue_examples  # noqa: E402
from paddle_binbert.data.metrics import main_metric_name  # noqa: E402
from paddle_binbert.io_utils import read_yaml_mapping, write_text_atomic  # noqa: E402
from paddle_binbert.train.curves import CURVE_FILE, read_curve  # noqa: E402

COLUMNS = ("run", "stage", "stage_step", "step", "examples", "wall_minutes", "metric", "value")
AXES = ("step", "examples", "wall_minutes")


def stage_folders(run_dir: str) -> List[Tuple[str, str]]:
    """``[(stage name, folder)]``: the run's ``stage*`` folders in order, or the run folder itself."""
    stages = sorted(
        (d for d in os.listdir(run_dir) if d.startswith("stage") and os.path.isdir(os.path.join(run_dir, d))),
        key=lambda d: int("".join(c for c in d[5:].split("_")[0] if c.isdigit()) or 0),
    )
    return [(d, os.path.join(run_dir, d)) for d in stages] or [("", run_dir)]


def collect_run(label: str, run_dir: str, metric: str) -> List[Dict[str, object]]:
    """The rows of one run (stages laid end to end in steps, examples and minutes)."""
    rows: List[Dict[str, object]] = []
    offset = {"step": 0, "examples": 0, "wall_minutes": 0.0}
    for stage, folder in stage_folders(run_dir):
        curve = read_curve(os.path.join(folder, CURVE_FILE))
        for r in curve:
            if r.get(metric, "") == "":
                continue
            rows.append(
                {
                    "run": label,
                    "stage": stage,
                    "stage_step": int(r["step"]),
                    "step": offset["step"] + int(r["step"]),
                    "examples": offset["examples"] + int(r["examples"]),
                    "wall_minutes": round(offset["wall_minutes"] + float(r["wall_minutes"]), 3),
                    "metric": metric,
                    "value": float(r[metric]),
                }
            )
        if curve:
            last = curve[-1]
            offset = {
                "step": offset["step"] + int(last["step"]),
                "examples": offset["examples"] + int(last["examples"]),
                "wall_minutes": offset["wall_minutes"] + float(last["wall_minutes"]),
            }
    return rows


class LineageError(ValueError):
    """A lineage file that names an unknown run or stage, a missing step, or a cycle."""


def read_lineage(path: str) -> Dict[str, Dict[str, object]]:
    """``{label: {"from": "PARENT[/STAGE]", "at_step": int or None}}`` from a lineage YAML file."""
    data = read_yaml_mapping(path, LineageError)
    lineage = {}
    for label, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("from"), str) or not entry["from"]:
            raise LineageError(f"{path}: {label}: expected {{from: PARENT[/STAGE], at_step: N}}, got {entry!r}")
        unknown = sorted(set(entry) - {"from", "at_step"})
        if unknown:
            raise LineageError(f"{path}: {label}: unknown field(s) {unknown}; valid: from, at_step")
        step = entry.get("at_step")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step <= 0):
            raise LineageError(f"{path}: {label}: at_step must be a positive integer, got {step!r}")
        lineage[str(label)] = {"from": entry["from"], "at_step": step}
    return lineage


def start_point(rows: List[Dict[str, object]], label: str, source: str, at_step: Optional[int]) -> Dict[str, object]:
    """The parent's row a run starts from: ``source`` is ``PARENT[/STAGE]`` (default: its last
    stage), ``at_step`` a step of that stage (default: its first best evaluation)."""
    parent, _, stage = source.partition("/")
    candidates = [r for r in rows if r["run"] == parent]
    if not candidates:
        raise LineageError(f"{label}: starts from {parent!r}, which is not among the runs or has no evaluation yet")
    stage = stage or str(candidates[-1]["stage"])
    candidates = [r for r in candidates if r["stage"] == stage]
    if not candidates:
        raise LineageError(f"{label}: run {parent!r} has no evaluated stage {stage!r}")
    if at_step is None:
        scored = [r for r in candidates if not math.isnan(float(r["value"]))]
        if not scored:
            raise LineageError(f"{label}: every evaluation of {source} is NaN; give its at_step")
        best = max(float(r["value"]) for r in scored)
        return next(r for r in scored if float(r["value"]) == best)
    for r in candidates:
        if r["stage_step"] == at_step:
            return r
    steps = [r["stage_step"] for r in candidates]
    raise LineageError(f"{label}: {source} has no evaluation at step {at_step} (evaluated at {steps})")


def apply_lineage(rows: List[Dict[str, object]], lineage: Dict[str, Dict[str, object]]):
    """Shift every run named in ``lineage`` to start where its parent's student was saved (parents
    first, so chains of runs add up). Returns the shifted rows and ``{label: start row}``."""
    labels = {r["run"] for r in rows}
    starts: Dict[str, Dict[str, object]] = {}  # also the runs already placed

    def place(label: str, path: Tuple[str, ...]) -> None:
        if label in starts or label not in lineage:
            return
        if label in path:
            raise LineageError(f"lineage cycle: {' -> '.join(path + (label,))}")
        parent = str(lineage[label]["from"]).partition("/")[0]
        place(parent, path + (label,))
        start = start_point(rows, label, str(lineage[label]["from"]), lineage[label]["at_step"])
        for r in rows:
            if r["run"] == label:
                for key in AXES:
                    r[key] = round(r[key] + start[key], 3) if key == "wall_minutes" else r[key] + start[key]
        starts[label] = dict(start)

    for label in lineage:
        if label in labels:
            place(label, ())
        else:  # a typo would otherwise leave its run drawn from zero without a word
            print(f"learning_curves: lineage names {label!r}, which is not among the runs", file=sys.stderr)
    return rows, starts


def teacher_metric(teacher_dir: Optional[str], run_dirs: List[str], metric: str) -> Optional[float]:
    """The teacher's dev metric: ``--teacher``'s results.json (or, for a checkpoint folder, the last
    ``eval_<metric>`` of its trainer_state.json), else the first student's record of it."""
    state_path = os.path.join(teacher_dir or "", "trainer_state.json")
    if teacher_dir and not os.path.isfile(os.path.join(teacher_dir, "results.json")) and os.path.isfile(state_path):
        with open(state_path, encoding="utf-8") as f:
            history = json.load(f).get("log_history", [])
        values = [h[f"eval_{metric}"] for h in history if isinstance(h.get(f"eval_{metric}"), (int, float))]
        if values:
            return float(values[-1])
    candidates = [(teacher_dir, ("eval", "dev", "best"))] if teacher_dir else []
    candidates += [(d, ("teacher",)) for d in run_dirs]
    for folder, keys in candidates:
        path = os.path.join(folder, "results.json")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        for key in keys:
            section = record.get(key)
            if isinstance(section, dict) and isinstance(section.get(metric), (int, float)):
                return float(section[metric])
            if isinstance(section, dict):  # {"dev": {...}} layouts
                for inner in section.values():
                    if isinstance(inner, dict) and isinstance(inner.get(metric), (int, float)):
                        return float(inner[metric])
    return None


def majority_rate(data_dir: str, task_name: str) -> Optional[float]:
    """Accuracy of always predicting the dev set's most frequent label (None for regression)."""
    if get_task_spec(task_name).is_regression:
        return None
    labels = [e.label for e in read_glue_examples(data_dir, task_name, "dev")]
    return Counter(labels).most_common(1)[0][1] / len(labels)


def write_csv(path: str, rows: List[Dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def plot(
    path: str,
    rows,
    task: str,
    metric: str,
    x: str,
    teacher: Optional[float],
    majority: Optional[float],
    starts: Optional[Dict[str, Dict[str, object]]] = None,
) -> None:
    """One line per run (metric against ``x``); a run with a start row begins at that point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label in dict.fromkeys(r["run"] for r in rows):
        pts = [(r[x], r["value"]) for r in rows if r["run"] == label]
        if starts and label in starts:
            pts.insert(0, (starts[label][x], starts[label]["value"]))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label)
    if teacher is not None:
        ax.axhline(teacher, color="black", linestyle="--", linewidth=1, label=f"teacher ({teacher:.3f})")
    if majority is not None:
        ax.axhline(majority, color="gray", linestyle=":", linewidth=1, label=f"majority class ({majority:.3f})")
    ax.set_xlabel({"examples": "training examples seen", "step": "optimizer steps", "wall_minutes": "wall minutes"}[x])
    ax.set_ylabel(f"dev {metric}")
    ax.set_title(f"{task}: binarized students (dev {metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def parse_run(text: str) -> Tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--run takes LABEL=DIR, got {text!r}")
    label, folder = text.split("=", 1)
    if not label or not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"--run {text!r}: empty label or {folder!r} is not a folder")
    return label, folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task_name", required=True, help="GLUE task of the runs (names the output files)")
    p.add_argument("--data_dir", required=True, help="the task's data folder (majority class of the dev set)")
    p.add_argument("--run", action="append", type=parse_run, required=True, help="LABEL=RUN_DIR, repeatable")
    p.add_argument("--teacher", default=None, help="teacher run folder (its results.json gives the teacher line)")
    p.add_argument("--out", default="benchmarks/results/curves", help="output folder")
    p.add_argument("--x", default="examples", choices=list(AXES), help="x axis of the plot")
    p.add_argument(
        "--lineage",
        default=None,
        help="YAML file LABEL: {from: PARENT[/STAGE], at_step: N}: runs that start from another run's\n"
        "student are laid after it (steps, examples, minutes counted from there)",
    )
    a = p.parse_args(argv)
    metric = main_metric_name(a.task_name)
    rows = [r for label, folder in a.run for r in collect_run(label, folder, metric)]
    if not rows:
        p.error(f"no evaluation with {metric!r} in any {CURVE_FILE} of the runs")
    starts: Dict[str, Dict[str, object]] = {}
    if a.lineage:
        if not os.path.isfile(a.lineage):
            p.error(f"--lineage {a.lineage!r} is not a file")
        try:
            rows, starts = apply_lineage(rows, read_lineage(a.lineage))
        except LineageError as err:
            p.error(str(err))
    os.makedirs(a.out, exist_ok=True)
    name = get_task_spec(a.task_name).name.lower().replace("-", "")
    write_csv(os.path.join(a.out, f"{name}.csv"), rows)
    teacher = teacher_metric(a.teacher, [folder for _, folder in a.run], metric)
    plot(
        os.path.join(a.out, f"{name}.png"),
        rows,
        a.task_name,
        metric,
        a.x,
        teacher,
        majority_rate(a.data_dir, a.task_name),
        starts,
    )
    print(f"{len(rows)} points of {len(a.run)} runs -> {a.out}/{name}.csv, {name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
