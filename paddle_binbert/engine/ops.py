"""Build and load the engine's Paddle custom operators (``paddle.utils.cpp_extension.load``).

The C++ sources in ``csrc/`` are compiled once per (source content, compiler flags, Paddle and
Python version) into ``$PADDLE_BINBERT_CACHE/engine/<hash>`` (default
``~/.cache/paddle_binbert/engine/<hash>``); later processes reuse that build (the cache logic,
shared with :mod:`paddle_binbert.runtime`, is :mod:`.buildcache`). A file lock serialises
concurrent builds. After a library loads, its SHA-256 is recorded next to it
(``build_record.json``); before a cached library is loaded again it must match that record (or,
without a record, load in a subprocess), and a truncated or corrupted library is deleted and rebuilt
(with a warning) instead of crashing the build (``Bus error``) on every run. When the operators
cannot be built (no C++ compiler, unsupported platform, a compiler error) :func:`load_ops` raises
:class:`EngineUnavailableError` saying why; ``paddle_binbert.engine.load(packed_dir)`` then logs one
warning with that reason and falls back to the simulated backend (same logits from the same
packed file, Paddle float32 arithmetic, slower), unless ``backend="native"`` (or
``PADDLE_BINBERT_ENGINE=native``) was asked for.

Instruction sets (``isa``): ``avx512`` (AVX-512 VPOPCNTDQ), ``avx2``, ``portable``; ``None``
means the environment variable ``PADDLE_BINBERT_ISA`` if set, else the best the CPU supports.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import platform
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, Iterator, Optional, Union

from ..machine import usable_cpus
from . import buildcache
from .buildcache import BUILD_LOG_NAME, RECORD_NAME, find_compiler

__all__ = [
    "EngineUnavailableError",
    "ISA_CODES",
    "ISA_NAMES",
    "build_dir",
    "check_cached_build",
    "cpu_info",
    "discard_build",
    "is_available",
    "find_compiler",
    "library_path",
    "load_ops",
    "probe_library",
    "record_path",
    "resolve_isa",
    "resolve_threads",
]

EXTENSION_NAME = "paddle_binbert_engine"
CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("binbert_kernels.cc", "binbert_forward.cc", "binbert_ops.cc")
# included by the sources: part of the build key, not compiled on their own
HEADERS = ("binbert_kernels.h", "binbert_forward.h")
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
    """The custom operators cannot be built or loaded (no C++ compiler, unsupported platform, a
    failed build...). ``advice`` says how to get the native engine back."""

    def __init__(self, message: str, advice: Optional[str] = None) -> None:
        super().__init__(message)
        self.advice = advice or "see the reason above"


def _build_key() -> str:
    import paddle

    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update(name.encode())
        digest.update((CSRC / name).read_bytes())
    digest.update(" ".join(CXX_FLAGS + LD_FLAGS).encode())
    digest.update(paddle.__version__.encode())
    digest.update(f"{sys.version_info[:2]}-{platform.machine()}".encode())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    """Folder holding (or about to hold) the compiled operators of the current sources."""
    return buildcache.cache_root() / "engine" / _build_key()


# ---------------------------------------------------------------------------------------------
# the cached build: checksum record, probe, rebuild (:mod:`.buildcache`)
# ---------------------------------------------------------------------------------------------
PROBE_OP = "binbert_bert_forward"
PROBE_TIMEOUT = 600
# loads the library the way paddle.utils.cpp_extension.load does, in a throw-away process: a
# truncated or corrupted library can kill the process that maps it (SIGBUS), so it is never tried
# in the caller's process
_PROBE_CODE = """
import sys
from paddle.utils.cpp_extension.extension_utils import load_op_meta_info_and_register_op
names = load_op_meta_info_and_register_op(sys.argv[1])
if sys.argv[2] not in names:
    sys.exit(f"{sys.argv[1]} registers no operator {sys.argv[2]} (it has {sorted(names)})")
