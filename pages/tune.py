"""Tune page: search label representations on the sample catalog in the background, watch the trials
land on an accuracy-versus-severity scatter with the Pareto front, and adopt the settings you like."""

import time

import plotly.graph_objects as go
import streamlit as st

from core import files, settings
from core.display import plain
from core.errors import TaxolensError
from core.scale import sweep
from core.settings import TARGET_KINDS, TEMPLATES
from pages.shared import ROOT, runs_dir, sample_config

ADOPTED = ("targets", "alpha", "temperature", "k", "beta", "mix", "template", "curriculum_epochs", "aux_codes")


def range_slider(name: str, where, lo: float, hi: float, default: tuple, log: bool = False) -> dict:
    s = settings.get(name)
    step = 1 if s.type is int else 0.01
    low, high = where.slider(s.label, lo, hi, default, step=step, help=s.help, key=f"tune_{name}")
    return {"low": low, "high": high, "log": log and low > 0}


def space_form() -> tuple[dict, str, int, int] | None:
    with st.form("tune_space"):
        st.markdown("**Space** (on the sample catalog; validation-split scores)")
        c = st.columns(3)
        kinds = c[0].multiselect("Target kinds", list(TARGET_KINDS), default=["onehot", "semantic", "tree", "hybrid"],
                                 format_func=TARGET_KINDS.get)
        templates = c[1].multiselect("Prompt templates", list(TEMPLATES), default=["name", "path"])
        aux = c[2].multiselect("Auxiliary codes", list(settings.AUX_CODES), default=["none", "taxonomy"])
        c = st.columns(6)
        space = {"targets": kinds, "template": templates, "aux_codes": aux,
                 "alpha": range_slider("alpha", c[0], 0.0, 1.0, (0.02, 0.4), log=True),
                 "temperature": range_slider("temperature", c[1], 0.01, 2.0, (0.02, 1.0), log=True),
                 "k": range_slider("k", c[2], 1, 100, (3, 40), log=True),
                 "beta": range_slider("beta", c[3], 0.0, 50.0, (1.0, 30.0), log=True),
                 "mix": range_slider("mix", c[4], 0.0, 1.0, (0.0, 1.0)),
                 "curriculum_epochs": c[5].multiselect("Curriculum epochs", [0, 2, 3, 5], default=[0, 3])}
        st.markdown("**Objectives and budget**")
        c = st.columns(5)
        keys = list(sweep.metric_keys())
        m1 = c[0].selectbox("Objective 1", keys, index=keys.index("top1"))
        d1 = c[1].selectbox("Direction 1", ["max", "min"], index=0)
        m2 = c[2].selectbox("Objective 2", keys, index=keys.index("hdist@5"))
        d2 = c[3].selectbox("Direction 2", ["max", "min"], index=1)
        trials = c[4].number_input("Trials", 1, 200, 6)
        seeds = st.number_input("Seeds for the test report (0 = none)", 0, 10, 2)
        submitted = st.form_submit_button("Launch sweep", type="primary")
    if not submitted:
        return None
    # a setting no chosen kind reads would make the space contradictory: leave it out
    space = {k: v for k, v in space.items() if k not in sweep.USED_BY or sweep.USED_BY[k] & set(kinds)}
    return space, f"{m1}:{d1},{m2}:{d2}", int(trials), int(seeds)


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
    """Make a trial's settings the Smoothing and Training pages' defaults (their remembered values)."""
    saved = st.session_state.setdefault("_persist", {})
    for name in ADOPTED:
        if config.get(name) is not None:
            saved[name] = config[name]
            st.session_state.pop(name, None)


def page() -> None:
    st.title("Tune")
    st.caption("Each trial trains on the training split and is scored on the validation split; the report re-trains "
               "the Pareto settings and one-hot over several seeds and scores them on the test split.")
    asked = space_form()
    if asked is not None:
        space, objectives, trials, seeds = asked
        try:
            folder = sweep.request(runs_dir(), sample_config(epochs=4), space, objectives, trials=trials, seeds=seeds, cwd=ROOT)
        except TaxolensError as exc:
            st.error(plain(exc))
        else:
            st.session_state["selected_sweep"] = folder.name
            st.success(f"Sweep {folder.name} started in the background; other pages stay usable.")
    names = sweep.list_sweeps(runs_dir())
    if not names:
        st.info("No sweeps yet: choose a space above and launch one.")
        return
    chosen = st.session_state.get("selected_sweep")
    sweep_id = st.selectbox("Sweep", names, index=names.index(chosen) if chosen in names else 0)
    folder = sweep.sweeps_root(runs_dir()) / sweep_id
    record = sweep.read_record(folder)
    running = record.get("state") in ("starting", "running", "reporting")
    c = st.columns([3, 1])
    c[0].markdown(f"**{sweep_id}**: {record.get('state')}, {len(record.get('trials', []))} trials, engine "
                  f"{record.get('engine', '…')}")
    if running and c[1].button("Cancel sweep"):
        (folder / "cancel.request").touch()
        st.warning("Cancel requested; running trials stop shortly.")
    if record.get("error"):
        st.error(plain(record["error"]))
    objectives = [o.split(":")[0] for o in record.get("objectives", [])] or ["top1", "hdist@5"]
    report = files.read_json(folder / "report.json")
    if record.get("trials"):
        y, x = (objectives + ["hdist@5"])[:2]
        event = st.plotly_chart(scatter(record, report, x, y), on_select="rerun", selection_mode="points", key="tune_scatter")
        picked = [p["customdata"][0] for p in (event.selection.points if event else []) if p.get("customdata")]
        frame = sweep.trials_frame(record)
        st.dataframe(frame, hide_index=True)
        run_id = st.selectbox("Trial", frame["run_id"], index=list(frame["run_id"]).index(picked[0]) if picked else 0)
        trial = next(t for t in record["trials"] if t["run_id"] == run_id)
        c = st.columns(2)
        if c[0].button("Open its errors"):
            st.session_state["selected_run"] = run_id
            st.switch_page("pages/errors.py")
        if c[1].button("Use these settings"):
            adopt(trial["config"])
            st.success("These settings are now the Smoothing and Training pages' defaults.")
    if report:
        st.subheader("Test-split report")
        st.text(sweep.format_report(report))
    if running:
        time.sleep(2)
        st.rerun()


page()
