"""Files icsync creates are private: 0600 files and 0700 folders, whatever the umask.

The state DB holds suppliers' bank details, the drop folder holds posted documents and the demo
writes secrets: none of them may come out world-readable under the usual umask 022 when icsync
runs outside systemd (whose ``UMask=0077`` would otherwise be the only protection).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700 folders; an existing one is left as is."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask, chmod's is not
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty as a 0600 file if missing; tighten it to 0600 if others can read it.

    OSError (PermissionError for a read-only folder) when it cannot be created.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a NEW 0600 file at ``path`` (replacing any file there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


def sqlite_url_file(url: str) -> str | None:
    """The file a plain SQLite URL names (``sqlite:///relative.db``, ``sqlite:////abs.db``),
    as SQLAlchemy's URL gives it, read without importing SQLAlchemy; None for any other URL,
    an in-memory database, and URLs with query options, escapes or a ``file:`` URI, which
    only SQLAlchemy's parser reads."""
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            database = url[len(prefix):]
            if (database in ("", ":memory:") or database.startswith("file:")
                    or any(c in database for c in "?%#")):
                return None
            return database
    return None
