"""Build and load the engine's Paddle custom operators (``paddle.utils.cpp_extension.load``).

The C++ sources in ``csrc/`` are compiled once per (source content, compiler flags, Paddle and
Python version) into ``$PADDLE_BINBERT_CACHE/engine/<hash>`` (default
``~/.cache/paddle_binbert/engine/<hash>``); later processes reuse that build. A file lock
serialises concurrent builds. Without a working C++ compiler :func:`load_ops` raises
:class:`EngineUnavailableError`; ``paddle_binbert.engine.load(packed_dir)`` then logs one warning
and falls back to the simulated backend (same logits from the same packed file, Paddle float32
arithmetic, slower), unless ``backend="native"`` (or ``PADDLE_BINBERT_ENGINE=native``) was asked for.

Instruction sets (``isa``): ``avx512`` (AVX-512 VPOPCNTDQ), ``avx2``, ``portable``; ``None``
means the environment variable ``PADDLE_BINBERT_ISA`` if set, else the best the CPU supports.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import platform
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, Optional, Union

__all__ = [
    "EngineUnavailableError",
    "ISA_CODES",
    "ISA_NAMES",
    "build_dir",
    "cpu_info",
    "is_available",
    "load_ops",
    "resolve_isa",
    "resolve_threads",
]

EXTENSION_NAME = "paddle_binbert_engine"
CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("binbert_kernels.cc", "binbert_ops.cc")
# No -ffast-math and no FMA contraction: float expressions must be evaluated exactly as written so
# that quantizer decisions (signs, 1[u >= 1/2], bool(S)) match the simulated Paddle model.
# Threads come from the kernels' own pool (std::thread), not OpenMP: see binbert_kernels.cc.
CXX_FLAGS = ["-O3", "-std=c++17", "-pthread", "-ffp-contract=off", "-fno-fast-math", "-w"]
LD_FLAGS = ["-pthread"]

ISA_CODES: Dict[str, int] = {"portable": 0, "avx2": 1, "avx512": 2}
ISA_NAMES: Dict[int, str] = {v: k for k, v in ISA_CODES.items()}
ISA_ENV = "PADDLE_BINBERT_ISA"

_LOCK = threading.Lock()
_MODULE: Optional[ModuleType] = None
_ERROR: Optional[BaseException] = None
_INFO: Optional[Dict[str, int]] = None


class EngineUnavailableError(RuntimeError):
    """The custom operators cannot be built or loaded (no C++ compiler, unsupported platform...)."""


def _cache_root() -> Path:
    env = os.environ.get("PADDLE_BINBERT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "paddle_binbert"


def _build_key() -> str:
    import paddle

    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode())
        digest.update((CSRC / name).read_bytes())
    digest.update(" ".join(CXX_FLAGS + LD_FLAGS).encode())
    digest.update(paddle.__version__.encode())
    digest.update(f"{sys.version_info[:2]}-{platform.machine()}".encode())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    """Folder holding (or about to hold) the compiled operators of the current sources."""
    return _cache_root() / "engine" / _build_key()


def _find_compiler() -> Optional[str]:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_ops(verbose: bool = False) -> ModuleType:
    """Compile (first call per source version) and load the custom operators; cached per process.

    Raises :class:`EngineUnavailableError` with the reason when the build or the load fails.
    """
    global _MODULE, _ERROR
    with _LOCK:
        if _MODULE is not None:
            return _MODULE
        if _ERROR is not None:
            raise EngineUnavailableError(str(_ERROR)) from _ERROR
        if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
            _ERROR = EngineUnavailableError(
                f"the binbert engine supports Linux x86-64 only (this is {sys.platform}/{platform.machine()}); "
                "use the simulated model (paddle_binbert.load_model) instead"
            )
            raise _ERROR
        if _find_compiler() is None:
            _ERROR = EngineUnavailableError(
                "the binbert engine compiles its Paddle custom operators on first use and no C++ compiler was "
                "found (tried $CXX, c++, g++, clang++). Install one (e.g. `apt-get install g++`, GCC >= 8 with "
                "OpenMP) or use the simulated model (paddle_binbert.load_model), which gives the same logits"
            )
            raise _ERROR
        try:
            from paddle.utils.cpp_extension import load

            target = build_dir()
            target.mkdir(parents=True, exist_ok=True)
            with _file_lock(target / ".lock"):
                captured = io.StringIO()
                redirect = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(captured)
                with redirect:
                    module = load(
                        name=EXTENSION_NAME,
                        sources=[str(CSRC / name) for name in SOURCES],
                        extra_cxx_cflags=list(CXX_FLAGS),
                        extra_ldflags=list(LD_FLAGS),
                        build_directory=str(target),
                        verbose=verbose,
                    )
        except Exception as err:  # noqa: BLE001 - any build/load failure means "engine unavailable"
            _ERROR = err
            raise EngineUnavailableError(
                f"building/loading the binbert engine operators failed ({type(err).__name__}: {err}); "
                f"build folder {build_dir()}. Use the simulated model (paddle_binbert.load_model) instead, "
                "or rerun with paddle_binbert.engine.ops.load_ops(verbose=True) to see the compiler output"
            ) from err
        _MODULE = module
        return module


def is_available() -> bool:
    """True when the operators build and load on this machine (builds them if needed)."""
    try:
        load_ops()
    except EngineUnavailableError:
        return False
    return True


def cpu_info() -> Dict[str, Union[int, str]]:
    """``{"best_isa": 2, "best_isa_name": "avx512", "max_threads": n}`` as seen by the C++ side."""
    global _INFO
    if _INFO is None:
        import paddle

        info = load_ops().binbert_cpu_info(paddle.zeros([1], dtype="float32")).numpy()
        _INFO = {"best_isa": int(info[0]), "best_isa_name": ISA_NAMES[int(info[0])], "max_threads": int(info[1])}
    return dict(_INFO)


def resolve_isa(isa: Union[None, int, str] = None) -> int:
    """ISA code to run: ``isa`` (name or code), else ``$PADDLE_BINBERT_ISA``, else the best supported.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when the CPU lacks the ISA.
    """
    if isa is None:
        isa = os.environ.get(ISA_ENV) or None
    best = int(cpu_info()["best_isa"])
    if isa is None or isa == "auto":
        return best
    if isinstance(isa, str):
        if isa.lower() not in ISA_CODES:
            raise ValueError(f"unknown ISA {isa!r}; valid: {sorted(ISA_CODES)} or 'auto'")
        code = ISA_CODES[isa.lower()]
    else:
        code = int(isa)
        if code not in ISA_NAMES:
            raise ValueError(f"unknown ISA code {isa!r}; valid: {ISA_NAMES}")
    if code > best:
        raise RuntimeError(f"ISA {ISA_NAMES[code]!r} requested but this CPU supports at most {ISA_NAMES[best]!r}")
    return code


def resolve_threads(num_threads: Optional[int] = None) -> int:
    """Thread count: ``num_threads``, else the CPUs this process may run on."""
    if num_threads is not None and int(num_threads) > 0:
        return int(num_threads)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
