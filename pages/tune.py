"""Tune page: search label representations on the sample catalog or your own product table in the
background, watch the trials land on an accuracy-versus-severity scatter with the Pareto front (live),
and adopt the settings you like."""

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from core import files, settings
from core.display import plain
from core.errors import TaxolensError
from core.evaluation.registry import METRICS
from core.runs.progress import read_progress
from core.runs.tables import rounded
from core.scale import sweep
from core.settings import TARGET_KINDS, TEMPLATES
from core.training.experiment import STAGES
from pages.shared import (
    ROOT,
    TRIAL_EPOCHS,
    column_hint,
    column_widgets,
    data_source,
    glossary_expander,
    metric_help,
    remembered,
    runs_dir,
    save_session,
    setting_widget,
    source_config,
    widget_bounds,
)

SPACE = sweep.DEFAULT_SPACE  # the form opens on the default space; "use these settings" adopts what it searches
CURRICULUM_CHOICES = [0, 2, 3, 5]
DIRECTIONS = ["max", "min"]


def range_slider(name: str, where) -> dict:
    """A {low, high, log} range for a numeric setting, within its declared bounds, opening on the default space's."""
    s = settings.get(name)
    lo, hi, _ = widget_bounds(s, slider=True)
    cast = int if s.type is int else float
    step = 1 if s.type is int else 0.01
    low, high = where.slider(s.label, cast(lo), cast(hi), (cast(SPACE[name]["low"]), cast(SPACE[name]["high"])),
                             step=step, help=s.help, key=f"tune_{name}")
    return {"low": low, "high": high, "log": bool(SPACE[name].get("log")) and low > 0}


def objective(where, n: int, metric: str) -> str:
    """An objective picker opening on `metric` and its better direction."""
    keys = list(sweep.metric_keys())
    chosen = where[0].selectbox(f"Objective {n}", keys, index=keys.index(metric))
    direction = where[1].selectbox(f"Direction {n}", DIRECTIONS, index=DIRECTIONS.index(METRICS[metric].direction))
    return f"{chosen}:{direction}"


def space_form() -> tuple[settings.ExperimentConfig, dict, str, int, int] | None:
    """The data (sample or upload, as on the Training page), the space, objectives and budget; what
    Launch asked for, or None."""
    source = data_source()
    column_hint(source)
    with st.form("tune_space"):
        st.markdown("**Columns**")
        columns = column_widgets(source)
        st.markdown("**Space** (validation-split scores)")
        kinds = st.multiselect("Target kinds", list(TARGET_KINDS), default=SPACE["targets"], format_func=TARGET_KINDS.get)
        c = st.columns(3)
        templates = c[0].multiselect("Prompt templates", list(TEMPLATES), default=SPACE["template"])
        aux = c[1].multiselect("Auxiliary codes", list(settings.AUX_CODES), default=SPACE["aux_codes"])
        space = {"targets": kinds, "template": templates, "aux_codes": aux,
                 "curriculum_epochs": c[2].multiselect(settings.get("curriculum_epochs").label, CURRICULUM_CHOICES,
                                                       default=SPACE["curriculum_epochs"])}
        names = settings.representation_settings()[1:]  # the settings targets read
        for col, name in zip(st.columns(len(names)), names, strict=True):
            space[name] = range_slider(name, col)
        st.markdown("**Objectives and budget**")
        c = st.columns(7)
        first, second = objective(c[0:2], 1, sweep.ACCURACY), objective(c[2:4], 2, sweep.SEVERITY)
        trials = c[4].number_input("Trials", 1, 200, 6)
        epochs = setting_widget("epochs", c[5], value=TRIAL_EPOCHS)
        seeds = c[6].number_input("Seeds for the test report (0 = none)", 0, 10, 2)
        submitted = st.form_submit_button("Launch sweep", type="primary")
    if not submitted:
        return None
    base = source_config(source, columns, epochs=int(epochs), encoder=remembered("encoder_kind", "auto"))
    if base is None:
        return None
    # a setting no chosen kind reads would make the space contradictory: leave it out
    space = {k: v for k, v in space.items() if sweep.read_by_any(k, kinds)}
    return base, space, f"{first},{second}", int(trials), int(seeds)


