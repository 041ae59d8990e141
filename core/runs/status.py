"""A run's lifecycle in its folder: the status record (with the process that owns the run), the
epoch log, the one-time claim, cancellation, and recording a failure.

Readers see two states that are never written: `interrupted` (a `running` run whose process is gone)
and `damaged` (a status file that is missing or not a status record)."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core.errors import TaxolensError
from core.files import read_json, write_failed, write_json

STATES = ("queued", "running", "done", "failed", "cancelled")


class RunError(TaxolensError, ValueError):
    """A folder is not a run, a run's file is damaged, or a run cannot be executed in its state; the
    message names the run, the file and the fault."""


def set_status(run_dir: Path, state: str, **extra: object) -> None:
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    previous = read_json(run_dir / "status.json", {}) or {}
    record = {"state": state, "updated": datetime.now(UTC).isoformat(timespec="seconds"), "pid": os.getpid(),
              "pid_started": process_start_time(os.getpid())}
    if "started" in previous:
        record["started"] = previous["started"]
    if state == "running" and "started" not in record:
        record["started"] = record["updated"]
    write_json(run_dir / "status.json", record | extra)


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (ticks since boot), which tells a live owner from a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_alive(record: dict) -> bool:
    """Whether the process that wrote a status record still runs (same pid, same start time)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = record.get("pid_started")
    return started is None or started == process_start_time(pid)


def status(run_dir: Path) -> dict:
    """The status record with the state as readers must see it: a damaged file is `damaged`, a
    `running` run whose process is gone is `interrupted`."""
    path = Path(run_dir) / "status.json"
    record = read_json(path, None)
    if record is None and not path.exists():
        return {"state": "damaged", "error": "status.json is missing"}
    if not isinstance(record, dict) or record.get("state") not in STATES:
        return {"state": "damaged", "error": "status.json is not a status record (expected a JSON object with a known state)"}
    if record["state"] == "running" and not owner_alive(record):
        return record | {"state": "interrupted", "error": f"the training process (pid {record.get('pid')}) is gone; "
                         "it was killed or the machine restarted. Start a new run with the same settings."}
    return record


def append_epoch(run_dir: Path, record: dict) -> None:
    """Append one line to the epoch log; a failed write is cut back off, so no torn line stays."""
    path = run_dir / "metrics.jsonl"
    line = (json.dumps(record, default=float) + "\n").encode()
    with open(path, "ab", buffering=0) as fh:
        start = fh.tell()
        try:
            fh.write(line)
            os.fsync(fh.fileno())
        except OSError as exc:
            os.ftruncate(fh.fileno(), start)
            raise write_failed(path, exc) from exc


def history(run_dir: Path) -> pd.DataFrame:
    """Per-epoch log; a torn last line (a crash mid-write) is ignored."""
    rows = []
    path = Path(run_dir) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):  # a damaged line (garbage, another JSON type) is skipped too
                rows.append(record)
    return pd.DataFrame(rows)


def claim(run_dir: Path) -> None:
    """Take a queued run for execution, once: `run` never re-executes a started or finished run,
    so finished results cannot be overwritten and a killed run is not silently restarted."""
    state = status(run_dir)["state"]
    if state != "queued":
        raise RunError(f"run {Path(run_dir).name} is {state}, not queued: `run` only executes queued runs. "
                       "Start a new run with the same settings instead (`train`, or the Training page).")
    try:
        fd = os.open(Path(run_dir) / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise RunError(f"run {Path(run_dir).name} was already taken by another process") from None
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)


def request_cancel(run_dir: Path) -> None:
    (Path(run_dir) / "cancel.request").touch()


def cancel_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / "cancel.request").exists()


def record_failure(run_dir: Path, **fields: str) -> None:
    """Mark the run failed; when even that cannot be saved (a full disk), the original error is what the
    user needs to see, so this one is dropped."""
    try:
        set_status(run_dir, "failed", **fields)
    except OSError:
        pass


@contextmanager
def executing(run_dir: Path) -> Iterator[None]:
    """Claim a queued run and mark it running for the block; a failure inside is recorded as `failed`
    (an input or file problem with its message, anything else with the trace for a bug report) and
    raised again. What training, the audit and a sweep trial share, so none of them overwrites a
    started run or loses its error on a full disk."""
    claim(run_dir)
    set_status(run_dir, "running")
    try:
        yield
    except (ValueError, OSError) as exc:  # DataError, RunError, StoreWriteError, a missing file
        record_failure(run_dir, error=str(exc))
        raise
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        record_failure(run_dir, error=f"an unexpected error stopped this run ({type(exc).__name__}{': ' if detail else ''}"
                       f"{detail}); this is a bug in Taxolens, please report it with run.log from the run folder",
                       trace=traceback.format_exc(limit=8))
        raise
