"""Build (once, cached) and load the runtime's shared library with ctypes; no Paddle involved.

The library is the engine's own C++ code compiled without Paddle headers:
``engine/csrc/binbert_kernels.cc`` (the kernels), ``engine/csrc/binbert_forward.cc`` (the whole
forward pass, the same function the Paddle operator ``binbert_bert_forward`` calls) and
``runtime/csrc/binbert_capi.cc`` (a small C API over it). It is compiled with the engine's compiler
flags by ``g++`` (``$CXX``, ``c++``, ``g++`` or ``clang++``) on first use, in about 10-20 s, into
``$PADDLE_BINBERT_CACHE/runtime/<hash>/`` (default ``~/.cache/paddle_binbert/runtime/<hash>``;
the hash covers the sources, the flags and the compiler), and reused by later processes.

Like the engine's operators (:mod:`paddle_binbert.engine.ops`, the same cache logic:
:mod:`paddle_binbert.engine.buildcache`): a file lock serialises concurrent
builds; the library is compiled to a temporary name and renamed into place; after it loads, its
SHA-256 is recorded next to it (``build_record.json``), and before a cached library is loaded again
it must match that record (or, without a record, load in a subprocess). A truncated or corrupted
library is deleted and rebuilt, with a warning, instead of crashing the process that maps it.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable, List, Optional

from ..engine import buildcache
from ..engine import ops as engine_ops
from ..engine.buildcache import BUILD_LOG_NAME, RECORD_NAME

__all__ = [
    "ABI_VERSION",
    "LIBRARY_NAME",
    "RuntimeUnavailableError",
    "build_dir",
    "check_cached_build",
    "library_path",
    "load_library",
    "record_path",
]

logger = logging.getLogger("paddle_binbert.runtime")

ENGINE_CSRC = Path(engine_ops.CSRC)
RUNTIME_CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (
    ENGINE_CSRC / "binbert_kernels.cc",
    ENGINE_CSRC / "binbert_forward.cc",
    RUNTIME_CSRC / "binbert_capi.cc",
)
HEADERS = (ENGINE_CSRC / "binbert_kernels.h", ENGINE_CSRC / "binbert_forward.h")
# the engine's flags (exact float evaluation order, no fast-math, no OpenMP), plus a shared library
CXX_FLAGS = list(engine_ops.CXX_FLAGS) + ["-fPIC", "-shared", f"-I{ENGINE_CSRC}"]
LD_FLAGS = list(engine_ops.LD_FLAGS)
LIBRARY_NAME = "libbinbert_runtime.so"
ABI_VERSION = 1
BUILD_TIMEOUT = 900
PROBE_TIMEOUT = 120
# loads the library in a throw-away process: a truncated or corrupted library can kill the process
# that maps it (SIGBUS), so a library without a checksum record is never tried in the caller's process
_PROBE_CODE = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
version = lib.bbrt_abi_version()
if version != int(sys.argv[2]):
    sys.exit(f"{sys.argv[1]} has C API version {version}, expected {sys.argv[2]}")
"""

_LOCK = threading.Lock()
_LIBRARY: Optional[ctypes.CDLL] = None
_ERROR: Optional[BaseException] = None


class RuntimeUnavailableError(RuntimeError):
    """The runtime's shared library cannot be built or loaded (no C++ compiler, unsupported
    platform, a failed build...). ``advice`` says how to fix it."""

    def __init__(self, message: str, advice: Optional[str] = None) -> None:
        super().__init__(message)
        self.advice = advice or "see the reason above"


def _compiler_id(compiler: str) -> str:
    """The compiler's path and resolved target (part of the build key)."""
    return f"{compiler}|{os.path.realpath(compiler)}"


def _build_key(compiler: str) -> str:
    digest = hashlib.sha256()
    for path in SOURCES + HEADERS:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(" ".join(CXX_FLAGS[:-1] + LD_FLAGS).encode())  # not the -I path: the key survives a move
    digest.update(_compiler_id(compiler).encode())
    digest.update(f"abi{ABI_VERSION}-{platform.machine()}".encode())
    return digest.hexdigest()[:16]


def build_dir(compiler: Optional[str] = None) -> Path:
    """Folder holding (or about to hold) the library built from the current sources by ``compiler``
    (default: the one :func:`load_library` would use)."""
    compiler = compiler or buildcache.find_compiler() or "none"
    return buildcache.cache_root() / "runtime" / _build_key(compiler)


def library_path(target: Optional[Path] = None) -> Path:
    """The shared library of the build folder ``target`` (default :func:`build_dir`)."""
    return (build_dir() if target is None else Path(target)) / LIBRARY_NAME


def record_path(target: Optional[Path] = None) -> Path:
    """The build record (``build_record.json``) of the build folder ``target`` (default :func:`build_dir`)."""
    return (build_dir() if target is None else Path(target)) / RECORD_NAME


def _write_record(target: Path) -> None:
    buildcache.write_record(record_path(target), library_path(target), target.name, logger)


def _probe(lib: Path, timeout: float = PROBE_TIMEOUT) -> Optional[str]:
    """Load ``lib`` in a subprocess; None when it loads and has the expected C API, else why not."""
    return buildcache.probe_in_subprocess(lib, _PROBE_CODE, [str(ABI_VERSION)], timeout)


def check_cached_build(target: Optional[Path] = None) -> Optional[str]:
    """Why the cached library of ``target`` (default :func:`build_dir`) cannot be used, or None when
    it is usable or absent (a recorded SHA-256 must match; without a record it must load in a
    subprocess, and then gets its record)."""
    target = build_dir() if target is None else Path(target)
    return buildcache.check_library(library_path(target), record_path(target), target.name, _probe, logger)


