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
as `interrupted` (core/runs/status.py).

Every file except the append-only log is written to a temporary name and renamed, so a crash
leaves the previous version or nothing, never half a file."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.files import atomic_path, read_json, write_failed, write_json
from core.runs.status import RunError, history, record_failure, set_status, status

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
    "predictions.parquet": ("parquet", "per test item: truth, ranked answers, probabilities (core/evaluation/schema.py)"),
    "model.safetensors": ("safetensors", "the weights"),
    "model.json": ("json", "the architecture, calibration temperature and encoder identity"),
    "classes.json": ("json", "the class paths and taxonomy nodes in model output order"),
    "taxonomy.json": ("json", "the taxonomy the run used"),
    "report.json": ("json", "what data preparation dropped and noted"),
    "selective.parquet": ("parquet", "per validation and test item: its climb's subtree probabilities (core/evaluation/selective.py)"),
    "progress.json": ("json", "the running stage's progress"),
}


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


class Run:
    """One run folder. Every reader validates the shape of what it reads, so one damaged run raises
    RunError naming its fault (and `problems()` lists them) while the rest of the store stays usable."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

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
        from core.evaluation.schema import PredictionsError, read

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
    def finish(self, predictions: pd.DataFrame, metrics: dict, *, taxonomy: Taxonomy, classes: Sequence[str],
               nodes: Sequence[int], report: dict | None = None, slices: list | None = None) -> None:
        """Write a run's results (predictions, classes with their taxonomy nodes, the taxonomy, the report
        when given, metrics), then `done` last, so a run reads as done only when all of it is there. What
        training, the audit and an import share. Each file is written atomically; when one cannot be saved
        (a full disk) the run is marked failed with that readable message, which is raised."""
        try:
            write_parquet(self.path / "predictions.parquet", predictions)
            write_json(self.path / "classes.json", {"classes": list(classes), "nodes": [int(n) for n in nodes]}
                       | ({"slices": slices} if slices is not None else {}))
            write_json(self.path / "taxonomy.json", {"ids": taxonomy.ids, "names": taxonomy.names,
                                                     "parent": [int(p) for p in taxonomy.parent]})
            if report is not None:
                write_json(self.path / "report.json", report)
            write_json(self.path / "metrics.json", metrics)
            set_status(self.path, "done")
        except OSError as exc:
            record_failure(self.path, error=str(exc))
            raise

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


