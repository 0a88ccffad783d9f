"""Shared helpers of the robustness tests: saved tiny students and folder snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from tests.engine import make_student

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


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
