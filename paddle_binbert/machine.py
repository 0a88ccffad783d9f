"""Facts about the machine: CPU model, vendor and flags, usable CPUs, load (no Paddle import)."""

from __future__ import annotations

import os
import platform
from typing import Dict, Optional, Sequence, Set, Tuple

__all__ = ["cpu_name", "cpu_vendor_and_flags", "load_average", "usable_cpus"]


def load_average() -> str:
    """The 1 / 5 / 15-minute load averages as ``"a / b / c"`` ("?" where the OS has none)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; every CPU where the OS has none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _first_cpu_fields(keys: Sequence[str], cpuinfo_path: str = "/proc/cpuinfo") -> Optional[Dict[str, str]]:
    """The first value of each of ``keys`` in ``cpuinfo_path`` (those found), None if unreadable."""
    found: Dict[str, str] = {}
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in keys and key not in found:
                    found[key] = value.strip()
                    if len(found) == len(keys):
                        break
    except OSError:
        return None
    return found


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what :mod:`platform` knows."""
    name = (_first_cpu_fields(("model name",)) or {}).get("model name")
    return name or platform.processor() or platform.machine()


def cpu_vendor_and_flags(cpuinfo_path: str = "/proc/cpuinfo") -> Optional[Tuple[str, Set[str]]]:
    """``(vendor_id, flags)`` of the first CPU in ``cpuinfo_path``, None where it cannot be read."""
    found = _first_cpu_fields(("vendor_id", "flags"), cpuinfo_path)
    if found is None or "vendor_id" not in found or "flags" not in found:
        return None
    return found["vendor_id"], set(found["flags"].split())
