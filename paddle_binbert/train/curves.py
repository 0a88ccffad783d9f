"""Learning curves: one row per evaluation (dev metrics against steps, examples seen and wall minutes).

Every run of :class:`~paddle_binbert.train.trainer.BinBertTrainer` writes ``OUTPUT_DIR/learning_curve.csv``
through :class:`LearningCurveCallback`. A resumed run keeps the rows up to the checkpoint it resumes
from (later rows were evaluated by the interrupted process after its last checkpoint and are
replaced), and its wall minutes continue from the last kept row, so the file of a run interrupted
any number of times reads like one uninterrupted run. ``benchmarks/learning_curves.py`` collects
these files into one CSV and one plot per task.
"""

from __future__ import annotations

import csv
import io
import os
import time
from typing import Any, Dict, List, Optional

from paddlenlp.trainer import TrainerCallback

from ..io_utils import write_text_atomic

__all__ = ["CURVE_FILE", "LearningCurveCallback", "read_curve"]

CURVE_FILE = "learning_curve.csv"
#: Leading columns; the metrics follow in the order the first evaluation reported them.
BASE_COLUMNS = ("step", "examples", "wall_minutes", "epoch", "train_loss")


def read_curve(path: str) -> List[Dict[str, str]]:
    """The rows of a ``learning_curve.csv`` (an empty list if the file does not exist)."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_curve(path: str, rows: List[Dict[str, Any]]) -> None:
    columns: List[str] = list(BASE_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


class LearningCurveCallback(TrainerCallback):
    """Append ``step, examples, wall_minutes, epoch, train_loss, <eval metrics>`` to ``path`` after
    every evaluation (atomic rewrite of the file).

    ``examples`` = step x per-device batch x data-parallel ranks x gradient-accumulation steps;
    ``train_loss`` = the last logged training loss; metric columns drop the ``eval_`` prefix.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: List[Dict[str, Any]] = []
        self.start = time.time()
        self.base_minutes = 0.0
        self.last_loss: Optional[float] = None
        self.finished = False

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Stop recording: evaluations after training (e.g. of the reloaded best checkpoint) are not
        points of the curve."""
        self.finished = True
        return control

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Keep the rows up to the step training starts from (0 or the resumed checkpoint's)."""
        self.finished = False
        self.rows = [r for r in read_curve(self.path) if int(r["step"]) <= state.global_step]
        self.base_minutes = float(self.rows[-1]["wall_minutes"]) if self.rows else 0.0
        self.start = time.time()
        if self.rows or os.path.isfile(self.path):
            _write_curve(self.path, self.rows)
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Dict[str, float]] = None, **kw: Any) -> Any:
        """Remember the last training loss."""
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
        return control

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Optional[Dict[str, float]] = None, **kw):
        """Add the evaluation's row and rewrite the file (during training only)."""
        if self.finished or not metrics or not any(k.startswith("eval_") for k in metrics):
            return control  # e.g. the teacher's evaluation (prefix "teacher_")
        examples = (
            state.global_step
            * args.per_device_train_batch_size
            * max(1, getattr(args, "dataset_world_size", 1))
            * max(1, args.gradient_accumulation_steps)
        )
        row: Dict[str, Any] = {
            "step": state.global_step,
            "examples": examples,
            "wall_minutes": round(self.base_minutes + (time.time() - self.start) / 60.0, 3),
            "epoch": round(float(state.epoch or 0.0), 4),
            "train_loss": "" if self.last_loss is None else round(self.last_loss, 6),
        }
        for key, value in metrics.items():
            if key.startswith("eval_") and isinstance(value, (int, float)):
                row[key[len("eval_") :]] = round(float(value), 6)
        self.rows = [r for r in self.rows if int(r["step"]) != state.global_step] + [row]
        _write_curve(self.path, self.rows)
        return control
