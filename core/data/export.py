"""Every CSV the product writes goes through `write_csv`: category names, product titles and ids come
from users' files, and a cell such as `=HYPERLINK(...)` would run as a formula in a spreadsheet."""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO

import pandas as pd

from core.data.tables import csv_safe
from core.files import atomic_path


def write_csv(frame: pd.DataFrame, target: str | Path | IO | None = None, header: bool = True) -> bytes | None:
    """`frame` as formula-safe CSV without the index: returned as bytes when `target` is None, written
    to an open file or buffer (`header=False` to append a chunk), or to a path atomically (a failed
    write leaves no partial file)."""
    safe = csv_safe(frame)
    if target is None:
        buffer = io.BytesIO()
        safe.to_csv(buffer, index=False, header=header)
        return buffer.getvalue()
    if isinstance(target, str | Path):
        with atomic_path(Path(target)) as tmp:
            safe.to_csv(tmp, index=False, header=header)
        return None
    safe.to_csv(target, index=False, header=header)
    return None
