"""Sweeps: find the label representation that makes the mildest mistakes on the user's own catalog.

A sweep searches a space of settings with Ray Tune (Optuna's multi-objective NSGA-II sampler, or a
grid), scores every trial on the *validation* split, and keeps the Pareto set on the chosen
objectives. The data are loaded, split and embedded once in the driver and shared with every trial
through Ray's object store. Every trial is a run in the store; its config.json carries
`"sweep": {"id", "phase", "arm"}` (a key that is not a setting, so the run loads as any other).
A report re-trains the Pareto settings and the one-hot baseline over several seeds (same split, so
the test items are never seen by the search) and gives a mean and 95% interval per test metric.

The sweep's own record lives in RUNS/_sweeps/SWEEP_ID/: sweep.json (space, objectives, trials,
Pareto set, state) and report.json."""

from __future__ import annotations

import dataclasses
import math
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core import files, settings
from core.errors import TaxolensError
from core.evaluation.registry import HEADLINE, METRICS, SUMMARY_KEYS, TOP_K, objective_keys
from core.labels import kinds
from core.runs.process import launch_background
from core.runs.status import set_status
from core.runs.store import RunStore
from core.settings import ExperimentConfig

SWEEPS_DIR = "_sweeps"
SEARCHES = {"nsga2": "Optuna NSGA-II (multi-objective)", "grid": "Grid"}
DEFAULT_SEARCH = "nsga2"
DEFAULT_TRIALS = 20
DEFAULT_SEEDS = 3  # seeds of the test-split report
# accuracy against how far off the answers are: the default objectives and what the report decides on
ACCURACY, SEVERITY = "top1", f"hdist@{TOP_K}"
DEFAULT_OBJECTIVES = ",".join(f"{m}:{METRICS[m].direction}" for m in (ACCURACY, SEVERITY))
GRID_POINTS = 3  # values per numeric range in a grid search, unless the range says `points`
DEFAULT_SPACE: dict[str, Any] = {
    "targets": ["onehot", "semantic", "tree", "hybrid"],
    "alpha": {"low": 0.02, "high": 0.4, "log": True},
    "temperature": {"low": 0.02, "high": 1.0, "log": True},
    "k": {"low": 3, "high": 40, "log": True},
    "beta": {"low": 1.0, "high": 30.0, "log": True},
    "mix": {"low": 0.0, "high": 1.0},
    "template": ["name", "path"],
    "curriculum_epochs": [0, 3],
    "aux_codes": ["none", "taxonomy"],
}
ACTIVE = ("starting", "running", "reporting")  # a sweep's states while its process works
NOT_SEARCHABLE = {"seed", "encoder", "clip_checkpoint"}  # the seed is varied by the report; the encoder is prepared once
RULE = (f"recommended: among the Pareto settings whose mean test {ACCURACY} is not below the lower end of one-hot's "
        f"95% interval for {ACCURACY}, the one with the lowest mean test {SEVERITY} (one-hot when none qualifies)")


class SweepError(TaxolensError, ValueError):
    """A bad space, objective or sweep request; the message says what to change."""


# ----- the space --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One searched setting: a list of choices, or a numeric range [low, high] (log-scaled if `log`)."""

    name: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    points: int = GRID_POINTS
    integer: bool = False

    def tune_domain(self) -> Any:
        from ray import tune

        if self.choices is not None:
            return tune.choice(list(self.choices))
        if self.integer:
            return (tune.lograndint if self.log else tune.randint)(int(self.low), int(self.high) + 1)
        return (tune.loguniform if self.log else tune.uniform)(self.low, self.high)

    def grid_values(self) -> list:
        """The choices, or `points` values spread evenly (geometrically if log) from low to high."""
        if self.choices is not None:
            return list(self.choices)
        spread = np.geomspace if self.log else np.linspace
        values = spread(self.low, self.high, self.points)
        return sorted({int(round(v)) for v in values}) if self.integer else [float(v) for v in values]


