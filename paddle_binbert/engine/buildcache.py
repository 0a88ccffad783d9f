"""The on-disk cache of compiled native libraries, shared by the engine's Paddle operators
(:mod:`paddle_binbert.engine.ops`) and the runtime's ctypes library (:mod:`paddle_binbert.runtime.library`).

Both compile C++ sources once per build key into ``$PADDLE_BINBERT_CACHE/<kind>/<key>`` (default
``~/.cache/paddle_binbert/<kind>/<key>``) and reuse that build in later processes. A file lock
serialises concurrent builds. After a library loads, its SHA-256 and size are recorded next to it
(``build_record.json``); before a cached library is loaded again it must match that record, or,
without a record, load in a subprocess (a truncated or corrupted library can kill the process that
maps it with SIGBUS). An unusable library is deleted and rebuilt, with a warning.

Standard library only: no Paddle, so that :mod:`paddle_binbert.runtime` can use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence, TypeVar

from ..io_utils import sha256_file, write_json_atomic

__all__ = [
    "BUILD_LOG_NAME",
    "CACHE_ENV",
    "RECORD_NAME",
    "BuildError",
    "cache_root",
    "check_library",
    "file_lock",
    "find_compiler",
    "load_locked",
    "log_tail",
    "probe_in_subprocess",
    "read_record",
    "unsupported_platform",
    "write_record",
]

CACHE_ENV = "PADDLE_BINBERT_CACHE"
RECORD_NAME = "build_record.json"
BUILD_LOG_NAME = "build.log"
COMPILERS = ("c++", "g++", "clang++")  # tried after $CXX

T = TypeVar("T")


def cache_root() -> Path:
    """``$PADDLE_BINBERT_CACHE``, default ``~/.cache/paddle_binbert``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "paddle_binbert"


def find_compiler() -> Optional[str]:
    """Path of the C++ compiler to use: ``$CXX``, else ``c++``, ``g++`` or ``clang++``; None if none is found."""
    for name in (os.environ.get("CXX"), *COMPILERS):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def unsupported_platform() -> Optional[str]:
    """None on Linux x86-64 (where the kernels build), else this platform as ``"<os>/<machine>"``."""
    if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
        return None
    return f"{sys.platform}/{platform.machine()}"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created with its folder) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# the checksum record, the probe, the check
# ---------------------------------------------------------------------------------------------
def read_record(record: Path) -> Optional[Dict[str, object]]:
    """The build record ``record`` (a dict with a string ``sha256``), or None when it is missing or unreadable."""
    try:
        value = json.loads(Path(record).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("sha256"), str) else None


def write_record(record: Path, library: Path, build_key: str, logger: logging.Logger) -> None:
    """Record the SHA-256 and size of ``library``, which just loaded, in ``record`` (best effort: a
    read-only cache only loses the check, and the library is then probed in a subprocess)."""
    try:
        digest = sha256_file(library)
        old = read_record(record)
        if old is not None and old.get("sha256") == digest:
            return
        write_json_atomic(
            record, {"library": library.name, "sha256": digest, "size": library.stat().st_size, "build_key": build_key}
        )
    except OSError as err:
        logger.debug("could not record the checksum of %s: %s", library, err)