def scatter(record: dict, report: dict | None, x: str, y: str) -> go.Figure:
    frame = sweep.trials_frame(record)
    fig = go.Figure()
    fig.add_scatter(x=frame[x], y=frame[y], mode="markers", name="trials", customdata=frame[["run_id"]],
                    text=frame["targets"] if "targets" in frame else None,
                    marker={"size": 10, "color": frame["pareto"].map({True: "#d62728", False: "#7f7f7f"})},
                    hovertemplate="%{customdata[0]}<br>%{text}<br>" + f"{x} %{{x:.3f}}<br>{y} %{{y:.3f}}<extra></extra>")
    front = frame[frame["pareto"]].sort_values(x)
    fig.add_scatter(x=front[x], y=front[y], mode="lines", name="Pareto front", line={"color": "#d62728", "dash": "dot"},
                    hoverinfo="skip")
    for arm in (report or {}).get("arms", []):
        if not arm["name"].startswith("pareto") and arm["test"][x]["mean"] is not None:
            fig.add_scatter(x=[arm["test"][x]["mean"]], y=[arm["test"][y]["mean"]], mode="markers", name=f"{arm['name']} (test)",
                            marker={"symbol": "diamond", "size": 13})
    fig.update_layout(xaxis_title=f"{x} (validation)", yaxis_title=f"{y} (validation)", height=460,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def adopt(config: dict) -> None:
    """Make a trial's settings the Smoothing and Training pages' defaults (their remembered values),
    saved at once: this runs in a fragment, which the page's own save does not wrap."""
    saved = st.session_state.setdefault("_persist", {})
    for name in SPACE:
        if config.get(name) is not None:
            saved[name] = config[name]
            st.session_state.pop(name, None)
    save_session()


def sweep_view() -> None:
    """The chosen sweep's state, progress, trials and report; redrawn every 2 s while it runs (a
    fragment, so the form above keeps what is typed in it); when it ends the whole page reruns."""
    names = sweep.list_sweeps(runs_dir())
    if not names:
        st.info("No sweeps yet: choose the data and a space below and launch one.")
        return
    chosen = st.session_state.get("selected_sweep")
    sweep_id = st.selectbox("Sweep", names, index=names.index(chosen) if chosen in names else 0)
    st.session_state["selected_sweep"] = sweep_id
    folder = sweep.sweeps_root(runs_dir()) / sweep_id
    record = sweep.read_record(folder)
    running = record.get("state") in sweep.ACTIVE
    if st.session_state.get("_sweep_running") and not running:  # it ended since the last redraw
        st.session_state["_sweep_running"] = False
        st.rerun(scope="app")
    st.session_state["_sweep_running"] = running
    if running and st.session_state.get("_tune_started"):
        st.success(st.session_state["_tune_started"])
    data = (record.get("base") or {}).get("data")
    c = st.columns([4, 1])
    fraction, text = sweep.progress(record, read_progress(folder), STAGES)
    c[0].progress(fraction, text=f"{sweep_id} on {Path(data).name if data else 'its data'}: {text}")
    if running and c[1].button("Cancel sweep"):
        (folder / "cancel.request").touch()
        st.warning("Cancel requested; running trials stop shortly.")
    if record.get("error"):
        st.error(plain(record["error"]))
    objectives = [o.split(":")[0] for o in record.get("objectives", [])] or [sweep.ACCURACY, sweep.SEVERITY]
    report = files.read_json(folder / "report.json")
    if record.get("trials"):
        y, x = (objectives + [sweep.SEVERITY])[:2]
        n = len(record["trials"])
        event = st.plotly_chart(scatter(record, report, x, y), on_select="rerun", selection_mode="points", key=f"tune_scatter_{n}")
        picked = [p["customdata"][0] for p in (event.selection.points if event else []) if p.get("customdata")]
        frame = sweep.trials_frame(record)
        st.dataframe(frame.map(rounded), hide_index=True, column_config=metric_help(frame.columns))
        run_id = st.selectbox("Trial", frame["run_id"], index=list(frame["run_id"]).index(picked[0]) if picked else 0)
        trial = next(t for t in record["trials"] if t["run_id"] == run_id)
        c = st.columns(2)
        if c[0].button("Open its errors"):
            st.session_state["selected_run"] = run_id
            st.switch_page("pages/errors.py")
        if c[1].button("Use these settings"):
            adopt(trial["config"])
            st.success("These settings are now the Smoothing and Training pages' defaults: "
                       + ", ".join(f"{k} {rounded(v)}" for k, v in sweep.relevant_settings(trial["config"]).items() if v is not None))
    if report:
        st.subheader("Test-split report")
        st.text(sweep.format_report(report))


def page() -> None:
    st.title("Tune")
    st.caption("Each trial trains on the training split and is scored on the validation split; the report re-trains "
               "the Pareto settings and one-hot over several seeds and scores them on the test split.")
    names = sweep.list_sweeps(runs_dir())
    running = any(sweep.read_record(sweep.sweeps_root(runs_dir()) / n).get("state") in sweep.ACTIVE for n in names)
    st.fragment(sweep_view, run_every=2 if running else None)()  # status first, where it is seen after Launch
    with st.expander("New sweep", expanded=not running):
        asked = space_form()
    glossary_expander()
    if asked is not None:
        base, space, objectives, trials, seeds = asked
        try:
            folder = sweep.request(runs_dir(), base, space, objectives, trials=trials, seeds=seeds, cwd=ROOT)
        except TaxolensError as exc:
            st.error(plain(exc))
        else:
            st.session_state["selected_sweep"] = folder.name
            st.session_state["_tune_started"] = f"Sweep {folder.name} started in the background; other pages stay usable."
            st.rerun()  # the status at the top follows it


page()
