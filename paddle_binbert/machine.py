"""Facts about the machine: CPU model, vendor and flags, load (no Paddle import)."""

from __future__ import annotations

import os
import platform
from typing import Optional, Set, Tuple

__all__ = ["cpu_name", "cpu_vendor_and_flags", "load_average"]


def load_average() -> str:
    """The 1 / 5 / 15-minute load averages as ``"a / b / c"`` ("?" where the OS has none)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_vendor_and_flags(cpuinfo_path: str = "/proc/cpuinfo") -> Optional[Tuple[str, Set[str]]]:
    """``(vendor_id, flags)`` of the first CPU in ``cpuinfo_path``, None where it cannot be read."""
    vendor, flags = None, None
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and vendor is None:
                    vendor = value.strip()
                elif key == "flags" and flags is None:
                    flags = set(value.split())
                if vendor is not None and flags is not None:
                    break
    except OSError:
        return None
    if vendor is None or flags is None:
        return None
    return vendor, flags
