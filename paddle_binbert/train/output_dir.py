"""The run's output folder: its ``checkpoint-N`` folders, ``results.json`` and what a previous run left.

* :func:`checkpoint_problem` / :func:`get_last_checkpoint`: whether a checkpoint folder can be resumed
  from (a process killed while saving leaves an incomplete one), the newest complete one;
* :func:`resumed_loss_totals`: the training-loss sum a checkpoint records (``loss_totals.json``), so
  that a resumed run reports the mean loss over all its steps;
* :func:`check_output_dir` / :func:`previous_run_files` / :func:`clear_previous_run`: refuse to mix
  runs in one folder unless resuming or overwriting;
* :func:`write_results`: ``results.json``, written atomically.

:class:`~paddle_binbert.train.trainer.BinBertTrainer` writes the checkpoints (staged in
``.partial-checkpoint-N``, then renamed; :data:`PARTIAL_PREFIX`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from typing import Any, Dict, List, Optional, Tuple

from ..io_utils import write_json_atomic
from .curves import CURVE_FILE

__all__ = [
    "CHECKPOINT_PREFIX",
    "LOSS_TOTALS_FILE",
    "PARTIAL_PREFIX",
    "RESULTS_FILE",
    "TRAINER_STATE_FILE",
    "check_output_dir",
    "checkpoint_folders",
    "checkpoint_problem",
    "clear_previous_run",
    "fsync_dir",
    "fsync_tree",
    "get_last_checkpoint",
    "previous_run_files",
    "resumed_loss_totals",
    "write_results",
]

#: checkpoint folders: ``checkpoint-<global step>`` (PaddleNLP's naming)
CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
#: a checkpoint being written is staged in ``.partial-checkpoint-N`` and renamed when complete
PARTIAL_PREFIX = ".partial-"
#: in every checkpoint: the sum of the training losses of all steps up to it and how many steps
#: that sum covers, so that a resumed run reports the mean over all steps
#: (:meth:`~paddle_binbert.train.trainer.BinBertTrainer.log`)
LOSS_TOTALS_FILE = "loss_totals.json"
TRAINER_STATE_FILE = "trainer_state.json"
#: what a finished run reports (written last)
RESULTS_FILE = "results.json"
#: weight files of a checkpoint (one of them must be there) and the other state files checked by
#: :func:`checkpoint_problem` when present
WEIGHT_FILES = ("model_state.pdparams", "model_state.pdparams.index.json", "model.safetensors")
STATE_FILES = ("optimizer.pdopt", "scheduler.pdparams", "rng_state.pth")

_log = logging.getLogger(__name__)


def fsync_dir(folder: str) -> None:
    """fsync a folder (its entries: a rename into it), ignoring file systems that refuse."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str) -> None:
    """Flush the files of a staged checkpoint to disk before it is renamed into place."""
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as handle:
                    os.fsync(handle.fileno())
            except OSError:
                pass
        fsync_dir(root)


def _pickle_problem(path: str) -> Optional[str]:
    """Why a ``paddle.save`` file is unusable: empty, or a pickle cut short (no STOP opcode at its end)."""
    size = os.path.getsize(path)
    if size == 0:
        return f"{os.path.basename(path)} is empty (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        tail = handle.read(1)
    if head == b"\x80" and tail != b".":  # a pickle (protocol >= 2) always ends with STOP
        return f"{os.path.basename(path)} is truncated ({size} bytes, no end of pickle)"
    return None


def checkpoint_problem(path: str) -> Optional[str]:
    """Why the checkpoint folder ``path`` cannot be resumed from, or None when it is complete.

    Complete: ``trainer_state.json`` is there and is valid JSON (PaddleNLP writes it after the
    weights and the optimizer), a weight file is there, and none of the weight / optimizer /
    scheduler / RNG files is empty or a truncated pickle."""
    state = os.path.join(path, TRAINER_STATE_FILE)
    if not os.path.isfile(state):
        return f"no {TRAINER_STATE_FILE}"
    try:
        with open(state, encoding="utf-8") as handle:
            json.load(handle)
    except (OSError, ValueError) as err:
        return f"{TRAINER_STATE_FILE} is unreadable ({err})"
    weights = [os.path.join(path, n) for n in WEIGHT_FILES if os.path.isfile(os.path.join(path, n))]
    if not weights:
        return f"no weight file ({', '.join(WEIGHT_FILES)})"
    for file in weights + [os.path.join(path, n) for n in STATE_FILES if os.path.isfile(os.path.join(path, n))]:
        problem = _pickle_problem(file) if not file.endswith(".json") else None
        if problem:
            return problem
    return None