def load_space(path: str | Path | None) -> dict:
    """A space from a JSON or YAML file (YAML reads both), or the default space."""
    if path is None:
        return DEFAULT_SPACE
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"space file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid JSON or YAML: {str(exc).splitlines()[0]}") from None
    return raw if raw is not None else {}


def searchable() -> list[str]:
    return [s.name for s in settings.settings(["encoder", "label", "training", "model"])
            if s.name not in NOT_SEARCHABLE]


def parse_space(raw: object, base: ExperimentConfig | None = None) -> list[Dimension]:
    """Validated dimensions. A value may be a list of choices, {low, high[, log][, points]} or a single
    fixed value; every value is checked against the setting's declaration (core/settings.py)."""
    if not isinstance(raw, dict) or not raw:
        raise SweepError("the search space is empty: give at least one setting, e.g. {\"alpha\": {\"low\": 0.05, \"high\": 0.3}}")
    allowed = searchable()
    dims = []
    for name, spec in raw.items():
        if name not in allowed:
            raise SweepError(f"{name!r} cannot be searched; searchable settings: {', '.join(allowed)}")
        s = settings.get(name)
        try:
            dims.append(_dimension(s, spec))
        except ValueError as exc:
            raise SweepError(f"space, {name}: {exc}") from None
    chosen = set(next((d.choices for d in dims if d.name == "targets"), None) or [(base or ExperimentConfig()).targets])
    for d in dims:
        if not read_by_any(d.name, chosen) and (d.choices is None or len(d.choices) > 1):
            raise SweepError(f"the space varies {d.name}, but none of its target kinds ({', '.join(sorted(chosen))}) uses it; "
                             f"{d.name} matters for {', '.join(sorted(kinds.readers(d.name)))}")
    return dims


def read_by_any(name: str, chosen_kinds: Iterable[str]) -> bool:
    """Whether varying `name` can change a trial of these kinds: a setting that shapes targets counts
    only when one of them reads it (core/labels/kinds.py); any other setting always counts."""
    return name not in kinds.shaping_settings() or bool(kinds.readers(name) & set(chosen_kinds))


def _dimension(s: settings.Setting, spec: object) -> Dimension:
    if isinstance(spec, list):
        if not spec:
            raise ValueError("an empty list of choices")
        values = tuple(dict.fromkeys(s.check(v) for v in spec))
        return Dimension(s.name, choices=values)
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log", "points"}
        if unknown or not {"low", "high"} <= set(spec):
            raise ValueError("a range is {low, high} with optional log (true/false) and points (grid values)")
        if s.type not in (int, float):
            raise ValueError(f"a range needs a numeric setting; give a list of choices ({', '.join(s.choices or [])})")
        low, high = s.check(spec["low"]), s.check(spec["high"])
        if low > high:
            raise ValueError(f"low {low} is above high {high}")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ValueError(f"a log range needs low > 0; got {low}")
        points = spec.get("points", GRID_POINTS)
        if not isinstance(points, int) or points < 1:
            raise ValueError(f"points must be a positive integer; got {points!r}")
        return Dimension(s.name, low=low, high=high, log=log, points=points, integer=s.type is int)
    return Dimension(s.name, choices=(s.check(spec),))


def tune_space(dims: Sequence[Dimension], search: str) -> dict:
    """Ray Tune's param_space: sampling domains for NSGA-II, grid_search lists for a grid."""
    from ray import tune

    if search == "grid":
        return {d.name: tune.grid_search(d.grid_values()) for d in dims}
    return {d.name: d.tune_domain() for d in dims}


def grid_size(dims: Sequence[Dimension]) -> int:
    return math.prod(len(d.grid_values()) for d in dims)


# ----- objectives and the Pareto set --------------------------------------------------------------
def metric_keys() -> tuple[str, ...]:
    """What a trial reports and an objective may name: the keys `metrics.evaluate` returns and the
    guaranteed-accuracy metrics every run adds (registry.py)."""
    return objective_keys()


