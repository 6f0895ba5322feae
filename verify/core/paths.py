"""What may be written at a path: the one check every writer of ``verify`` makes before writing.

A writer that replaces a file atomically (a temporary file, then `os.replace`) would swap *any*
node for a regular file: a FIFO, a device (``/dev/null`` as root), a socket. `node_problem` says
why a path must not be written as a file; `missing_directory` says why a path's directory is
missing, naming a dangling symbolic link and its target when that is the reason. Both only look
(`os.lstat`, `os.stat`): nothing is created, opened or changed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["missing_directory", "node_kind", "node_problem"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def node_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is, following symbolic links: ``None`` if nothing is there (or a dangling link),
    ``"a regular file"``, ``"a directory"``, ``"a FIFO (named pipe)"``, a device, a socket, ...
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def node_problem(path: str | os.PathLike, option: str = "--out") -> str | None:
    """Why ``path`` must not be replaced by a regular file, or ``None`` when it may be.

    It may be when nothing is there, or it is a regular file or a symbolic link to one. Anything
    else (a directory, FIFO, device or socket, directly or through a link) is refused, so that an
    atomic rename never swaps such a node for a file.

    Parameters
    ----------
    path : str or os.PathLike
        Where the file would be written.
    option : str
        How the caller names ``path`` in the message (default ``"--out"``).
    """
    kind = node_kind(path)
    if kind is None or kind == "a regular file":
        return None
    via = f" (through the symbolic link {str(path)!r})" if os.path.islink(path) else ""
    return (
        f"{option} {str(path)!r} is {kind}{via}, not a regular file; it is left untouched: "
        "name a new or existing regular file instead"
    )


def missing_directory(path: str | os.PathLike, option: str = "--out") -> str | None:
    """Why the directory ``path`` would be written into does not exist, or ``None`` when it does.

    For a dangling symbolic link the message names the link, its target and the target's missing
    directory (the rename would replace the link, but a reader of the message means the target).
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        target = Path(os.readlink(path))
        resolved = target if target.is_absolute() else path.parent / target
        if not resolved.parent.is_dir():
            return (
                f"{option} {str(path)!r} is a symbolic link to {str(target)!r}, whose directory "
                f"{str(resolved.parent)!r} does not exist; create it or name another {option}"
            )
        return None
    if not path.resolve().parent.is_dir():
        return (
            f"{option} {str(path)!r}: directory {str(path.parent)!r} does not exist; create it or name another {option}"
        )
    return None
