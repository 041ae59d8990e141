"""The run store: one folder per run under a runs directory.

    config.json          what was asked for
    status.json          queued | running | done | failed | cancelled, with the error when failed
    metrics.jsonl        one line per epoch, appended as training goes
    metrics.json         final test metrics, plain and with CRM re-ranking
    predictions.parquet  id, true label, top-k labels and probabilities
    model.safetensors    the weights
    model.json           the model's architecture, calibration temperature and encoder identity
    classes.json         the class paths (and taxonomy node of each) in model output order
    taxonomy.json        the taxonomy the run used (ids, names, parents), so a run stands on its own
    report.json          what the data preparation dropped and noted

A `Run` reads all of it. Readers check the shape of what they read: a damaged file marks that run
as damaged (with the reason), never breaks the store. A `running` run whose process is gone reads
as `interrupted`.

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
from typing import TYPE_CHECKING

import pandas as pd

from core.files import atomic_path, read_json, write_failed, write_json

if TYPE_CHECKING:
    from core.settings import ExperimentConfig
    from core.taxonomy.tree import Taxonomy

# Every file a run folder may hold: name -> (format, what it holds). The damage test corrupts each one
# in every way its format allows (tests/test_damage.py), so a file added here is checked there too.
RUN_FILES = {
    "config.json": ("json", "what was asked for (the settings)"),
    "status.json": ("json", "the state, its owner process and the error when failed"),
    "metrics.jsonl": ("jsonl", "one record per epoch, appended"),
    "metrics.json": ("json", "the final test metrics, plain and CRM re-ranked"),
    "predictions.parquet": ("parquet", "per test item: truth, ranked answers, probabilities (core/runs/schema.py)"),
    "model.safetensors": ("safetensors", "the weights"),
    "model.json": ("json", "the architecture, calibration temperature and encoder identity"),
    "classes.json": ("json", "the class paths and taxonomy nodes in model output order"),
    "taxonomy.json": ("json", "the taxonomy the run used"),
    "report.json": ("json", "what data preparation dropped and noted"),
    "progress.json": ("json", "the running stage's progress"),
}

STATES = ("queued", "running", "done", "failed", "cancelled")
DERIVED_STATES = ("interrupted", "damaged")  # never written: read from a dead owner process or a broken file
SUMMARY_KEYS = ("top1", "top5", "mistake_severity", "hdist@5", "semsim@5", "neighbor_hits@5", "ece", "hier_f1")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24] or "run"


class RunStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def create(self, config: dict, name: str | None = None) -> Run:
        """A new queued run folder holding config.json."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{_slug(name or config.get('targets', 'run'))}-{secrets.token_hex(2)}"
        run_dir = self.root / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        write_json(run_dir / "config.json", config)
        set_status(run_dir, "queued")
        return Run(run_dir)

    def runs(self) -> list[Run]:
        """Every run folder (one holding config.json), newest first; damaged ones included."""
        if not self.root.is_dir():
            return []
        return [Run(p) for p in sorted((p for p in self.root.iterdir() if (p / "config.json").is_file()), reverse=True)]

    def finished(self) -> list[Run]:
        return [r for r in self.runs() if r.state == "done" and not r.problems()]

    def table(self) -> pd.DataFrame:
        """One row per run, newest first: state, the main settings and the headline test metrics."""
        rows = [r.summary() for r in self.runs()]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "status", "targets"])


class RunError(ValueError):
    """A folder is not a run, or a run's file is damaged; the message names the file and the fault."""


