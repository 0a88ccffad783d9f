"""Let the MKL bundled with Paddle use its AVX2 kernels on AMD CPUs (no Paddle import).

Paddle's CPU wheels bundle an MKL (``libmklml_intel``) that picks its kernels by CPU vendor: on AMD
processors it falls back to a generic code path, and a float32 matmul runs at a quarter of the
speed the same core reaches with AVX2 kernels (measured on a 2-core AMD EPYC with AVX-512, one
1024 x 1024 x 1024 matmul per call, one thread: 15.3 GFLOP/s by default, 56-63 GFLOP/s with
``MKL_DEBUG_CPU_TYPE=5``; numbers in docs/training.md). That MKL honours ``MKL_DEBUG_CPU_TYPE=5``,
which selects the AVX2 kernels whatever the vendor. The variable is read at MKL's first call, so
setting it when ``paddle_binbert`` is imported works even after ``import paddle``, as long as no
Paddle matmul has run yet.

Set only when all hold: the CPU's vendor is AMD, it has AVX2, the variable is not set already, and
``PADDLE_BINBERT_MKL_AVX2`` is not ``0`` (the opt-out). Intel CPUs are left alone (there the
variable would cap AVX-512 machines at AVX2). The packed 1-bit engine and the runtime without
Paddle do not use MKL and are not affected.
"""

from __future__ import annotations

import os
from typing import MutableMapping, Optional

from .machine import cpu_vendor_and_flags

__all__ = ["OPT_OUT", "enable_mkl_avx2_on_amd"]

#: set to "0" to keep MKL's own choice of kernels
OPT_OUT = "PADDLE_BINBERT_MKL_AVX2"


def enable_mkl_avx2_on_amd(
    environ: Optional[MutableMapping[str, str]] = None, cpuinfo_path: str = "/proc/cpuinfo"
) -> bool:
    """Set ``MKL_DEBUG_CPU_TYPE=5`` in ``environ`` (default ``os.environ``) on an AMD CPU with AVX2,
    unless it is set already or ``PADDLE_BINBERT_MKL_AVX2=0``. Returns whether it set it."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT, "") == "0" or "MKL_DEBUG_CPU_TYPE" in env:
        return False
    cpu = cpu_vendor_and_flags(cpuinfo_path)
    if cpu is None:
        return False
    vendor, flags = cpu
    if vendor != "AuthenticAMD" or "avx2" not in flags:
        return False
    env["MKL_DEBUG_CPU_TYPE"] = "5"
    return True
