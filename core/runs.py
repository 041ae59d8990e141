"""The run store: one folder per run under a runs directory.

    config.json          what was asked for
    status.json          queued | running | done | failed | cancelled, with the error when failed
    metrics.jsonl        one line per epoch, appended as training goes
    metrics.json         final test metrics, plain and with CRM re-ranking
    predictions.parquet  id, true label, top-k labels and probabilities
    model.safetensors    the weights
    report.json          what the data preparation dropped and noted

Every file except the append-only log is written to a temporary name and renamed, so a crash
leaves the previous version or nothing, never half a file."""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

STATES = ("queued", "running", "done", "failed", "cancelled")
SUMMARY_KEYS = ("top1", "top5", "mistake_severity", "hdist@5", "semsim@5", "neighbor_hits@5", "ece", "hier_f1")


class StoreWriteError(OSError):
    """A file could not be saved (disk full, no permission); the message names the file and the cause."""


def write_failed(path: Path, exc: BaseException) -> StoreWriteError:
    """One readable sentence for a failed save, instead of the writer library's traceback."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
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
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24] or "run"


class RunStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def create(self, config: dict, name: str | None = None) -> Path:
        """A new queued run folder holding config.json."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{_slug(name or config.get('targets', 'run'))}-{secrets.token_hex(2)}"
        run_dir = self.root / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        write_json(run_dir / "config.json", config)
        set_status(run_dir, "queued")
        return run_dir

    def runs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.iterdir() if (p / "config.json").is_file()), reverse=True)

    def table(self) -> pd.DataFrame:
        """One row per run, newest first: status, the main settings and the headline test metrics."""
        rows = [run_summary(p) for p in self.runs()]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "status", "targets"])


def set_status(run_dir: Path, state: str, **extra: object) -> None:
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    previous = read_json(run_dir / "status.json", {}) or {}
    record = {"state": state, "updated": datetime.now(UTC).isoformat(timespec="seconds"), "pid": os.getpid()}
    if "started" in previous:
        record["started"] = previous["started"]
    if state == "running" and "started" not in record:
        record["started"] = record["updated"]
    write_json(run_dir / "status.json", record | extra)


def status(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / "status.json", {"state": "unknown"}) or {"state": "unknown"}


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
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return pd.DataFrame(rows)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def save_weights(path: Path, state_dict: dict) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file({k: v.contiguous() for k, v in state_dict.items()}, str(tmp))
        except SafetensorError as exc:  # safetensors reports I/O failures (a full disk) as its own type
            raise write_failed(path, exc) from exc


def request_cancel(run_dir: Path) -> None:
    (Path(run_dir) / "cancel.request").touch()


def cancel_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / "cancel.request").exists()


def run_summary(run_dir: Path) -> dict:
    config = read_json(run_dir / "config.json", {}) or {}
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    st = status(run_dir)
    plain = metrics.get("plain", {})
    row = {
        "run_id": run_dir.name,
        "status": st.get("state"),
        "data": Path(str(config.get("data", ""))).name,
        "targets": config.get("targets"),
        "alpha": config.get("alpha"),
        "temperature": config.get("temperature"),
        "k": config.get("k"),
        "curriculum_epochs": config.get("curriculum_epochs"),
        "aux_codes": config.get("aux_codes"),
        "encoder": metrics.get("encoder", ""),
        "epochs_run": len(history(run_dir)),
    }
    row.update({key: plain.get(key) for key in SUMMARY_KEYS})
    row["crm_mistake_severity"] = metrics.get("crm", {}).get("mistake_severity")
    row["error"] = st.get("error", "")
    return row


def compare(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Metrics side by side, one column per run."""
    frames = {}
    for d in run_dirs:
        d = Path(d)
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"not a run folder (no config.json): {d}")
        frames[d.name] = pd.Series(run_summary(d)).drop("run_id")
    return pd.DataFrame(frames)


def launch_background(run_dir: Path, cwd: str | Path | None = None) -> subprocess.Popen:
    """Execute a queued run in a separate process (`python -m core run RUN_DIR`), detached from the
    caller so an app page can be left and the run goes on; output goes to run.log."""
    log = open(Path(run_dir) / "run.log", "ab")  # noqa: SIM115 - handed to the child process
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-m", "core", "run", str(run_dir)], cwd=cwd or Path(__file__).resolve().parents[1],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def wait_for(run_dir: Path, timeout: float = 600, poll: float = 0.5) -> dict:
    """Block until a run leaves queued/running (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(run_dir)
        if st.get("state") in ("done", "failed", "cancelled"):
            return st
        time.sleep(poll)
    raise TimeoutError(f"run {run_dir.name} still {status(run_dir).get('state')} after {timeout:.0f} s")
