"""Writing files so a reader never sees half of one (reports, results, rule files, state files), and the
errors a person can act on when a path cannot be written."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write a file so a reader never sees half of it: a temporary file beside it, then a rename.

    A path that cannot be written (a file where a folder must be, a folder where the file goes, no
    permission, a read-only file system) is a UsageError naming it (exit 2); a failure while writing
    (disk full, I/O error) a RuntimeFailure (exit 3). Either way the old file, if any, is untouched."""
    path = Path(path)
    try:
        return _write_atomic(path, data)
    except OSError as exc:
        from opskit.errors import RuntimeFailure, UsageError

        reason = _why_not_writable(path, exc)
        if exc.errno in _BAD_PATH_ERRNOS:
            raise UsageError(f"{path}: cannot write: {reason}") from None
        raise RuntimeFailure(f"{path}: cannot write: {reason}") from None


_BAD_PATH_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                    errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP}


def ensure_dir(path: str | Path) -> Path:
    """Create a folder (and its parents) before anything is written into it, with the same errors as
    write_atomic: commands that write several files call it first, so a bad --out writes nothing."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from opskit.errors import UsageError

        reason = _why_not_writable(path / "x", exc)
        raise UsageError(f"{path}: cannot create the folder: {reason}") from None
    return path


def _why_not_writable(path: Path, exc: OSError) -> str:
    if path.is_dir():
        return "it is a folder"
    for parent in path.parents:
        if parent.exists():
            return f"{parent} is a file, not a folder" if not parent.is_dir() else (exc.strerror or str(exc))
    return exc.strerror or str(exc)


def _write_atomic(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes 0600 files; a written report or rule file should be readable like any other
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