def parse_objectives(text: str) -> list[tuple[str, str]]:
    """'top1:max,hdist@5:min' -> [('top1', 'max'), ('hdist@5', 'min')], checked against the metric keys."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise SweepError(f"no objectives given; e.g. {DEFAULT_OBJECTIVES}")
    out: list[tuple[str, str]] = []
    for part in parts:
        metric, sep, direction = part.rpartition(":")
        if not sep or not metric:
            raise SweepError(f"objective {part!r} needs a direction: METRIC:max or METRIC:min")
        if metric not in metric_keys():
            raise SweepError(f"unknown metric {metric!r} in --objectives; metrics: {', '.join(metric_keys())}")
        if direction not in ("max", "min"):
            raise SweepError(f"unknown direction {direction!r} for {metric}; use max or min")
        if metric in (m for m, _ in out):
            raise SweepError(f"{metric} is listed twice in --objectives")
        out.append((metric, direction))
    return out


def pareto_front(points: Sequence[dict | None], objectives: Sequence[tuple[str, str]]) -> list[int]:
    """Indices of the non-dominated points. Point a dominates b when it is at least as good on every
    objective and better on one; a missing value (None/NaN, or a failed trial's None) is worst."""
    def score(p: dict | None) -> np.ndarray:
        vals = []
        for metric, direction in objectives:
            v = None if p is None else p.get(metric)
            v = -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else (v if direction == "max" else -v)
            vals.append(v)
        return np.array(vals, dtype=np.float64)

    scores = [score(p) for p in points]
    return [i for i, a in enumerate(scores)
            if points[i] is not None
            and not any((b >= a).all() and (b > a).any() for j, b in enumerate(scores) if j != i)]


# ----- running trials on Ray ---------------------------------------------------------------------
def sweeps_root(store: str | Path) -> Path:
    return Path(store) / SWEEPS_DIR


def sweep_dir(store: str | Path, sweep_id: str) -> Path:
    path = sweeps_root(store) / sweep_id
    if not (path / "sweep.json").is_file():
        raise SweepError(f"no sweep {sweep_id!r} in {store} (sweeps there: {', '.join(list_sweeps(store)) or 'none'})")
    return path


def list_sweeps(store: str | Path) -> list[str]:
    """Every sweep, newest first, including one the app requested that is still starting (request.json
    only: Ray and the embedding take a while), so the page shows it at once."""
    root = sweeps_root(store)
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if (p / "sweep.json").is_file() or (p / "request.json").is_file()), reverse=True)


def new_sweep_id() -> str:
    return f"sweep-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def share(base: ExperimentConfig, templates: Sequence[str], on_event: Callable | None = None, dataset: Any = None) -> dict:
    """Prepare the data once, with the label embeddings of every template the space may pick."""
    from core.data.encoders import cached_encoder, label_embeddings
    from core.training.experiment import prepare

    prepared = prepare(base, on_event, dataset)
    out = {base.template: prepared}
    encoder = cached_encoder(base.encoder, base.clip_checkpoint, base.device).encoder
    for t in templates:
        if t not in out:
            emb = label_embeddings(prepared.dataset.taxonomy, prepared.dataset.classes, encoder, t)
            out[t] = dataclasses.replace(prepared, label_emb=emb)
    return out


def _trial(params: dict, *, base: dict, shared: dict, store: str, tag: dict) -> None:
    """One Tune trial: a run in the store, trained on the shared data, reporting validation metrics."""
    import torch
    from ray import tune

    from core.training.experiment import execute_run

    torch.set_num_threads(1)
    params = dict(params)
    arm = params.pop("arm", None)
    if isinstance(arm, dict):
        params = arm["settings"] | {"seed": arm["seed"]}
        arm = arm["name"]
    config = ExperimentConfig.from_dict(base | params)
    config.validate()
    run = RunStore(store).create(config.to_dict() | {"sweep": tag | {"arm": arm}})
    summary = execute_run(run.path, prepared=shared[config.template])
    val = {k: (math.nan if v is None else v) for k, v in summary.get("val", {}).items()}
    tune.report(val | {"run_id": run.name, "test": summary.get("plain", {}), "crm": summary.get("crm", {})})


