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
from core.settings import defaults, settings

# the settings that shape some kind's targets, in declaration order (the legend and the compare table show them)
SHAPING = tuple(s.name for s in settings(["label"]) if readers(s.name))
METRIC_ROWS = (*SUMMARY_KEYS, "ece_raw", "calibration_temperature", "crm_mistake_severity")
# always shown beside the kind: the prompt template shapes the label embeddings (an adopted one once went unseen)
MAIN_SETTINGS = ("template", "curriculum_epochs", "aux_codes")
SIGNIFICANT = 3  # digits a setting is shown with: alpha 0.3587435924002349 reads 0.359


def rounded(value: object) -> object:
    """A float setting to SIGNIFICANT digits for reading (other values as they are)."""
    return float(f"{value:.{SIGNIFICANT}g}") if isinstance(value, float) and value == value else value


def relevant(name: str, targets: object) -> bool:
    """Whether `name` can matter to a run of this target kind: a setting that shapes targets only
    for the kinds that read it (core/labels/kinds.py); any other setting always. A damaged config's
    `targets` (not a kind's name) reads none of them."""
    return name not in SHAPING or (isinstance(targets, str) and targets in readers(name))


def changed_settings(config: dict) -> dict:
    """The settings of a trained run that differ from their declared defaults and can matter to its
    kind, in declaration order: what must be visible wherever the run is compared or re-launched.
    The data group (paths, columns) is left out: `data` names it."""
    if config.get("kind", "trained") != "trained":
        return {}
    targets = config.get("targets", defaults()["targets"])
    return {s.name: config[s.name] for s in settings() if s.group != "data" and s.name in config
            and config[s.name] != s.default and relevant(s.name, targets)}


def data_key(config: dict) -> tuple:
    """What makes two runs' data the same: the table, its labels and how many rows were read."""
    return (str(config.get("data", "")), tuple(config.get("label_columns") or ()), config.get("max_rows"))


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
    trained = bool(config) and config.get("kind", "trained") == "trained"  # an imported run has no settings of ours
    default = defaults()
    row = {
        "run_id": run.name,
        "status": "damaged" if problems else st.get("state"),
        "kind": config.get("kind", "trained"),
        "data": Path(str(config.get("data", ""))).name,
        "targets": config.get("targets"),
        **{name: config.get(name, default[name]) if trained and relevant(name, config.get("targets")) else None
           for name in (*SHAPING, *MAIN_SETTINGS)},  # a config written before a setting existed ran on its default
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
    rows = [{k: rounded(v) for k, v in summary_row(r).items()} for r in store.runs()]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "status", "targets"])


def same_data_runs(store: RunStore, n: int = 4) -> list[str]:
    """The newest `n` finished runs on the newest finished run's data: what Compare opens on, so the
    runs it sets side by side can be compared item by item (runs of other catalogs cannot)."""
    done = store.finished()
    if not done:
        return []
    newest = data_key(done[0].config)
    return [r.name for r in done if data_key(r.config) == newest][:n]


def compare(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Metrics side by side, one column per run, metric rows first (what a comparison is for), then the
    settings; a folder that is not a run or a damaged run is refused."""
    frames = {}
    for d in run_dirs:
        run = Run.open(d)
        problems = run.problems()
        if problems:
            raise RunError("; ".join(problems))
        row = summary_row(run)
        frames[run.name] = pd.Series(row | {k: v for k, v in changed_settings(run.config).items() if k not in row}).drop("run_id")
    table = pd.DataFrame(frames)
    return table.loc[[*METRIC_ROWS, *(r for r in table.index if r not in METRIC_ROWS)]]


def split_comparison(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics as floats, settings as text) of a `compare` table: one type per table, so a grid (Arrow)
    shows numbers as numbers instead of failing on a column mixing text and floats."""
    metrics = table.loc[[r for r in METRIC_ROWS if r in table.index]].apply(pd.to_numeric, errors="coerce").astype(float)
    settings = table.drop(index=metrics.index).map(lambda v: "" if v is None or v != v else str(rounded(v)))
    return metrics, settings


SHORT_NAMES = {"alpha": "α", "temperature": "T", "beta": "β"}


def representation_label(row: dict) -> str:
    """A run's label representation with the settings that shape it, e.g. 'semantic α=0.1 T=0.05 k=20',
    so two runs of one kind but different settings are told apart in a chart legend."""
    targets = row.get("targets")
    kind = targets if isinstance(targets, str) else str(row.get("kind") or "imported")  # an imported run has no kind (not "nan")
    reads = TARGET_KINDS[kind].reads if kind in TARGET_KINDS else ()
    parts = [f"{SHORT_NAMES.get(n, n)}={rounded(row[n]):g}" for n in reads if row.get(n) is not None and row[n] == row[n]]
    return " ".join([kind, *parts])
