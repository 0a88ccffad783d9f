"""Atomic file writes: a result file is either the old one or the complete new one, never half written
(an interrupted run must not leave a truncated ``results.json`` / cache behind)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Union

__all__ = ["sha256_file", "write_json_atomic", "write_text_atomic"]

PathLike = Union[str, "os.PathLike[str]"]


def write_text_atomic(path: PathLike, text: str) -> str:
    """Write ``text`` to a temporary file in ``path``'s folder, fsync it, then rename it over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json_atomic(path: PathLike, obj: Any, indent: int = 2) -> str:
    """``obj`` as JSON (UTF-8, ``default=str`` for paths and numpy scalars), written atomically; returns the path."""
    return write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=indent, default=str) + "\n")


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of the file ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