def cancel_requested(folder: Path) -> bool:
    return (folder / "cancel.request").exists()


class _CancelledWhileStarting(Exception):
    """Raised from the preparation's progress callback once the sweep folder holds cancel.request."""


def _cancellable(on_event: Callable | None, folder: Path) -> Callable:
    """`on_event`, checking for a cancel first, so a sweep cancelled while it embeds stops there."""
    def event(*args: Any) -> None:
        if cancel_requested(folder):
            raise _CancelledWhileStarting
        if on_event is not None:
            on_event(*args)
    return event


def _stopper(folder: Path) -> Any:
    """A Tune stopper that ends every trial once the sweep folder holds cancel.request."""
    from ray import tune

    class Stop(tune.Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return cancel_requested(folder)

        def stop_all(self) -> bool:
            return cancel_requested(folder)

    return Stop()


def run_trials(param_space: dict, *, search: str, num_samples: int, objectives: Sequence[tuple[str, str]],
               base: ExperimentConfig, shared: dict, store: Path, tag: dict, folder: Path,
               on_result: Callable[[dict], None] | None = None, seed: int = 0) -> list[dict]:
    """Run the trials with Ray Tune (Ray must be initialised); one result dict per finished trial."""
    from ray import tune

    class Live(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if on_result is not None and trial.last_result:
                on_result(dict(trial.last_result))

    import os

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    search_alg = None
    if search == "nsga2":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, min(20, num_samples // 2)))
        search_alg = OptunaSearch(sampler=sampler, metric=[m for m, _ in objectives], mode=[d for _, d in objectives])
    trainable = tune.with_resources(tune.with_parameters(_trial, base=base.to_dict(), shared=shared, store=str(store.resolve()),
                                                         tag=tag), {"cpu": 1})
    stopper = _stopper(folder)
    with tempfile.TemporaryDirectory(prefix="taxolens-tune-") as scratch:
        tuner = tune.Tuner(trainable, param_space=param_space,
                           tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=num_samples),
                           run_config=tune.RunConfig(name=tag["id"], storage_path=scratch, verbose=0, stop=stopper,
                                                     callbacks=[Live()]))
        grid = tuner.fit()
        results = [dict(r.metrics or {}) for r in grid]
        errors = [str(r.error).strip().splitlines()[-1] for r in grid if r.error is not None]
    finished = [r for r in results if r.get("run_id")]
    if not finished and not cancel_requested(folder):
        raise SweepError(f"every trial failed; the first error: {errors[0] if errors else 'unknown'}")
    return finished


def _mark_unfinished(store: Path, sweep_id: str) -> None:
    """Trials stopped by a cancel never reached their own 'done'; say so in their status."""
    for run in RunStore(store).runs():
        tag = (files.read_json(run.path / "config.json", {}) or {}).get("sweep") or {}
        if tag.get("id") == sweep_id and run.state in ("queued", "running"):
            set_status(run.path, "cancelled")


def sweep(base: ExperimentConfig, dims: Sequence[Dimension], objectives: Sequence[tuple[str, str]], *, trials: int,
          store: str | Path, search: str = DEFAULT_SEARCH, address: str | None = None, raw_space: object = None,
          sweep_id: str | None = None, on_event: Callable | None = None,
          on_trial: Callable[[dict], None] | None = None, dataset: Any = None) -> dict:
    """Run a sweep and return its record (also written to RUNS/_sweeps/SWEEP_ID/sweep.json)."""
    from core.scale import cluster

    if search not in SEARCHES:
        raise SweepError(f"search must be one of {', '.join(SEARCHES)}; got {search!r}")
    if trials < 1:
        raise SweepError(f"--trials must be at least 1; got {trials}")
    if search == "grid" and grid_size(dims) > trials:
        raise SweepError(f"the grid has {grid_size(dims)} points but --trials is {trials}; raise --trials or narrow the space")
    store = Path(store)
    sweep_id = sweep_id or new_sweep_id()
    folder = sweeps_root(store) / sweep_id
    record: dict = {"sweep_id": sweep_id, "created": datetime.now(UTC).isoformat(timespec="seconds"), "state": "running",
                    "search": search, "objectives": [f"{m}:{d}" for m, d in objectives], "space": raw_space,
                    "base": base.to_dict(), "trials": [], "pareto": []}
    templates = next((d.choices for d in dims if d.name == "template"), None) or (base.template,)
    with cluster.session(address, runtime_env=cluster.worker_env()) as engine:
        try:
            shared = share(base, templates, _cancellable(on_event, folder), dataset)
        except _CancelledWhileStarting:
            shared = None
        folder.mkdir(parents=True, exist_ok=True)
        record |= {"engine": engine.kind, "address": engine.address}
        if shared is None or cancel_requested(folder):  # cancelled while starting: no trial is run
            record["state"] = "cancelled"
        files.write_json(folder / "sweep.json", record)
        if record["state"] == "cancelled":
            return record

        def collect(result: dict) -> None:
            record["trials"].append(_trial_entry(result, dims))
            files.write_json(folder / "sweep.json", record)
            if on_trial is not None:
                on_trial(result)

        try:
            finished = run_trials(tune_space(dims, search), search=search, num_samples=1 if search == "grid" else trials,
                                  objectives=objectives, base=base, shared=shared, store=store,
                                  tag={"id": sweep_id, "phase": "search"}, folder=folder, on_result=collect, seed=base.seed)
        except Exception as exc:
            record |= {"state": "failed", "error": str(exc)}
            files.write_json(folder / "sweep.json", record)
            _mark_unfinished(store, sweep_id)
            raise
    record["trials"] = [_trial_entry(r, dims) for r in finished]
    record["pareto"] = [record["trials"][i]["run_id"] for i in pareto_front([t["val"] for t in record["trials"]], objectives)]
    record["state"] = "cancelled" if cancel_requested(folder) else "done"
    _mark_unfinished(store, sweep_id)
    files.write_json(folder / "sweep.json", record)
    return record


def request(store: str | Path, base: ExperimentConfig, space: dict, objectives: str, *, trials: int, seeds: int = 0,
            search: str = DEFAULT_SEARCH, cwd: str | Path | None = None) -> Path:
    """Check a sweep request (the app's), write it as request.json in a new sweep folder and start
    `python -m core sweep-run FOLDER` in the background. Bad input is raised before any folder exists."""
    from core.training.experiment import check_inputs

    parse_space(space, base)
    parse_objectives(objectives)
    if trials < 1:
        raise SweepError(f"trials must be at least 1; got {trials}")
    check_inputs(base)
    folder = sweeps_root(store) / new_sweep_id()
    folder.mkdir(parents=True)
    files.write_json(folder / "request.json", {"base": base.to_dict(), "space": space, "objectives": objectives,
                                              "trials": trials, "seeds": seeds, "search": search})
    launch_background(folder, cwd=cwd, command="sweep-run")
    return folder


def read_record(folder: Path) -> dict:
    """The sweep's record, or what the request asked for while the sweep is starting."""
    record = files.read_json(folder / "sweep.json")
    asked = files.read_json(folder / "request.json", {}) or {}
    if record is None:
        record = {"sweep_id": folder.name, "state": "starting", "trials": [], "pareto": [], "objectives":
                  [f"{m}:{d}" for m, d in parse_objectives(asked.get("objectives", DEFAULT_OBJECTIVES))],
                  "base": asked.get("base")}
    asked_for = {"trials_asked": asked.get("trials"), "seeds": asked.get("seeds")}  # what the progress bar counts to
    return record | {k: v for k, v in asked_for.items() if v is not None}


def progress(record: dict, step: dict | None = None, stages: dict[str, str] | None = None) -> tuple[float, str]:
    """(fraction, words) for a sweep's progress bar: while starting, the stage the sweep process last
    wrote to progress.json (`step`, named by `stages`: embedding is most of the wait), then trial n of
    N while searching, then the report."""
    n, total = len(record.get("trials", [])), record.get("trials_asked")
    of = f" of {total}" if total else ""
    state = record.get("state")
    if state == "starting" and step:
        words = (stages or {}).get(step["stage"], step["stage"])
        return step["done"] / max(step["total"], 1), f"starting: {words} {step['done']:,}/{step['total']:,}, then {total} trials"
    if state == "starting":
        return 0.0, "starting: Ray, then embedding the products and category names once for every trial"
    if state == "running":
        return (min(n / total, 1.0) if total else 0.0), f"trial {n}{of} finished (validation split)"
    if state == "reporting":
        return 1.0, f"{n} trials done; test-split report: re-training the Pareto settings and one-hot over {record.get('seeds')} seeds"
    return 1.0, f"{state}: {n}{of} trials"


def mark_failed(folder: Path, error: str) -> None:
    """A sweep process that failed outside the search (Ray would not start, the data would not load)
    says so in sweep.json, instead of leaving the page on 'starting' for ever."""
    record = read_record(folder)
    if record.get("state") in ACTIVE:
        kept = {k: v for k, v in record.items() if k not in ("trials_asked", "seeds")}
        files.write_json(folder / "sweep.json", kept | {"state": "failed", "error": error})


def trials_frame(record: dict) -> Any:
    """One row per finished trial: run id, the searched settings, validation metrics, on the front or not."""
    import pandas as pd

    rows = [{"run_id": t["run_id"]} | relevant_settings(t["config"]) | {k: t["val"].get(k) for k in metric_keys()}
            for t in record.get("trials", [])]
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["pareto"] = frame["run_id"].isin(record.get("pareto", []))
    return frame


def relevant_settings(config: dict) -> dict:
    """A trial's settings with those its target kind does not read blanked (a one-hot trial's alpha was
    drawn, but did nothing)."""
    kind = config.get("targets")
    return {k: (v if kind is None or read_by_any(k, [kind]) else None) for k, v in config.items()}


def _trial_entry(result: dict, dims: Sequence[Dimension]) -> dict:
    config = result.get("config") or {}
    val = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items() if k in metric_keys()}
    return {"run_id": result["run_id"], "config": {d.name: config.get(d.name) for d in dims}, "val": val}


def public(record: dict) -> dict:
    """The --json object of `sweep`: sweep_id, engine, address, trials and the Pareto set."""
    keys = ("sweep_id", "engine", "address", "trials", "pareto")
    return {k: record.get(k) for k in keys} | ({"report": record["report"]} if "report" in record else {})


# ----- from validation to a decision --------------------------------------------------------------
def interval(values: Sequence[float]) -> dict:
    """Mean and 95% t-interval of the mean over seeds (n >= 2; a missing value is left out)."""
    from scipy import stats

    v = np.array([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=np.float64)
    if len(v) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": mean, "lo": None, "hi": None, "n": 1}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": int(len(v))}


def recommend(arms: dict[str, dict]) -> str:
    """The arm chosen by RULE from per-arm {metric: interval} summaries (keys: 'one-hot', 'pareto ...')."""
    floor = arms["one-hot"][ACCURACY]["lo"]
    floor = arms["one-hot"][ACCURACY]["mean"] if floor is None else floor
    ok = [name for name, m in arms.items() if name.startswith("pareto") and m[ACCURACY]["mean"] is not None
          and m[ACCURACY]["mean"] >= floor and m[SEVERITY]["mean"] is not None]
    return min(ok, key=lambda name: arms[name][SEVERITY]["mean"]) if ok else "one-hot"


def report(store: str | Path, sweep_id: str, *, seeds: int = DEFAULT_SEEDS, address: str | None = None,
           on_event: Callable | None = None) -> dict:
    """Re-train the Pareto settings and one-hot over `seeds` training seeds on the sweep's split and
    summarise the test metrics (one-hot + CRM is one-hot's runs re-ranked, no extra training)."""
    from core.scale import cluster

    if seeds < 2:
        raise SweepError(f"a report needs at least 2 seeds for an interval; got {seeds}")
    store = Path(store)
    folder = sweep_dir(store, sweep_id)
    record = files.read_json(folder / "sweep.json", {})
    if not record.get("pareto"):
        raise SweepError(f"sweep {sweep_id} has no finished trials to report on (state: {record.get('state')})")
    base = ExperimentConfig.from_dict(record["base"])
    by_id = {t["run_id"]: t for t in record["trials"]}
    onehot = {"targets": "onehot", "curriculum_epochs": 0, "aux_codes": "none"}
    settings_of = {"one-hot": onehot} | {f"pareto {i + 1}": by_id[r]["config"] for i, r in enumerate(record["pareto"])}
    arms = [{"name": name, "settings": s, "seed": base.seed + j} for name, s in settings_of.items() for j in range(seeds)]
    templates = tuple(dict.fromkeys(s.get("template") or base.template for s in settings_of.values()))
    from ray import tune

    files.write_json(folder / "sweep.json", record | {"state": "reporting"})
    try:
        with cluster.session(address, runtime_env=cluster.worker_env()):
            shared = share(base, templates, on_event)
            results = run_trials({"arm": tune.grid_search(arms)}, search="grid", num_samples=1, objectives=[],
                                 base=base, shared=shared, store=store, tag={"id": sweep_id, "phase": "report"}, folder=folder)
    finally:
        files.write_json(folder / "sweep.json", record)
    per_arm: dict[str, list[dict]] = {name: [] for name in settings_of}
    for r in results:
        per_arm[r["config"]["arm"]["name"]].append(r)
    summary = {name: {m: interval([(r.get("test") or {}).get(m) for r in rs]) for m in SUMMARY_KEYS}
               for name, rs in per_arm.items()}
    summary["one-hot + CRM"] = {m: interval([(r.get("crm") or {}).get(m) for r in per_arm["one-hot"]]) for m in SUMMARY_KEYS}
    chosen = recommend(summary)
    out = {"sweep_id": sweep_id, "seeds": seeds, "split": "the sweep's split; seeds vary initialisation and batches",
           "arms": [{"name": n, "settings": settings_of.get(n, onehot | {"crm": True}),
                     "runs": [r["run_id"] for r in per_arm.get(n if n in per_arm else "one-hot", [])],
                     "test": summary[n]} for n in summary],
           "rule": RULE, "recommended": {"arm": chosen, "settings": settings_of[chosen]}}
    files.write_json(folder / "report.json", out)
    return out


def format_report(rep: dict) -> str:
    """The report as a plain-text table: mean [95% interval] per arm and metric, then the rule and choice."""
    lines = [f"sweep {rep['sweep_id']}: test metrics over {rep['seeds']} seeds ({rep['split']})"]
    for arm in rep["arms"]:
        cells = []
        for m in HEADLINE:
            s = arm["test"][m]
            cells.append(f"{m} n/a" if s["mean"] is None else
                         f"{m} {s['mean']:.4f}" + ("" if s["lo"] is None else f" [{s['lo']:.4f}, {s['hi']:.4f}]"))
        lines.append(f"  {arm['name']:<14} " + "  ".join(cells))
        if arm["name"].startswith("pareto"):
            lines.append(f"  {'':<14} " + ", ".join(f"{k}={v}" for k, v in arm["settings"].items()))
    lines.append(rep["rule"])
    rec = rep["recommended"]
    lines.append(f"recommended: {rec['arm']}: " + ", ".join(f"{k}={v}" for k, v in rec["settings"].items()))
    return "\n".join(lines)
