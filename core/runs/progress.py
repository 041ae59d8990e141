"""progress.json: how far a run process is in its current stage, for an app that does not host it."""

from __future__ import annotations

import time
from pathlib import Path

from core.files import read_json, write_json

PROGRESS_FILE = "progress.json"


class ProgressWriter:
    """An `on_event(stage, done, total)` for a run process that keeps progress.json in the run folder
    (atomically; at most once per `every` seconds, and always at a stage's start and end) so the app
    can show embedding and training progress of a run it does not host."""

    def __init__(self, run_dir: str | Path, every: float = 1.0) -> None:
        self.path = Path(run_dir) / PROGRESS_FILE
        self.every = every
        self.stage: str | None = None
        self.last = float("-inf")

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == self.stage and 0 < done < total and now - self.last < self.every:
            return
        self.stage, self.last = stage, now
        write_json(self.path, {"stage": stage, "done": int(done), "total": int(total)})


def read_progress(run_dir: str | Path) -> dict | None:
    """The last progress a run process wrote ({stage, done, total}), or None before the first."""
    data = read_json(Path(run_dir) / PROGRESS_FILE)
    return data if isinstance(data, dict) and {"stage", "done", "total"} <= data.keys() else None
