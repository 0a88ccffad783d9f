"""Atomic output folders: a reader sees the previous complete folder or the new complete one, never
a half-written one, and an interrupted writer leaves the previous folder as it was.

:func:`staged_output` hands out a temporary folder ``.<name>.<random>.tmp`` beside the destination;
when the block ends normally it sets the file modes a plain ``open()`` / ``mkdir()`` would give
under the process's umask (``0644`` / ``0755`` with the usual umask ``022``; some writers, e.g.
safetensors, create ``0600`` files), fsyncs every file and folder, calls an optional ``recheck``
(the destination may have changed meanwhile) and swaps the folder into place: an atomic exchange
with the previous output (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere a rename pair that
restores the previous output on failure). An exception removes the temporary folder::

    with staged_output("out/model") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

Used by ``pack_model``, ``export_static`` (whose destination rules are
:mod:`paddle_binbert.export.outdir`) and ``convert_hf_bert``. Single files:
:func:`paddle_binbert.io_utils.write_text_atomic`. Standard library only.
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
from typing import Callable, Iterator, Optional, Tuple, Union

__all__ = ["creation_modes", "exchange_paths", "fsync_tree", "normalize_modes", "staged_output", "swap_into_place"]

PathLike = Union[str, os.PathLike]


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


def fsync_tree(folder: PathLike) -> None:
    """fsync every file under ``folder``, then every folder (deepest first): after the swap, a crash
    cannot expose files whose data never reached the disk."""
    folders = []
    for base, _, files in os.walk(folder):
        folders.append(base)
        for name in files:
            path = os.path.join(base, name)
            if not os.path.islink(path):
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
    for base in reversed(folders):
        _fsync_dir(base)


def _fsync_dir(folder: PathLike) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# the swap
# ---------------------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_paths(a: Path, b: Path) -> bool:
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
    if exchange_paths(tmp, out):
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
    normally, set the modes (:func:`normalize_modes`), fsync it (:func:`fsync_tree`), call ``recheck``
    (the destination may have changed meanwhile: it raises to refuse) and swap the folder into place
    (:func:`swap_into_place`), then fsync the parent folder (the rename itself). The temporary folder
    is removed in every case, so an exception leaves the previous ``out`` as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        normalize_modes(tmp)
        fsync_tree(tmp)
        if recheck is not None:
            recheck()
        swap_into_place(tmp, out)
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a folder
            _fsync_dir(out.parent)
    finally:
        if os.path.lexists(tmp):
            _remove(tmp)
