"""Atomic file I/O shared by every store (runs, the item cache, features folders, exports): a file is
written to a temporary name beside it and renamed, so a crash leaves the previous version or nothing."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's report of a write cut short by a full disk


class StoreWriteError(OSError):
    """A file could not be saved (disk full, no permission); the message names the file and the cause."""


def write_failed(path: Path, exc: BaseException) -> StoreWriteError:
    """One readable sentence for a failed save, instead of the writer library's traceback."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc) or SHORT_WRITE.search(str(exc)):
        reason = "the disk is full; free some space and try again"
    else:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    error = StoreWriteError(f"could not save {path}: {reason} (no partial file was left)")
    error.errno = code or errno.EIO
    return error


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes. A failed
    write (an OSError in the block) leaves the previous version and raises StoreWriteError."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except StoreWriteError:
        raise
    except OSError as exc:
        raise write_failed(path, exc) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str, allow_nan=False))


def read_json(path: Path, default: object = None) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable, not UTF-8 or not JSON
        return default
