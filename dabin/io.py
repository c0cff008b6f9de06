"""Files written whole or not at all, and checkpoints checked before they are trusted.

Atomic writes: a reader sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dabin.errors import DabinError

__all__ = ["WriteError", "atomic_open", "atomic_write_text", "checkpoint_problem"]


class WriteError(DabinError):
    """A file could not be written (disk full, quota, permissions); names the path and the errno.

    Attributes:
        path: The file that was being written.
        errno: The operating system's error number (e.g. ``errno.ENOSPC``), or None.
    """

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.errno = error.errno
        detail = f"[Errno {error.errno}] {error.strerror}" if error.errno else str(error)
        super().__init__(f"cannot write {path}: {detail}")


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it over ``path`` only if the block succeeds.

    Args:
        path: Destination; its folder is created if needed.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        newline: As for :func:`open` in text mode (``""`` for the csv module).

    Yields:
        The open temporary file.

    Raises:
        WriteError: The file system refused the write (full disk, quota, permissions), naming
            ``path`` and the errno; the old file, if any, is left as it was.
    """
    target = Path(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        # mkstemp makes the file private (0600): give it the mode of the file it replaces, or the
        # permissions a plain open() would.
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, mode, newline=newline) if "b" not in mode else os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise WriteError(target, error) from error
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as handle:
        handle.write(text)


def checkpoint_problem(path: Path) -> str:
    """Why ``path`` is not a readable torch checkpoint ("" if it is one).

    A torch checkpoint is a zip archive: reading every member and checking its CRC catches a
    truncated or overwritten file without importing torch (the sweep runs without it).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("data.pkl") for name in names):
                return "not a torch checkpoint (no data.pkl)"
            bad = archive.testzip()
            return f"member {bad} is damaged" if bad else ""
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
