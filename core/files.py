"""Atomic file I/O shared by every store (runs, the item cache, features folders, exports): a file is
written to a temporary name beside it and renamed, so a crash leaves the previous version or nothing."""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import TaxolensError

SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's report of a write cut short by a full disk



class StoreWriteError(TaxolensError, OSError):
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


STALE_SECONDS = 300  # a temporary file untouched this long, of a writer that is gone, is removed


def remove_stale_temps(path: Path) -> None:
    """Delete the temporary files a killed writer of `path` left (`.NAME.PID.*.tmp` whose process is gone
    and that nobody touched for STALE_SECONDS); a live writer's file is never touched."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        try:
            if pid.isdigit() and not _alive(int(pid)) and time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                tmp.unlink()
        except OSError:
            continue  # removed by another writer meanwhile, or not ours to remove


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes. A failed
    write (an OSError in the block) leaves the previous version and raises StoreWriteError."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
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
