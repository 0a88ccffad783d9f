"""Lazy package attributes (PEP 562): a package's public names imported on first access.

``paddle_binbert`` and ``paddle_binbert.engine`` use it so that importing them (and the Paddle-free
:mod:`paddle_binbert.runtime`) does not import Paddle or PaddleNLP::

    __getattr__, __dir__ = lazy_attributes(__name__, {"Taskflow": "inference.taskflow.taskflow"})

Standard library only.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, List, Mapping, Sequence, Tuple

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, exports: Mapping[str, str], submodules: Sequence[str] = ()
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    ``exports`` maps each public name to the submodule (relative to ``package``) that defines it; the
    submodule is imported on the name's first access, and the value is then cached in the package.
    ``submodules`` are names of submodules importable as attributes (``package.name``).
    """

    def __getattr__(name: str) -> Any:
        """Import the submodule defining ``name`` on first access (PEP 562)."""
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports) | set(submodules))

    return __getattr__, __dir__