class Run:
    """One run folder. Every reader validates the shape of what it reads, so one damaged run raises
    RunError naming its fault (and `problems()` lists them) while the rest of the store stays usable."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    __str__ = __fspath__  # a Run passed where a path string is expected (argv, messages) reads as its folder

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    id = name

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """A run folder given by a user: refuse anything that is not one, saying why."""
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"{path} is not a run folder (no such folder)")
        if not (path / "config.json").is_file():
            raise RunError(f"{path} is not a run folder (no config.json); pass a folder inside the run store")
        run = cls(path)
        if not isinstance(read_json(path / "config.json"), dict):
            raise RunError(f"{path.name}: config.json is damaged (not a JSON object)")
        return run

    # ----- the files ---------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        data = read_json(self.path / "config.json")
        if not isinstance(data, dict):
            raise RunError(f"{self.name}: config.json is damaged (not a JSON object)")
        return data

    def experiment_config(self) -> ExperimentConfig:
        from core.settings import ExperimentConfig

        return ExperimentConfig.from_dict(self.config)

    @property
    def kind(self) -> str:
        """'trained' (by Taxolens) or 'imported' (another model's predictions)."""
        try:
            return str(self.config.get("kind", "trained"))
        except RunError:
            return "trained"

    def status(self) -> dict:
        return status(self.path)

    @property
    def state(self) -> str:
        return self.status()["state"]

    def history(self) -> pd.DataFrame:
        return history(self.path)

    def metrics(self) -> dict:
        """metrics.json: {"plain": {metric: value}, "crm": {...}, ...}; RunError if absent or malformed."""
        data = read_json(self.path / "metrics.json")
        if not isinstance(data, dict):
            raise RunError(f"{self.name}: metrics.json is missing or damaged")
        for part in ("plain", "crm"):
            block = data.get(part, {})
            if not isinstance(block, dict) or not all(v is None or isinstance(v, int | float) for v in block.values()):
                raise RunError(f"{self.name}: metrics.json's {part!r} block is damaged (expected metric: number)")
        if not data.get("plain"):
            raise RunError(f"{self.name}: metrics.json holds no metrics")
        return data

    def predictions(self) -> pd.DataFrame:
        from core.runs.schema import PredictionsError, read

        path = self.path / "predictions.parquet"
        if not path.is_file():
            raise RunError(f"{self.name}: predictions.parquet is missing")
        try:
            return read(str(path))
        except PredictionsError as exc:
            raise RunError(f"{self.name}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise RunError(f"{self.name}: predictions.parquet is damaged ({str(exc).splitlines()[0]})") from None

    def predictions_mtime(self) -> float:
        """For caches keyed on the predictions file's version."""
        path = self.path / "predictions.parquet"
        return path.stat().st_mtime if path.is_file() else 0.0

    def classes(self) -> list[str]:
        data = read_json(self.path / "classes.json")
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            raise RunError(f"{self.name}: classes.json is missing or damaged")
        return [str(c) for c in data["classes"]]

    def class_nodes(self) -> list[int]:
        """Taxonomy node index of each class, in model output order."""
        data = read_json(self.path / "classes.json")
        nodes = data.get("nodes") if isinstance(data, dict) else None
        if not isinstance(nodes, list):
            raise RunError(f"{self.name}: classes.json lacks the taxonomy nodes (written by an older version?)")
        return [int(n) for n in nodes]

    def taxonomy(self) -> Taxonomy:
        from core.taxonomy.tree import Taxonomy

        data = read_json(self.path / "taxonomy.json")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("ids", "names", "parent")):
            raise RunError(f"{self.name}: taxonomy.json is missing or damaged")
        return Taxonomy(data["ids"], data["names"], data["parent"], source_format="run")

    def model_info(self) -> dict:
        data = read_json(self.path / "model.json")
        if not isinstance(data, dict):
            raise RunError(f"{self.name}: model.json is missing or damaged (a run from an older version cannot be loaded)")
        return data

    def report(self) -> dict:
        data = read_json(self.path / "report.json", {})
        return data if isinstance(data, dict) else {}

    # ----- writing -----------------------------------------------------------------------------
    def save_taxonomy(self, taxonomy: Taxonomy) -> None:
        write_json(self.path / "taxonomy.json", {"ids": taxonomy.ids, "names": taxonomy.names,
                                                 "parent": [int(p) for p in taxonomy.parent]})

    def save_classes(self, names: Sequence[str], nodes: Sequence[int], **extra: object) -> None:
        write_json(self.path / "classes.json", {"classes": list(names), "nodes": [int(n) for n in nodes]} | extra)

    # ----- health and summary -----------------------------------------------------------------
    def problems(self) -> list[str]:
        """What is wrong with this run's files (empty when healthy); finished runs need their metrics."""
        out = []
        st = self.status()
        if st["state"] == "damaged":
            out.append(f"{self.name}: {st['error']}")
        try:
            self.config  # noqa: B018 - validates config.json
        except RunError as exc:
            out.append(str(exc))
        if st["state"] == "done":
            try:
                self.metrics()
            except RunError as exc:
                out.append(str(exc))
        return out

    def summary(self) -> dict:
        """One row for tables: state (damaged runs say why), main settings, headline test metrics."""
        problems = self.problems()
        st = self.status()
        config: dict = {}
        metrics: dict = {}
        if not problems:
            config = self.config
            metrics = self.metrics() if st["state"] == "done" else {}
        plain, crm = metrics.get("plain", {}), metrics.get("crm", {})
        row = {
            "run_id": self.name,
            "status": "damaged" if problems else st.get("state"),
            "kind": config.get("kind", "trained"),
            "data": Path(str(config.get("data", ""))).name,
            "targets": config.get("targets"),
            "alpha": config.get("alpha"),
            "temperature": config.get("temperature"),
            "k": config.get("k"),
            "beta": config.get("beta"),
            "mix": config.get("mix"),
            "curriculum_epochs": config.get("curriculum_epochs"),
            "aux_codes": config.get("aux_codes"),
            "encoder": metrics.get("encoder", ""),
            "epochs_run": len(self.history()),
        }
        row.update({key: plain.get(key) for key in SUMMARY_KEYS})
        row["ece_raw"] = plain.get("ece_raw")
        row["calibration_temperature"] = plain.get("temperature")
        row["crm_mistake_severity"] = crm.get("mistake_severity")
        row["error"] = "; ".join(problems) if problems else st.get("error", "")
        return row


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


METRIC_ROWS = (*SUMMARY_KEYS, "ece_raw", "calibration_temperature", "crm_mistake_severity")


def compare(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Metrics side by side, one column per run, metric rows first (what a comparison is for), then the
    settings; a folder that is not a run or a damaged run is refused."""
    frames = {}
    for d in run_dirs:
        run = Run.open(d)
        problems = run.problems()
        if problems:
            raise RunError("; ".join(problems))
        frames[run.name] = pd.Series(run.summary()).drop("run_id")
    table = pd.DataFrame(frames)
    return table.loc[[*METRIC_ROWS, *(r for r in table.index if r not in METRIC_ROWS)]]


def split_comparison(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics as floats, settings as text) of a `compare` table: one type per table, so a grid (Arrow)
    shows numbers as numbers instead of failing on a column mixing text and floats."""
    metrics = table.loc[[r for r in METRIC_ROWS if r in table.index]].apply(pd.to_numeric, errors="coerce").astype(float)
    settings = table.drop(index=metrics.index).map(lambda v: "" if v is None or v != v else str(v))
    return metrics, settings


REPRESENTATION_SETTINGS = {"onehot": (), "uniform": ("alpha",), "knn-uniform": ("alpha", "k"),
                           "semantic": ("alpha", "temperature", "k"), "tree": ("alpha", "beta"),
                           "hybrid": ("alpha", "temperature", "k", "beta", "mix")}
SHORT_NAMES = {"alpha": "α", "temperature": "T", "beta": "β"}


def representation_label(row: dict) -> str:
    """A run's label representation with the settings that shape it, e.g. 'semantic α=0.1 T=0.05 k=20',
    so two runs of one kind but different settings are told apart in a chart legend."""
    kind = str(row.get("targets"))
    parts = [f"{SHORT_NAMES.get(n, n)}={row[n]:g}" for n in REPRESENTATION_SETTINGS.get(kind, ()) if row.get(n) is not None]
    return " ".join([kind, *parts])


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


def launch_background(run_dir: Path, cwd: str | Path | None = None, command: str = "run") -> subprocess.Popen:
    """Execute a queued run (or, with command="sweep-run", a requested sweep) in a separate process
    (`python -m core COMMAND FOLDER`), detached from the caller so an app page can be left and the
    work goes on; output goes to run.log in the folder."""
    log = open(Path(run_dir) / "run.log", "ab")  # noqa: SIM115 - handed to the child process
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-m", "core", command, str(run_dir)], cwd=cwd or Path(__file__).resolve().parents[2],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def wait_for(run_dir: Path, timeout: float = 600, poll: float = 0.5) -> dict:
    """Block until a run leaves queued/running (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(run_dir)
        if st.get("state") not in ("queued", "running"):
            return st
        time.sleep(poll)
    raise TimeoutError(f"run {run_dir.name} still {status(run_dir).get('state')} after {timeout:.0f} s")
