"""Shared helpers of the robustness tests: saved tiny students, folder snapshots, scripts run in a
subprocess with a private build cache, writes that fail part-way (a full disk)."""

from __future__ import annotations

import builtins
import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from tests.engine import make_student

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def save_student(folder: Path, preset: str = "bibert", tokenizer: bool = False):
    """A tiny binarized student (tests/engine's shape) saved with ``save_pretrained``; returns the model."""
    student = make_student(preset, BertForSequenceClassification)
    student.save_pretrained(str(folder))
    if tokenizer:
        BertTokenizer(str(FIXTURES / "vocab.txt")).save_pretrained(str(folder))
    return student


def snapshot(root: Path) -> Dict[str, bytes]:
    """Every file below ``root`` (relative path -> content) and every folder (-> b"<dir>")."""
    out: Dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = b"<dir>" if path.is_dir() else path.read_bytes()
    return out


def run_json_script(script: str, args: Sequence[str], cache: Path, unset: Sequence[str] = ()) -> Dict[str, Any]:
    """Run ``python -c script *args`` from the repository root with ``PADDLE_BINBERT_CACHE=cache``,
    one OpenMP thread and the environment variables ``unset`` removed; it must succeed. Returns its
    last stdout line parsed as JSON, plus its ``stderr``."""
    env = dict(os.environ, PADDLE_BINBERT_CACHE=str(cache), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for name in unset:
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=1200, cwd=ROOT
    )
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


class DiskFull:
    """Make Python-level writes to chosen files fail part-way, as on a full disk.

    While installed (``install(monkeypatch)``), every file opened for writing through ``open`` or
    ``os.fdopen`` whose path satisfies ``match`` accepts ``budget`` more bytes (characters in text
    mode), writes the part of the failing ``write`` that still fits, flushes it, and raises
    ``OSError(ENOSPC)``. ``failed`` lists the paths where this happened."""

    def __init__(self, match: Callable[[str], bool], budget: int = 64) -> None:
        self.match, self.budget, self.failed = match, budget, []

    def install(self, monkeypatch) -> DiskFull:
        real_open, real_fdopen = builtins.open, os.fdopen

        def wrap(handle, path, mode):
            writing = any(flag in str(mode) for flag in "wax+")
            return _FillingFile(handle, str(path), self) if writing and self.match(str(path)) else handle

        def fake_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            return handle if isinstance(file, int) else wrap(handle, os.path.abspath(file), mode)

        def fake_fdopen(fd, mode="r", *args, **kwargs):
            path = os.readlink(f"/proc/self/fd/{fd}")
            return wrap(real_fdopen(fd, mode, *args, **kwargs), path, mode)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "fdopen", fake_fdopen)
        return self


class _FillingFile:
    """A file object that fails once its ``DiskFull`` budget is used up (see :class:`DiskFull`)."""

    def __init__(self, handle, path: str, disk: DiskFull) -> None:
        self._handle, self._path, self._disk, self._written = handle, path, disk, 0

    def write(self, data):
        room = self._disk.budget - self._written
        if len(data) > room:
            self._handle.write(data[: max(room, 0)])
            self._handle.flush()
            self._disk.failed.append(self._path)
            raise OSError(errno.ENOSPC, f"No space left on device (injected): {self._path}")
        self._written += len(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __iter__(self):
        return iter(self._handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)


def kill_after_checkpoint(monkeypatch, step: int, only_in: Optional[str] = None) -> None:
    """Make training stop like a kill right after ``checkpoint-<step>`` is saved: ``KeyboardInterrupt``
    out of ``BinBertTrainer._save_checkpoint`` (only in runs whose output folder is named ``only_in``,
    if given). ``monkeypatch.undo()`` restores the trainer."""
    from paddle_binbert.train.trainer import BinBertTrainer

    real_save = BinBertTrainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        if self.state.global_step == step and (only_in is None or os.path.basename(self.args.output_dir) == only_in):
            raise KeyboardInterrupt(f"killed after checkpoint-{step} (injected)")

    monkeypatch.setattr(BinBertTrainer, "_save_checkpoint", save_then_die)
