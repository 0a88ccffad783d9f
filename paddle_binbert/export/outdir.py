"""Writing an output folder safely: the shared rules of ``pack_model`` and ``export_static``.

Both writers build their files in a temporary folder beside the destination and then swap it into
place, so that a reader sees either the previous complete output or the new complete output. This
module decides *whether* the destination may be replaced and does the swap:

- the destination must not be the input (the student / checkpoint), must not contain the input
  (replacing it would delete the input) and, when it lies inside the input, may only be a new or
  empty folder or a previous output of the same writer; these rules hold even with
  ``overwrite=True`` (``--overwrite``): the input is never deleted;
- a destination that does not exist, an empty folder, and a previous output of the same writer
  (recognised by ``is_previous``: the packed marker of ``config.json``, the exported program files)
  are replaced without asking;
- any other existing destination (a non-empty folder of other files, a file) is refused unless
  ``overwrite=True`` (``--overwrite``); ``overwrite=False`` (``--no_overwrite``) refuses every
  existing non-empty destination.

:func:`staged_output` writes the new output: a temporary folder ``.<name>.<random>.tmp`` beside
the destination, file modes set as a plain ``open()`` / ``mkdir()`` would under the process's umask
(``0644`` / ``0755`` with the usual umask ``022``; some writers, e.g. safetensors, create ``0600``
files), then an atomic exchange with the previous output (``renameat2(RENAME_EXCHANGE)`` on Linux; a
rename pair that restores the previous output on failure elsewhere). An exception while writing
removes the temporary folder and leaves the previous output untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, Union

__all__ = [
    "OutputFolderError",
    "check_output_dir",
    "creation_modes",
    "normalize_modes",
    "staged_output",
    "swap_into_place",
]

PathLike = Union[str, os.PathLike]


class OutputFolderError(FileExistsError):
    """The destination of ``pack`` / ``export`` may not be replaced (the message names the folder,
    why, and what to do)."""


def _real(path: PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _is_inside(child: Path, parent: Path) -> bool:
    """``child`` is ``parent`` or lies below it (both already resolved)."""
    try:
        return os.path.commonpath([str(child), str(parent)]) == str(parent)
    except ValueError:  # different drives
        return False


def _listing(folder: Path, limit: int = 5) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "?"
    return ", ".join(names[:limit]) + (f" ... ({len(names)} entries)" if len(names) > limit else "")


def has_subfolders(folder: PathLike) -> List[str]:
    """Names of the sub-folders of ``folder`` (neither writer creates any)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_dir() and not p.is_symlink())


def check_output_dir(
    out_dir: PathLike,
    inputs: Iterable[Optional[PathLike]] = (),
    overwrite: Optional[bool] = None,
    is_previous: Callable[[Path], bool] = lambda path: False,
    what: str = "output",
    previous_desc: str = "a previous output",
) -> Path:
    """Check that ``out_dir`` may be (re)written; return its resolved path.

    Args:
        out_dir: the destination folder.
        inputs: paths the writer reads (student / checkpoint folder or file, config); missing
            paths and None are ignored. They are never replaced or deleted.
        overwrite: None (default): replace a missing / empty destination or a previous output
            (``is_previous``), refuse anything else; True: also replace any other destination;
            False: refuse every existing non-empty destination.
        is_previous: whether a folder holds a previous output of this writer.
        what: the writer's output in messages (``packed model``, ``static export``).
        previous_desc: what ``is_previous`` looks for, for the messages.

    Raises:
        OutputFolderError: the destination may not be replaced; the message says why and what to do.
    """
    out = _real(out_dir)
    if out.parent == out:
        raise OutputFolderError(f"{out} is a filesystem root; choose a new folder for the {what}")
    exists = os.path.lexists(out)
    is_dir = out.is_dir()
    empty = is_dir and not any(out.iterdir())
    previous = is_dir and not empty and is_previous(out)
    for raw in inputs:
        if raw is None or not os.path.exists(os.fspath(raw)):
            continue
        src = _real(raw)
        if src == out:
            raise OutputFolderError(
                f"the output folder {out} is the input {src}: writing the {what} there would replace the input. "
                "Choose another output folder (--overwrite does not allow this)"
            )
        if _is_inside(src, out):
            raise OutputFolderError(
                f"the output folder {out} contains the input {src}: replacing the folder would delete the input. "
                "Choose an output folder that does not contain the input (--overwrite does not allow this)"
            )
        if _is_inside(out, src) and exists and not empty and not previous:
            raise OutputFolderError(
                f"the output folder {out} lies inside the input {src} and holds files that are not "
                f"{previous_desc} ({_listing(out) if is_dir else 'a file'}): replacing it would delete part of the "
                "input. Choose a new or empty output folder (--overwrite does not allow this)"
            )
    if not exists or empty:
        return out
    if overwrite is False:
        raise OutputFolderError(
            f"the output folder {out} exists and is not empty; choose a new folder, or drop --no_overwrite "
            "(overwrite=False) to replace it"
        )
    if overwrite is True:
        return out
    if not is_dir:
        raise OutputFolderError(
            f"the output path {out} exists and is a file, not a folder; choose another output folder, or pass "
            "--overwrite (overwrite=True) to replace the file"
        )
    if previous:
        return out
    raise OutputFolderError(
        f"the output folder {out} is not empty and is not {previous_desc}; it holds: {_listing(out)}. Refusing "
        "to replace it: choose a new or empty folder, or pass --overwrite (overwrite=True) to delete its contents "
        "and replace them"
    )


