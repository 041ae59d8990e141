"""Training page: launch runs in the background, follow them live, cancel them, compare them."""

import pandas as pd
import plotly.express as px
import streamlit as st

from core import settings
from core.display import plain
from core.evaluation.comparison import DifferentItems, compare_runs
from core.labels.kinds import TARGET_KINDS
from core.labels.kinds import kind as target_kind
from core.runs import store as runs
from core.runs.progress import epoch_curves, read_progress, training_progress
from core.runs.status import request_cancel
from core.runs.tables import (
    changed_settings,
    compare,
    representation_label,
    rounded,
    runs_table,
    same_data_runs,
    split_comparison,
)
from core.settings import ExperimentConfig
from core.training.experiment import AUDIT_FOLDS, STAGES, TRAIN_EPOCH
from pages.shared import (
    APP_ENCODERS,
    SAMPLE_EPOCHS,
    DataSource,
    column_hint,
    column_widgets,
    data_source,
    default,
    demo_run_offer,
    glossary_expander,
    launch,
    metric_help,
    remembered,
    runs_dir,
    setting_widget,
    source_config,
)


def reset_to_defaults() -> None:
    """Forget every remembered or adopted setting (Tune's 'use these settings', the Smoothing page's),
    so the form opens on the declared defaults again."""
    saved = st.session_state.setdefault("_persist", {})
    for name in (*FORM_SETTINGS, "template", "encoder_kind"):
        saved.pop(name, None)
        st.session_state.pop(name, None)


FINETUNE_SETTINGS = ("finetune_encoder", "encoder_lr")
RUN_SETTINGS = ("epochs", "curriculum_epochs", "aux_codes", "members", "seed")
FORM_SETTINGS = (*settings.representation_settings(), *RUN_SETTINGS, *FINETUNE_SETTINGS)


def settings_form(source: DataSource) -> ExperimentConfig | None:
    """Columns and every setting a run of the app varies; the target kind sits outside the form so the
    settings it does not read are greyed out as soon as it changes."""
    column_hint(source)
    c = st.columns([1, 2])
    kind = setting_widget("targets", c[0], value=remembered("targets", default("targets")))
    kept = {n: remembered(n, default(n)) for n in (*FORM_SETTINGS, "template")} | {"targets": kind, "epochs": default("epochs")}
    changed = changed_settings(ExperimentConfig(**kept, encoder=remembered("encoder_kind", "auto")).to_dict())
    c[1].caption("Remembered from Tune or Smoothing and not the default: "
                 + (", ".join(f"{n} {rounded(v)}" for n, v in changed.items()) or "nothing (every setting at its default)"))
    reads = target_kind(kind).reads
    with st.form("launch"):
        st.markdown("**Columns**")
        columns = column_widgets(source)
        st.markdown(f"**Label representation** ({TARGET_KINDS[kind].label}; defaults from the Smoothing page)")
        chosen: dict = {"targets": kind}
        c = st.columns(5)
        for col, name in zip(c, settings.representation_settings()[1:], strict=True):
            chosen[name] = setting_widget(name, col, value=remembered(name, default(name)), disabled=name not in reads)
        c = st.columns(len(RUN_SETTINGS))
        for col, name in zip(c, RUN_SETTINGS, strict=True):
            chosen[name] = setting_widget(name, col, value=SAMPLE_EPOCHS if name == "epochs" else remembered(name, None))
        c = st.columns([1, 2, 1])  # the encoders' labels are long
        chosen["template"] = setting_widget("template", c[0], value=remembered("template", default("template")))
        chosen["encoder"] = setting_widget("encoder", c[1], value=remembered("encoder_kind", "auto"), options=list(APP_ENCODERS))
        for name in FINETUNE_SETTINGS:
            chosen[name] = setting_widget(name, c[2], value=remembered(name, default(name)))
        c[2].caption("Fine-tuning runs the encoder forward and backward on every item each epoch: on a CPU, "
                     "minutes per epoch on a small catalog.")
        submitted = st.form_submit_button("Launch training run", type="primary")
        st.markdown("**Or audit every product for label errors** (K folds, each trained on the other folds and scoring the products it never saw)")
        c = st.columns([1, 3])
        folds = c[0].number_input("Folds K", min_value=2, max_value=20, value=settings.DEFAULT_FOLDS, key="audit_folds")
        audit = c[1].form_submit_button("Audit the whole catalog", key="audit_go",
                                        help="A K-fold audit: the likely label errors then cover every product, not only "
                                             "the test split of a training run. Review them on the Errors page.")
    st.button("Reset to defaults", on_click=reset_to_defaults, help="Forget the settings adopted on Tune or Smoothing")
    if not submitted and not audit:
        return None
    st.session_state["launch_audit_folds"] = int(folds) if audit else None
    return source_config(source, columns, **chosen)