"""

logger = logging.getLogger("paddle_binbert.engine")


def library_path(target: Optional[Path] = None) -> Path:
    """The compiled operator library (``.so``) of the build folder ``target`` (default :func:`build_dir`)."""
    target = build_dir() if target is None else Path(target)
    return target / EXTENSION_NAME / f"{EXTENSION_NAME}.so"


def record_path(target: Optional[Path] = None) -> Path:
    """The build record (``build_record.json``, next to the library) of the build folder ``target``."""
    return library_path(target).parent / RECORD_NAME


def _write_record(target: Path) -> None:
    buildcache.write_record(record_path(target), library_path(target), target.name, logger)


def probe_library(lib: Path, timeout: float = PROBE_TIMEOUT) -> Optional[str]:
    """Load ``lib`` in a subprocess; None when it loads and registers the engine's operators, else
    why not (e.g. ``killed by SIGBUS (Bus error)`` for a truncated file)."""
    return buildcache.probe_in_subprocess(lib, _PROBE_CODE, [PROBE_OP], timeout)


def check_cached_build(target: Optional[Path] = None) -> Optional[str]:
    """Why the cached library of ``target`` (default :func:`build_dir`) cannot be used, or None when
    it is usable or absent.

    A library with a build record (written after it last loaded) must match the recorded SHA-256; one
    without a record (an interrupted build, a build of an older paddle_binbert) must load in a
    subprocess (:func:`probe_library`), and then gets its record.
    """
    target = build_dir() if target is None else Path(target)
    return buildcache.check_library(library_path(target), record_path(target), target.name, probe_library, logger)


def discard_build(target: Optional[Path] = None) -> None:
    """Delete the compiled files of ``target`` (library, objects, stubs, record) so that the next
    :func:`load_ops` compiles from scratch."""
    target = build_dir() if target is None else Path(target)
    shutil.rmtree(target / EXTENSION_NAME, ignore_errors=True)
    if (target / EXTENSION_NAME).exists():
        raise OSError(f"cannot delete the damaged engine build {target / EXTENSION_NAME}; delete it by hand")


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (the compiler's and the build subprocess's error output) to ``path``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: leave the output where it goes
        yield
        return
    try:
        with open(path, "w", encoding="utf-8") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _build_and_load(target: Path, verbose: bool) -> ModuleType:
    """``paddle.utils.cpp_extension.load`` into ``target`` (compiles when the library is missing or
    older than the sources); without ``verbose`` the build output goes to ``target/build.log``."""
    from paddle.utils.cpp_extension import load

    captured = io.StringIO()
    quiet = contextlib.ExitStack()
    if not verbose:
        quiet.enter_context(contextlib.redirect_stdout(captured))
        quiet.enter_context(_stderr_to(target / BUILD_LOG_NAME))
    with quiet:
        return load(
            name=EXTENSION_NAME,
            sources=[str(CSRC / name) for name in SOURCES],
            extra_cxx_cflags=list(CXX_FLAGS),
            extra_ldflags=list(LD_FLAGS),
            build_directory=str(target),
            verbose=verbose,
        )


def load_ops(verbose: bool = False) -> ModuleType:
    """Compile (first call per source version) and load the custom operators; cached per process.

    A cached library is checked before it is loaded (:func:`check_cached_build`: recorded SHA-256,
    or a test load in a subprocess); a truncated or corrupted one is deleted and rebuilt, with a
    warning. Raises :class:`EngineUnavailableError` with the reason (for a failed build: the last
    lines of the compiler output, all of it in ``build.log`` of the build folder) when the operators
    cannot be built or loaded.
    """
    global _MODULE, _ERROR
    with _LOCK:
        if _MODULE is not None:
            return _MODULE
        if _ERROR is not None:
            raise _ERROR
        where = buildcache.unsupported_platform()
        if where is not None:
            _ERROR = EngineUnavailableError(
                f"the binbert engine supports Linux x86-64 only (this is {where}); "
                "use the simulated model (paddle_binbert.load_model) instead",
                advice="the native engine needs Linux on x86-64",
            )
            raise _ERROR
        if find_compiler() is None:
            _ERROR = EngineUnavailableError(
                "the binbert engine compiles its Paddle custom operators on first use and no C++ compiler was "
                "found (tried $CXX, c++, g++, clang++). Install one (e.g. `apt-get install g++`, GCC >= 8 with "
                "OpenMP) or use the simulated model (paddle_binbert.load_model), which gives the same logits",
                advice="install a C++ compiler (e.g. `apt-get install g++`) and reload",
            )
            raise _ERROR
        target = build_dir()

        def build_and_load(stage: Callable[[str], None]) -> ModuleType:
            stage("building/loading the operators")
            module = _build_and_load(target, verbose)
            _write_record(target)
            return module

        unusable = (
            "paddle_binbert.engine: the cached engine build is unusable (%s); deleting it and rebuilding the "
            "operators in %s"
        )
        try:
            module = buildcache.load_locked(target, check_cached_build, discard_build, build_and_load, unusable, logger)
        except buildcache.BuildError as failure:  # any build/load failure means "engine unavailable"
            _ERROR = EngineUnavailableError(
                failure.describe("the binbert engine", verbose),
                advice=(
                    "fix the build error (the compiler output is in the reason and in "
                    f"{failure.log}; rerun paddle_binbert.engine.ops.load_ops(verbose=True) to see it all) or delete "
                    f"{target} to rebuild from scratch, then reload"
                ),
            )
            raise _ERROR from failure.error
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


def resolve_isa(isa: Union[None, int, str] = None, best: Optional[int] = None) -> int:
    """ISA code to run: ``isa`` (name or code), else ``$PADDLE_BINBERT_ISA``, else the best supported.

    ``best``: the best ISA code of this CPU (default: asked from the operators, :func:`cpu_info`;
    :mod:`paddle_binbert.runtime` passes its own library's answer). Raises ``ValueError`` for an
    unknown name and ``RuntimeError`` when the CPU lacks the ISA.
    """
    if isa is None:
        isa = os.environ.get(ISA_ENV) or None
    best = int(cpu_info()["best_isa"]) if best is None else int(best)
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
    return usable_cpus()
