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

:func:`paddle_binbert.atomic.staged_output` writes the new output (a temporary folder beside the
destination, swapped into place atomically; an exception leaves the previous output untouched).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Union

__all__ = ["OutputFolderError", "check_output_dir", "has_subfolders"]

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
