"""Training defaults per task and per method, read from the YAML files under ``configs/``.

``configs/tasks/<task>.yaml``: the BiBERT release's per-task values (learning rate, epochs, max
sequence length, evaluation interval; SQuAD's batch size). ``configs/methods/<method>.yaml``: one
file per ``--method``: what the method is (``quant_preset``: a ``QuantConfig`` preset, ``loss``: the
default loss recipe, ``description``), its own training defaults (batch size, optimizer) and, under
``tasks:``, its per-task values (:func:`method_spec`, :func:`method_names`). A flag
the user gives always wins; then ``--config``; then the method's per-task value, the task's value,
the method's general value (:func:`training_defaults`).

The folder is the repository's top-level ``configs/`` (found next to the package in a source
checkout or an editable install; a wheel carries a copy as ``paddle_binbert/bundled_configs``);
``PADDLE_BINBERT_CONFIGS`` points to another folder, which replaces it (copy every method and task
file you keep).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..io_utils import read_yaml_mapping

__all__ = [
    "CONFIG_DIR_ENV",
    "METHOD_KEYS",
    "TRAINING_KEYS",
    "config_dir",
    "method_defaults",
    "method_names",
    "method_spec",
    "task_defaults",
    "training_defaults",
]

CONFIG_DIR_ENV = "PADDLE_BINBERT_CONFIGS"
#: Fields a task or method file may set (the distillation flags of the same names).
TRAINING_KEYS = ("learning_rate", "num_train_epochs", "max_seq_length", "eval_steps", "batch_size", "optimizer")
#: What a method file must say about the method itself.
METHOD_KEYS = ("quant_preset", "loss", "description")


def config_dir() -> Path:
    """The ``configs/`` folder: ``$PADDLE_BINBERT_CONFIGS``, else the checkout's, else the wheel's copy."""
    if os.environ.get(CONFIG_DIR_ENV):
        folder = Path(os.environ[CONFIG_DIR_ENV])
    else:
        package = Path(__file__).resolve().parents[1]
        checkout = package.parent / "configs"
        folder = checkout if checkout.is_dir() else package / "bundled_configs"
    if not folder.is_dir():
        raise FileNotFoundError(f"configs folder {folder} not found: reinstall paddle_binbert or set {CONFIG_DIR_ENV}")
    return folder


def _file_key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


@cache
def _read(kind: str, name: str, folder: str) -> Dict[str, Any]:
    path = Path(folder) / kind / f"{_file_key(name) if kind == 'tasks' else name}.yaml"
    if not path.is_file():
        return {}
    data = read_yaml_mapping(path)
    allowed = set(TRAINING_KEYS) | {"task", "method", "tasks"} | (set(METHOD_KEYS) if kind == "methods" else set())
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


def method_names() -> Tuple[str, ...]:
    """The methods that have a file in ``configs/methods/`` (the choices of ``--method``), sorted."""
    return tuple(sorted(p.stem for p in (config_dir() / "methods").glob("*.yaml")))


def method_spec(method: str, folder: Optional[Path] = None) -> Dict[str, Any]:
    """``{quant_preset, loss, description}`` of ``<folder>/methods/<method>.yaml`` (default folder:
    :func:`config_dir`); ``ValueError`` naming the file when one is missing or not a string, or when
    the method has no file."""
    folder = config_dir() if folder is None else Path(folder)
    path = folder / "methods" / f"{method}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown --method {method!r}; valid methods: {list(method_names())} (files in {path.parent})")
    data = _read("methods", method, str(folder))
    if data.get("method", method) != method:
        raise ValueError(f"{path}: method: {data['method']!r} differs from the file name (expected {method!r})")
    bad = [key for key in METHOD_KEYS if not isinstance(data.get(key), str) or not data.get(key)]
    if bad:
        raise ValueError(f"{path}: {bad} must be set (non-empty strings): {', '.join(METHOD_KEYS)}")
    return {key: data[key] for key in METHOD_KEYS}


def training_defaults(method: str, task_name: str) -> Dict[str, Any]:
    """What unset flags take: the method's general values, then the task's, then the method's
    values for that task (later ones win)."""
    general, per_task = method_defaults(method, task_name)
    return {**general, **task_defaults(task_name), **per_task}