def _discard(target: Path) -> None:
    for name in (LIBRARY_NAME, RECORD_NAME):
        try:
            (target / name).unlink()
        except FileNotFoundError:
            pass
    if (target / LIBRARY_NAME).exists():
        raise OSError(f"cannot delete the damaged runtime library {target / LIBRARY_NAME}; delete it by hand")


def _compile(compiler: str, target: Path, verbose: bool) -> None:
    """Compile the library to a temporary file in ``target`` and rename it into place."""
    tmp = target / f".{LIBRARY_NAME}.{os.getpid()}.tmp"
    cmd: List[str] = [compiler, *CXX_FLAGS, *[str(s) for s in SOURCES], "-o", str(tmp), *LD_FLAGS]
    log = target / BUILD_LOG_NAME
    logger.info("paddle_binbert.runtime: compiling the 1-bit kernels into %s (once, about 10-20 s)", target)
    try:
        with open(log, "w", encoding="utf-8") as out:
            out.write(" ".join(cmd) + "\n")
            out.flush()
            proc = subprocess.run(
                cmd,
                stdout=None if verbose else out,
                stderr=None if verbose else subprocess.STDOUT,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(compiler).name} exited with status {proc.returncode}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target / LIBRARY_NAME)
    finally:
        if tmp.exists():
            tmp.unlink()


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Argument and result types of the C API (see binbert_capi.cc)."""
    c = ctypes
    p = c.c_void_p
    lib.bbrt_abi_version.restype = c.c_int
    lib.bbrt_abi_version.argtypes = []
    lib.bbrt_profile_size.restype = c.c_int
    lib.bbrt_profile_size.argtypes = []
    lib.bb_best_isa.restype = c.c_int
    lib.bb_best_isa.argtypes = []
    lib.bb_max_threads.restype = c.c_int
    lib.bb_max_threads.argtypes = []
    lib.bbrt_model_create.restype = p
    lib.bbrt_model_create.argtypes = [c.c_int64, p, p, p, p, p, c.c_char_p, c.c_int64]
    lib.bbrt_model_free.restype = None
    lib.bbrt_model_free.argtypes = [p]
    lib.bbrt_forward.restype = c.c_int
    lib.bbrt_forward.argtypes = [
        p,  # model
        p,  # ids
        p,  # types
        p,  # mask
        c.c_int64,  # batch
        c.c_int64,  # seq_len
        p,  # icfg
        c.c_int32,
        p,  # fcfg
        c.c_int32,
        p,  # logits
        c.c_int64,
        p,  # hidden
        c.c_int64,
        p,  # out_shape
        c.c_char_p,  # err
        c.c_int64,
    ]
    lib.bbrt_profile_read.restype = c.c_int
    lib.bbrt_profile_read.argtypes = [p, c.c_int32]
    version = lib.bbrt_abi_version()
    if version != ABI_VERSION:
        raise RuntimeError(f"the library has C API version {version}, this paddle_binbert expects {ABI_VERSION}")
    return lib


def load_library(verbose: bool = False) -> ctypes.CDLL:
    """Compile (first call per source version) and load the runtime library; cached per process.

    A cached library is checked before it is loaded (recorded SHA-256, or a test load in a
    subprocess); a truncated or corrupted one is deleted and rebuilt, with a warning. ``verbose``
    shows the compiler output (otherwise it goes to ``build.log`` in the build folder). Raises
    :class:`RuntimeUnavailableError` with the reason when the library cannot be built or loaded.
    """
    global _LIBRARY, _ERROR
    with _LOCK:
        if _LIBRARY is not None:
            return _LIBRARY
        if _ERROR is not None:
            raise _ERROR
        where = buildcache.unsupported_platform()
        if where is not None:
            _ERROR = RuntimeUnavailableError(
                f"paddle_binbert.runtime supports Linux x86-64 only (this is {where})",
                advice="run the packed model on Linux x86-64, or use paddle_binbert.engine with backend='simulated'",
            )
            raise _ERROR
        compiler = buildcache.find_compiler()
        if compiler is None:
            _ERROR = RuntimeUnavailableError(
                "paddle_binbert.runtime compiles its 1-bit kernels on first use and no C++ compiler was found "
                "(tried $CXX, c++, g++, clang++). Install one (e.g. `apt-get install g++`, GCC >= 8), then reload",
                advice="install a C++ compiler (e.g. `apt-get install g++`)",
            )
            raise _ERROR
        target = build_dir(compiler)

        def build_and_load(stage: Callable[[str], None]) -> ctypes.CDLL:
            if not library_path(target).exists():
                stage("compiling the library")
                _compile(compiler, target, verbose)
            stage("loading the library")
            lib = _declare(ctypes.CDLL(str(library_path(target))))
            _write_record(target)
            return lib

        unusable = "paddle_binbert.runtime: the cached library is unusable (%s); deleting it and rebuilding in %s"
        try:
            lib = buildcache.load_locked(target, check_cached_build, _discard, build_and_load, unusable, logger)
        except buildcache.BuildError as failure:  # any build/load failure means "runtime unavailable"
            _ERROR = RuntimeUnavailableError(
                failure.describe("paddle_binbert.runtime", verbose),
                advice=(
                    f"fix the build error (the compiler output is in {failure.log}; rerun "
                    "paddle_binbert.runtime.library.load_library(verbose=True) to see it) or delete "
                    f"{target} to rebuild from scratch"
                ),
            )
            raise _ERROR from failure.error
        _LIBRARY = lib
        return lib


def remove_build(target: Optional[Path] = None) -> None:
    """Delete the build folder ``target`` (default :func:`build_dir`) so that the next process compiles anew."""
    shutil.rmtree(build_dir() if target is None else Path(target), ignore_errors=True)
