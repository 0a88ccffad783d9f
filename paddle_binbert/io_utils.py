"""Atomic file writes: a result file is either the old one or the complete new one, never half written
(an interrupted run must not leave a truncated ``results.json`` / cache behind)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Type, Union

__all__ = ["decode_utf8", "parse_json", "read_yaml_mapping", "sha256_file", "write_json_atomic", "write_text_atomic"]

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


def decode_utf8(raw: bytes, label: str, error: Type[Exception] = ValueError, expected: str = "UTF-8 text") -> str:
    """``raw`` decoded as UTF-8 (a leading BOM dropped). A bad byte raises ``error`` naming ``label``,
    the byte, its line and its byte offset in ``raw``."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        offset = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, offset) + 1
        raise error(
            f"{label}: expected {expected}, invalid byte {raw[offset : offset + 1]!r} at line {line} "
            f"(byte offset {offset})"
        ) from None


def parse_json(text: str, label: str, error: Type[Exception] = ValueError) -> Any:
    """``json.loads(text)``; invalid JSON raises ``error`` naming ``label``, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{label}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


def read_yaml_mapping(path: PathLike, error: Type[Exception] = ValueError) -> dict:
    """The YAML file ``path`` as a dict (an empty file gives ``{}``); invalid YAML or another top-level
    type raises ``error`` naming the file (and, for YAML errors, the line and column)."""
    import yaml  # here, not at the top: the runtime without Paddle imports this module and needs no YAML

    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise error(f"{path}: invalid YAML: {err}") from None
        except UnicodeDecodeError as err:
            raise error(f"{path}: not UTF-8 text (byte offset {err.start})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