def progress_text(run: runs.Run, hist: pd.DataFrame, total: int) -> tuple[float, str]:
    """(fraction, words) for a run's bar: epochs when training, else the embedding stage the run process
    last wrote to progress.json (embedding is most of a short run)."""
    step = read_progress(run.path)
    if run.kind == "audit":
        if step is None or step["stage"] != AUDIT_FOLDS:
            what = "starting" if step is None else f"{STAGES.get(step['stage'], step['stage'])} {step['done']:,}/{step['total']:,}"
            return 0.0, f"{run.name}: audit, {what}, then {run.config.get('folds')} folds"
        return (step["done"] / max(step["total"], 1),
                f"{run.name}: audit, {step['done']} of {step['total']} folds done (each trains a model on the other folds)")
    if len(hist):
        fraction, words = training_progress(hist, total, int(run.config.get("members", 1)))
        return fraction, f"{run.name}: {run.state}, {words}"
    if step is None or step["stage"] not in STAGES or step["stage"] == TRAIN_EPOCH:
        return 0.0, f"{run.name}: {run.state}, epoch 0/{total}" + (" (starting)" if step is None else "")
    return (step["done"] / max(step["total"], 1),
            f"{run.name}: {STAGES[step['stage']]} {step['done']:,}/{step['total']:,}, then {total} epochs")


def live_runs() -> None:
    """Progress, per-epoch curves and a cancel button per active run, with the runs table: redrawn every
    2 s while a run is active; when one ends the whole page reruns, so Compare lists it at once."""
    store = runs.RunStore(runs_dir())
    active = [r for r in store.runs() if r.state in ("queued", "running") and not r.problems()]
    names = {r.name for r in active}
    if st.session_state.get("_active_runs", set()) - names:  # a run finished since the last refresh
        st.session_state["_active_runs"] = names
        st.rerun(scope="app")
    st.session_state["_active_runs"] = names
    st.subheader("In progress")
    if not active:
        st.caption("No run in progress.")
    for run in active:
        hist = run.history()
        done = len(hist)
        total = int(run.config.get("epochs", 1))
        c = st.columns([4, 1])
        fraction, text = progress_text(run, hist, total)
        c[0].progress(fraction, text=text)
        if c[1].button("Cancel", key=f"cancel-{run.name}"):
            request_cancel(run.path)
            st.toast(f"Cancelling {run.name} after the current step")
        if done:
            curves = epoch_curves(hist, ["train_loss", "val_top1", "val_semsim5"])
            st.plotly_chart(px.line(curves, x="epoch", y="value", color="variable", markers=True, height=260,
                                    line_dash="member" if curves.member.nunique() > 1 else None),
                            key=f"live-{run.name}-{done}")
    st.subheader("All runs")
    table = runs_table(store)
    if not table.empty:
        st.dataframe(table, hide_index=True, key="runs_table", column_config=metric_help(table.columns))


def runs_table_and_compare() -> None:
    table = runs_table(runs.RunStore(runs_dir()))
    if table.empty:
        demo_run_offer("demo-training")
        return
    for row in table[table.status.isin(["failed", "interrupted", "damaged"])].itertuples():
        st.error(plain(f"{row.run_id} {row.status}: {row.error}"))
    done = table[table.status == "done"]
    if done.empty:
        return
    st.subheader("Compare runs")
    data_of = dict(zip(done.run_id, done.data, strict=True))
    chosen = st.multiselect("Runs", done.run_id.tolist(), default=same_data_runs(runs.RunStore(runs_dir())),
                            format_func=lambda r: f"{r} ({data_of[r]})", key="compare_runs",
                            help="Opens on the newest runs of the newest run's data: runs of other data cannot be compared item by item")
    if chosen:
        metrics, config = split_comparison(compare([runs_dir() / r for r in chosen]))
        st.dataframe(metrics, key="compare", column_config={"_index": st.column_config.Column(width="medium")}
                     | {r: st.column_config.NumberColumn(format="%.4f") for r in chosen})
        glossary_expander()
        with st.expander("Settings of these runs"):
            st.dataframe(config, key="compare_settings")
        scatter(done[done.run_id.isin(chosen)])
        baseline_comparison(chosen)
        for run_id in chosen[:4]:
            hist = runs.Run(runs_dir() / run_id).history()
            if not hist.empty:
                curves = epoch_curves(hist, ["val_top1", "val_semsim5"])
                st.plotly_chart(px.line(curves, x="epoch", y="value", color="variable", title=run_id, height=240, markers=True,
                                        line_dash="member" if curves.member.nunique() > 1 else None),
                                key=f"hist-{run_id}")


