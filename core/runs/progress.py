"""progress.json: how far a run process is in its current stage, for an app that does not host it."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

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


def training_progress(history: pd.DataFrame, epochs: int, members: int = 1) -> tuple[float, str]:
    """(fraction, words) of a run's training from its epoch log: each ensemble member gets an equal share
    of the bar, and an epoch counts as 1/epochs of its member's share (early stopping jumps ahead)."""
    epochs, members = max(int(epochs), 1), max(int(members), 1)
    member = int(history["member"].iloc[-1]) if "member" in history and len(history) else 0
    done = int((history["member"] == member).sum()) if "member" in history else len(history)
    fraction = min((member + min(done, epochs) / epochs) / members, 1.0)
    words = f"epoch {done}/{epochs}" + (f" of member {member + 1}/{members}" if members > 1 else "")
    return fraction, words


def epoch_curves(history: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The epoch log in long form (epoch, member, variable, value) for one line per metric and member; a log
    written before ensembles has no member column and counts as member 1."""
    member = history["member"] + 1 if "member" in history else 1
    return history.assign(member=member).melt(id_vars=["epoch", "member"], value_vars=columns)
