"""Shared helpers of the robustness tests: saved tiny students, folder snapshots, scripts run in a
subprocess with a private build cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Sequence

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