def probe_in_subprocess(library: Path, code: str, args: Sequence[str], timeout: float) -> Optional[str]:
    """Run ``python -c code library *args`` (code that loads ``library`` and exits non-zero when it is
    not the expected one); None when it succeeds, else why not (e.g. ``killed by SIGBUS (Bus error)``)."""
    cmd = [sys.executable, "-c", code, str(library), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"a test load of {library} in a subprocess did not finish within {timeout:.0f} s"
    except OSError as err:
        return f"a test load of {library} in a subprocess could not start ({err})"
    if proc.returncode == 0:
        return None
    if proc.returncode < 0:
        sig = -proc.returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"a test load of {library} in a subprocess was killed by {name} ({signal.strsignal(sig) or 'signal'})"
    lines = [line for line in (proc.stderr or "").splitlines() if line.strip()]
    tail = " | ".join(lines[-3:]) if lines else "no output"
    return f"a test load of {library} in a subprocess failed (exit status {proc.returncode}: {tail})"


def check_library(
    library: Path,
    record: Path,
    build_key: str,
    probe: Callable[[Path], Optional[str]],
    logger: logging.Logger,
) -> Optional[str]:
    """Why the cached ``library`` cannot be used, or None when it is usable or absent.

    With a build record ``record`` (written after it last loaded) it must match the recorded SHA-256;
    without one (an interrupted build, a build of an older paddle_binbert) it must pass ``probe`` (a
    test load in a subprocess, None when it loads), and then gets its record.
    """
    if not library.exists():
        return None
    recorded = read_record(record)
    if recorded is not None:
        if sha256_file(library) == recorded["sha256"]:
            return None
        size, digest = recorded.get("size", "?"), str(recorded["sha256"])[:12]
        return (
            f"{library} ({library.stat().st_size} bytes) is not the library recorded when it was built "
            f"({size} bytes, SHA-256 {digest}...): it is truncated or corrupted"
        )
    problem = probe(library)
    if problem is None:
        write_record(record, library, build_key, logger)
    return problem


# ---------------------------------------------------------------------------------------------
# building and loading under the lock
# ---------------------------------------------------------------------------------------------
def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` non-blank lines of the build log ``path`` (Python warnings left out); "" when unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip() and "UserWarning" not in line]
    kept = [line for line in kept if not line.lstrip().startswith("warnings.warn(")]
    return "\n".join(kept[-lines:])


class BuildError(Exception):
    """A step of :func:`load_locked` failed: ``stage`` (what was being done), ``target`` (the build
    folder) and ``error`` (the exception it raised)."""

    def __init__(self, stage: str, target: Path, error: BaseException) -> None:
        super().__init__(f"{stage} failed: {error}")
        self.stage, self.target, self.error = stage, target, error

    @property
    def log(self) -> Path:
        """The build log of the build folder (the compiler output)."""
        return self.target / BUILD_LOG_NAME

    def describe(self, what: str, verbose: bool) -> str:
        """``"<stage> of <what> failed (<error>); build folder <target>."`` followed, unless ``verbose``
        (the output was shown), by the last lines of the build log."""
        tail = "" if verbose else log_tail(self.log)
        output = f"\nLast lines of the build output (all of it in {self.log}):\n{tail}" if tail else ""
        error = f"{type(self.error).__name__}: {self.error}"
        return f"{self.stage} of {what} failed ({error}); build folder {self.target}.{output}"


def load_locked(
    target: Path,
    check: Callable[[Path], Optional[str]],
    discard: Callable[[Path], None],
    load: Callable[[Callable[[str], None]], T],
    unusable: str,
    logger: logging.Logger,
) -> T:
    """Create the build folder ``target`` and, under its file lock: ``check(target)`` the cached build
    (why it cannot be used, or None), ``discard(target)`` it after logging the warning ``unusable``
    (a %-format of the problem and ``target``) when it cannot, then return ``load(stage)``, which
    builds when needed and loads; it names each of its steps with ``stage("...")``.

    Raises :class:`BuildError` naming the step that failed and wrapping its exception.
    """
    current = ["preparing the build folder"]

    def stage(name: str) -> None:
        current[0] = name

    try:
        target.mkdir(parents=True, exist_ok=True)
        with file_lock(target / ".lock"):
            stage("checking the cached build")
            problem = check(target)
            if problem is not None:
                logger.warning(unusable, problem, target)
                discard(target)
            return load(stage)
    except Exception as err:  # noqa: BLE001 - the caller turns any build/load failure into its own error
        raise BuildError(current[0], target, err) from err
