"""Let the MKL bundled with Paddle use its AVX2 kernels on AMD CPUs (no Paddle import).

Paddle's CPU wheels bundle an MKL (``libmklml_intel``) that picks its kernels by CPU vendor: on AMD
processors it falls back to a generic code path, and a float32 matmul runs at a quarter of the
speed the same core reaches with AVX2 kernels (measured on a 2-core AMD EPYC with AVX2, one
1024 x 1024 x 1024 matmul per call, one thread: 15-17.5 GFLOP/s by default, 53-63 GFLOP/s with
``MKL_DEBUG_CPU_TYPE=5``; numbers in docs/training.md). That MKL honours ``MKL_DEBUG_CPU_TYPE=5``,
which selects the AVX2 kernels whatever the vendor. The variable is read at MKL's first call, so
setting it when ``paddle_binbert`` is imported works even after ``import paddle``, as long as no
Paddle matmul has run yet.

Opt-in (``PADDLE_BINBERT_MKL_AVX2=1``), because the AVX2 path changes more than speed: Paddle's
CPU GELU takes its erf from the same MKL, and with the AVX2 kernels it underflows to zero from
x <= -5.5408 instead of x <= -5.5547. The packed engine and the runtime reproduce the sign of
GELU with the default path's threshold (``engine.layout.GELU_SIGN_THRESHOLD``), so a student
evaluated in Paddle with the AVX2 path can disagree with its packed form on activations in that
window. Hence: set it for training (``benchmarks/glue_students.sh`` and the demo's training part
do), not for evaluations compared with the engine (``pack --verify``, ``benchmarks/ship_sst2.py``).
Repeated calls on the same input may also differ in the last bits on that path.

Set only when all hold: the opt-in is ``1``, the CPU's vendor is AMD, it has AVX2, and
``MKL_DEBUG_CPU_TYPE`` is not set already. Intel CPUs are left alone (there the variable would cap
AVX-512 machines at AVX2). The packed 1-bit engine and the runtime without Paddle do not use MKL.
"""

from __future__ import annotations

import os
from typing import MutableMapping, Optional

from .machine import cpu_vendor_and_flags

__all__ = ["OPT_IN", "enable_mkl_avx2_on_amd"]

#: set to "1" to let Paddle's MKL use its AVX2 kernels on AMD CPUs (training)
OPT_IN = "PADDLE_BINBERT_MKL_AVX2"


def enable_mkl_avx2_on_amd(
    environ: Optional[MutableMapping[str, str]] = None, cpuinfo_path: str = "/proc/cpuinfo"
) -> bool:
    """Set ``MKL_DEBUG_CPU_TYPE=5`` in ``environ`` (default ``os.environ``) if ``PADDLE_BINBERT_MKL_AVX2=1``
    and the CPU is an AMD one with AVX2, unless the variable is set already. Returns whether it set it."""
    env = os.environ if environ is None else environ
    if env.get(OPT_IN, "") != "1" or "MKL_DEBUG_CPU_TYPE" in env:
        return False
    cpu = cpu_vendor_and_flags(cpuinfo_path)
    if cpu is None:
        return False
    vendor, flags = cpu
    if vendor != "AuthenticAMD" or "avx2" not in flags:
        return False
    env["MKL_DEBUG_CPU_TYPE"] = "5"
    return True
