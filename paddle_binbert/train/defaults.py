"""Training defaults per task and per method, read from the YAML files under ``configs/``.

``configs/tasks/<task>.yaml``: the BiBERT release's per-task values (learning rate, epochs, max
sequence length, evaluation interval; SQuAD's batch size). ``configs/methods/<method>.yaml``: a
method's own defaults (batch size, optimizer) and, under ``tasks:``, its per-task values. A flag
the user gives always wins; then ``--config``; then the method's per-task value, the task's value,
the method's general value (:func:`training_defaults`).

The folder is the repository's top-level ``configs/`` (found next to the package in a source
checkout or an editable install); ``PADDLE_BINBERT_CONFIGS`` points elsewhere.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Dict, Tuple

import yaml

__all__ = ["CONFIG_DIR_ENV", "TRAINING_KEYS", "config_dir", "method_defaults", "task_defaults", "training_defaults"]

CONFIG_DIR_ENV = "PADDLE_BINBERT_CONFIGS"
#: Fields a task or method file may set (the distillation flags of the same names).
TRAINING_KEYS = ("learning_rate", "num_train_epochs", "max_seq_length", "eval_steps", "batch_size", "optimizer")


def config_dir() -> Path:
    """The ``configs/`` folder (``$PADDLE_BINBERT_CONFIGS`` or the repository's)."""
    folder = Path(os.environ.get(CONFIG_DIR_ENV) or Path(__file__).resolve().parents[2] / "configs")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"configs folder {folder} not found: run from a source checkout (pip install -e .) or set {CONFIG_DIR_ENV}"
        )
    return folder


def _file_key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


@cache
def _read(kind: str, name: str, folder: str) -> Dict[str, Any]:
    path = Path(folder) / kind / f"{_file_key(name) if kind == 'tasks' else name}.yaml"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    allowed = set(TRAINING_KEYS) | {"task", "method", "tasks"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid keys: {sorted(allowed)}")
    for task, values in (data.get("tasks") or {}).items():
        bad = sorted(set(values or {}) - set(TRAINING_KEYS)) if isinstance(values, dict) else ["(not a mapping)"]
        if bad:
            raise ValueError(f"{path}: tasks.{task}: unknown keys {bad}; valid keys: {list(TRAINING_KEYS)}")
    return data


def task_defaults(task_name: str) -> Dict[str, Any]:
    """The task file's training values (empty for a task without a file)."""
    data = _read("tasks", task_name, str(config_dir()))
    return {k: v for k, v in data.items() if k in TRAINING_KEYS}


def method_defaults(method: str, task_name: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(general values, values for task_name)`` of the method file (``tasks.<task_name>``)."""
    data = _read("methods", method, str(config_dir()))
    general = {k: v for k, v in data.items() if k in TRAINING_KEYS}
    return general, dict((data.get("tasks") or {}).get(task_name) or {})


def training_defaults(method: str, task_name: str) -> Dict[str, Any]:
    """What unset flags take: the method's general values, then the task's, then the method's
    values for that task (later ones win)."""
    general, per_task = method_defaults(method, task_name)
    return {**general, **task_defaults(task_name), **per_task}