def checkpoint_folders(output_dir: str) -> List[Tuple[int, str]]:
    """``(step, path)`` of the ``checkpoint-N`` folders in ``output_dir``, newest first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(match.group(1)), os.path.join(output_dir, name)))
    return sorted(found, reverse=True)


def get_last_checkpoint(output_dir: str) -> Optional[str]:
    """Path of the newest complete ``checkpoint-N`` folder in ``output_dir`` (None if there is none or
    no folder). Incomplete ones (:func:`checkpoint_problem`: a process killed while saving) are
    skipped with a warning naming the folder and what is wrong with it."""
    for _, path in checkpoint_folders(output_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        _log.warning("skipping incomplete checkpoint %s: %s", path, problem)
    return None


def resumed_loss_totals(checkpoint: str) -> Tuple[float, int, int]:
    """``(loss sum, steps it covers, global step)`` of the training before ``checkpoint``.

    From its ``loss_totals.json``; for a checkpoint without one, from the training losses logged in
    its ``trainer_state.json`` (each the mean over its logging window), covering the steps up to the
    last log."""
    state: Dict[str, Any] = {}
    try:
        with open(os.path.join(checkpoint, TRAINER_STATE_FILE), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        pass
    global_step = int(state.get("global_step") or 0)
    try:
        with open(os.path.join(checkpoint, LOSS_TOTALS_FILE), encoding="utf-8") as handle:
            totals = json.load(handle)
        if int(totals["global_step"]) == global_step and math.isfinite(float(totals["loss_sum"])):
            return float(totals["loss_sum"]), int(totals["steps"]), global_step
    except (OSError, ValueError, KeyError, TypeError):
        pass
    loss_sum, previous = 0.0, 0
    for entry in state.get("log_history") or []:
        step = entry.get("step")
        if "loss" in entry and isinstance(step, int) and previous < step <= global_step:
            loss_sum += float(entry["loss"]) * (step - previous)
            previous = step
    return loss_sum, previous, global_step


def previous_run_files(output_dir: str) -> List[str]:
    """The ``checkpoint-N`` folders, ``results.json`` and, for distillation chains, the ``stage<i>_*``
    folders and ``chain.json`` a previous run left in ``output_dir``."""
    if not os.path.isdir(output_dir):
        return []
    found = sorted(
        d
        for d in os.listdir(output_dir)
        if d.startswith(CHECKPOINT_PREFIX)
        or (d.startswith("stage") and os.path.isdir(os.path.join(output_dir, d)))
        or d.startswith(PARTIAL_PREFIX + CHECKPOINT_PREFIX)
    )
    for name in (RESULTS_FILE, "chain.json", CURVE_FILE):
        if os.path.isfile(os.path.join(output_dir, name)):
            found.append(name)
    return found


def check_output_dir(output_dir: str, resume: bool, overwrite: bool) -> Optional[str]:
    """Create ``output_dir`` if needed; return an error message (for ``parser.error``) when it is not
    a writable folder or holds a previous run and neither ``resume`` nor ``overwrite`` is set."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return f"--output_dir {output_dir} exists and is not a folder"
    previous = previous_run_files(output_dir)
    if previous and not (resume or overwrite):
        return (
            f"--output_dir {output_dir} already holds a run ({', '.join(previous[:3])}); "
            "pass --resume to continue it or --overwrite_output_dir to start over"
        )
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as err:
        return f"cannot create --output_dir {output_dir}: {err}"
    if not os.access(output_dir, os.W_OK):
        return f"--output_dir {output_dir} is not writable"
    return None


def clear_previous_run(output_dir: str) -> None:
    """Delete the checkpoints and ``results.json`` of a previous run (``--overwrite_output_dir``)."""
    for name in previous_run_files(output_dir):
        path = os.path.join(output_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def write_results(output_dir: str, results: Dict[str, Any]) -> str:
    """Write ``results.json`` atomically (temporary file + rename) and return its path."""
    return write_json_atomic(os.path.join(output_dir, RESULTS_FILE), results)
