"""Runs as table rows: the store's table (one row per run), the compare table (metrics first, then
settings) split into one type per table for a grid, and the chart legend that names a run's label
representation with its settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from core.evaluation.registry import SUMMARY_KEYS
from core.labels.kinds import TARGET_KINDS, readers
from core.runs.store import Run, RunError, RunStore
from core.settings import settings

# the settings that shape some kind's targets, in declaration order (the legend and the compare table show them)
SHAPING = tuple(s.name for s in settings(["label"]) if readers(s.name))
METRIC_ROWS = (*SUMMARY_KEYS, "ece_raw", "calibration_temperature", "crm_mistake_severity")


def summary_row(run: Run) -> dict:
    """One row for tables: state (damaged runs say why), main settings, headline test metrics."""
    problems = run.problems()
    st = run.status()
    config: dict = {}
    metrics: dict = {}
    if not problems:
        config = run.config
        metrics = run.metrics() if st["state"] == "done" else {}
    plain, crm = metrics.get("plain", {}), metrics.get("crm", {})
    row = {
        "run_id": run.name,
        "status": "damaged" if problems else st.get("state"),
        "kind": config.get("kind", "trained"),
        "data": Path(str(config.get("data", ""))).name,
        "targets": config.get("targets"),
        **{name: config.get(name) for name in (*SHAPING, "curriculum_epochs", "aux_codes")},
        "encoder": metrics.get("encoder", ""),
        "epochs_run": len(run.history()),
    }
    row.update({key: plain.get(key) for key in SUMMARY_KEYS})
    row["ece_raw"] = plain.get("ece_raw")
    row["calibration_temperature"] = plain.get("temperature")
    row["crm_mistake_severity"] = crm.get("mistake_severity")
    row["error"] = "; ".join(problems) if problems else st.get("error", "")
    return row


def runs_table(store: RunStore) -> pd.DataFrame:
    """One row per run, newest first: state, the main settings and the headline test metrics."""
    rows = [summary_row(r) for r in store.runs()]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "status", "targets"])


def compare(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Metrics side by side, one column per run, metric rows first (what a comparison is for), then the
    settings; a folder that is not a run or a damaged run is refused."""
    frames = {}
    for d in run_dirs:
        run = Run.open(d)
        problems = run.problems()
        if problems:
            raise RunError("; ".join(problems))
        frames[run.name] = pd.Series(summary_row(run)).drop("run_id")
    table = pd.DataFrame(frames)
    return table.loc[[*METRIC_ROWS, *(r for r in table.index if r not in METRIC_ROWS)]]


def split_comparison(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics as floats, settings as text) of a `compare` table: one type per table, so a grid (Arrow)
    shows numbers as numbers instead of failing on a column mixing text and floats."""
    metrics = table.loc[[r for r in METRIC_ROWS if r in table.index]].apply(pd.to_numeric, errors="coerce").astype(float)
    settings = table.drop(index=metrics.index).map(lambda v: "" if v is None or v != v else str(v))
    return metrics, settings


SHORT_NAMES = {"alpha": "α", "temperature": "T", "beta": "β"}


def representation_label(row: dict) -> str:
    """A run's label representation with the settings that shape it, e.g. 'semantic α=0.1 T=0.05 k=20',
    so two runs of one kind but different settings are told apart in a chart legend."""
    kind = str(row.get("targets"))
    reads = TARGET_KINDS[kind].reads if kind in TARGET_KINDS else ()
    parts = [f"{SHORT_NAMES.get(n, n)}={row[n]:g}" for n in reads if row.get(n) is not None]
    return " ".join([kind, *parts])