def scatter(sub: pd.DataFrame) -> None:
    """Accuracy against severity, one colour per label representation with its settings (two semantic
    runs at different T differ), axes padded around the points rather than a fixed 0 to 1.5."""
    sub = sub.assign(representation=[representation_label(r) for r in sub.to_dict("records")])
    fig = px.scatter(sub, x="mistake_severity", y="top1", color="representation", hover_name="run_id",
                     title="Accuracy against mistake severity (up and to the left is better)")
    fig.update_traces(marker=dict(size=14))
    for axis, col in (("xaxis", "mistake_severity"), ("yaxis", "top1")):
        lo, hi = float(sub[col].min()), float(sub[col].max())
        pad = max((hi - lo) * 0.15, 0.02)
        fig.update_layout({axis: {"range": [lo - pad, hi + pad]}})
    st.plotly_chart(fig, key="acc_vs_sev")


@st.cache_data(show_spinner=False, max_entries=8)
def paired_comparison(baseline: str, candidate: str, mtimes: tuple[float, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return compare_runs(runs.Run(baseline).predictions(), runs.Run(candidate).predictions())


def baseline_comparison(chosen: list[str]) -> None:
    """Each chosen run against a baseline on the same items: differences with 95% paired-bootstrap
    intervals (METHOD.md, 'Comparing two runs') and the branches that got better or worse."""
    if len(chosen) < 2:
        return
    st.subheader("Against a baseline")
    c = st.columns(2)
    base = c[0].selectbox("Baseline", chosen, key="compare_baseline")
    other = c[1].selectbox("Run", [r for r in chosen if r != base], key="compare_candidate")
    a, b = runs.Run(runs_dir() / base), runs.Run(runs_dir() / other)
    try:
        metrics, subtrees = paired_comparison(str(a.path), str(b.path), (a.predictions_mtime(), b.predictions_mtime()))
    except DifferentItems as exc:
        st.warning(plain(f"Not compared: {exc}"))
        return
    st.dataframe(metrics.rename(columns={"diff": "difference", "lo": "95% low", "hi": "95% high"}), key="compare_paired")
    st.caption("Difference = run - baseline; an interval that excludes 0 is a real change on these items.")
    counts = subtrees["verdict"].value_counts()
    st.markdown(f"Branches: **{counts.get('better', 0)} better**, **{counts.get('worse', 0)} worse**, "
                f"{counts.get('same', 0)} unchanged (error rate, then mistake severity).")
    st.dataframe(subtrees, hide_index=True, key="compare_subtrees")


def page() -> None:
    st.title("Training")
    st.caption(f"Runs are stored in `{runs_dir()}` and run in the background: leave this page and come back any time.")
    started = st.session_state.pop("_run_started", None)
    if started:
        st.success(started)
    active = any(r.state in ("queued", "running") for r in runs.RunStore(runs_dir()).runs())
    if active:  # progress first, where it is seen after Launch
        st.fragment(live_runs, run_every=2)()
    with st.expander("New training run", expanded=not runs.RunStore(runs_dir()).runs()):
        config = settings_form(data_source())
        if config is not None:
            folds = st.session_state.pop("launch_audit_folds", None)
            run_dir = launch(config, audit_folds=folds)
            st.session_state["_run_started"] = (
                f"Audit {run_dir.name} of every product started ({folds} folds): follow it below, then review its "
                "likely label errors on the Errors page." if folds else f"Run {run_dir.name} started; its progress is below.")
            st.rerun()
    if not active:
        st.fragment(live_runs)()
    runs_table_and_compare()


page()
