"""Facts about the machine a benchmark ran on, for its report (no Paddle import)."""

from __future__ import annotations

import os
import platform

__all__ = ["cpu_name", "load_average"]


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