# ---------------------------------------------------------------------------------------------
# file modes
# ---------------------------------------------------------------------------------------------
def creation_modes(folder: PathLike) -> Tuple[int, int]:
    """``(file_mode, dir_mode)`` that a plain ``open(path, "w")`` / ``os.mkdir`` in ``folder`` gives
    (``0o666`` / ``0o777`` less the umask), found by creating and removing a probe file and folder:
    unlike ``os.umask()`` this does not change the process state (safe with threads)."""
    folder = Path(folder)
    probe = folder / f".mode-probe-{os.getpid()}-{id(folder):x}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        file_mode = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
        os.unlink(probe)
    os.mkdir(probe, 0o777)
    try:
        dir_mode = stat.S_IMODE(os.stat(probe).st_mode)
    finally:
        os.rmdir(probe)
    return file_mode, dir_mode


def normalize_modes(folder: PathLike) -> None:
    """Give ``folder``, its sub-folders and files the modes of :func:`creation_modes` (executable
    files keep their execute bits, as the umask allows)."""
    root = Path(folder)
    file_mode, dir_mode = creation_modes(root)
    os.chmod(root, dir_mode)
    for base, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(base, name)
            if not os.path.islink(path):
                os.chmod(path, dir_mode)
        for name in files:
            path = os.path.join(base, name)
            if os.path.islink(path):
                continue
            executable = os.stat(path).st_mode & 0o111
            os.chmod(path, dir_mode if executable else file_mode)


# ---------------------------------------------------------------------------------------------
# the swap
# ---------------------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False when the
    system or the file system does not support it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"exchanging {a} and {b} failed: {os.strerror(err)}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            path.unlink()


def swap_into_place(tmp: PathLike, out: PathLike) -> None:
    """Make the finished folder ``tmp`` the folder ``out`` (same parent folder), replacing whatever
    ``out`` is; readers never see a missing or half-written ``out`` where ``renameat2`` works, and
    the previous ``out`` is restored if the rename fails otherwise."""
    tmp, out = Path(tmp), Path(out)
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        os.rename(tmp, out)  # rename() replaces an empty folder atomically
        return
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if _exchange(tmp, out):
        _remove(tmp)  # now the previous output
        return
    backup = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.old"
    os.rename(out, backup)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(backup, out)
        raise
    _remove(backup)


@contextlib.contextmanager
def staged_output(out: PathLike, recheck: Optional[Callable[[], object]] = None) -> Iterator[Path]:
    """Yield a new temporary folder beside ``out`` to write the output into; when the block ends
    normally, set the modes (:func:`normalize_modes`), call ``recheck`` (the destination may have
    changed meanwhile) and swap the folder into place (:func:`swap_into_place`). The temporary
    folder is removed in every case, so an exception leaves the previous ``out`` as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        normalize_modes(tmp)
        if recheck is not None:
            recheck()
        swap_into_place(tmp, out)
    finally:
        if os.path.lexists(tmp):
            _remove(tmp)
