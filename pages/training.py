"""Training page: launch runs in the background, follow them live, cancel them, compare them."""

import hashlib
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from core import settings
from core.data.tables import read_table
from core.display import plain
from core.evaluation.comparison import DifferentItems, compare_runs
from core.runs import store as runs
from core.runs.importer import guess_spec
from core.runs.progress import read_progress
from core.runs.status import request_cancel
from core.runs.tables import compare, representation_label, runs_table, split_comparison
from core.settings import ExperimentConfig
from core.training.experiment import AUDIT_FOLDS, STAGES, TRAIN_EPOCH
from pages.shared import (
    SAMPLE_EPOCHS,
    SAMPLE_PRODUCTS,
    SAMPLE_TAXONOMY,
    default,
    demo_run_offer,
    launch,
    remembered,
    runs_dir,
    setting_widget,
)


def saved_upload(data: bytes, name: str) -> Path:
    """Uploads are written into the run store so the background run process can read them."""
    folder = runs_dir() / "uploads" / hashlib.sha1(data).hexdigest()[:12]  # the user's own file name inside, for messages
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(name).name
    if not path.exists():
        path.write_bytes(data)
    return path


def data_source() -> tuple[str, pd.DataFrame, str | None, str | None]:
    """(path the run will read, a preview frame, taxonomy path or None, taxonomy format or None)."""
    choice = st.radio("Products", ["Sample catalog", "Upload a product table"], horizontal=True)
    if choice == "Sample catalog":
        return str(SAMPLE_PRODUCTS), read_table(SAMPLE_PRODUCTS, nrows=200), str(SAMPLE_TAXONOMY), None
    upload = st.file_uploader("Product table (.csv, .tsv, .parquet, .jsonl)", type=["csv", "tsv", "parquet", "jsonl"])
    if upload is None:
        st.stop()
    path = saved_upload(upload.getvalue(), upload.name)
    taxonomy, fmt = None, None
    src = st.session_state.get("taxonomy_source")
    if src and st.checkbox(f"Check the labels against the taxonomy from the Taxonomy page ({src['name']})", value=True):
        taxonomy, fmt = str(saved_upload(src["bytes"], src["name"])), src["format"]
    elif not src:
        st.caption("The taxonomy will be derived from the label paths (upload one on the Taxonomy page to check them against it).")
    return str(path), read_table(path, nrows=200), taxonomy, fmt


LABEL_HELP = ("A label column holds each product's category: a path such as 'Footwear > Boots > Rain Boots', or a name or id "
              "from the taxonomy. With one column per level, choose them top level first.")


def settings_form(data_path: str, preview: pd.DataFrame, taxonomy: str | None, taxonomy_format: str | None) -> ExperimentConfig | None:
    cols = list(preview.columns)
    guess = guess_spec(cols)
    if guess["true_column"] is None:
        st.info(plain(f"No column of {', '.join(cols)} looks like a category label: choose it below. " + LABEL_HELP))
    with st.form("launch"):
        st.markdown("**Columns**")
        c = st.columns(3)
        label = c[0].multiselect("Label column(s), top level first", cols, default=[guess["true_column"]] if guess["true_column"] else [],
                                 help=LABEL_HELP)
        text = c[1].multiselect("Text column(s)", cols, default=guess["text_columns"][:1])
        id_col = c[2].selectbox("Id column", ["(none)", *cols], index=1 + cols.index(guess["id_column"]) if guess["id_column"] else 0)
        st.markdown("**Label representation** (defaults from the Smoothing page)")
        chosen = {}
        c = st.columns(6)
        for col, name in zip(c, settings.representation_settings(), strict=True):
            chosen[name] = setting_widget(name, col, value=remembered(name, settings.get(name).default))
        c = st.columns(4)
        for col, name in zip(c, ("epochs", "curriculum_epochs", "aux_codes", "seed"), strict=True):
            chosen[name] = setting_widget(name, col, value=SAMPLE_EPOCHS if name == "epochs" else remembered(name, None))
        submitted = st.form_submit_button("Launch training run", type="primary")
        st.markdown("**Or audit every product for label errors** (K models, each scoring the products it never saw)")
        c = st.columns([1, 3])
        folds = c[0].number_input("Folds K", min_value=2, max_value=20, value=settings.DEFAULT_FOLDS, key="audit_folds")
        audit = c[1].form_submit_button("Audit the whole catalog", key="audit_go",
                                        help="A K-fold audit: the likely label errors then cover every product, not only "
                                             "the test split of a training run. Review them on the Errors page.")
    if not submitted and not audit:
        return None
    if not label or not text:
        st.error("Choose at least one label column and one text column.")
        return None
    st.session_state["launch_audit_folds"] = int(folds) if audit else None
    return ExperimentConfig(data=data_path, label_columns=label, text_columns=text, id_column=None if id_col == "(none)" else id_col,
                            taxonomy=taxonomy, taxonomy_format=taxonomy_format, encoder=remembered("encoder_kind", "auto"),
                            template=remembered("template", default("template")), **chosen)


def progress_text(run: runs.Run, done: int, total: int) -> tuple[float, str]:
    """(fraction, words) for a run's bar: epochs when training, else the embedding stage the run process
    last wrote to progress.json (embedding is most of a short run)."""
    step = read_progress(run.path)
    if run.kind == "audit":
        if step is None or step["stage"] != AUDIT_FOLDS:
            what = "starting" if step is None else f"{STAGES.get(step['stage'], step['stage'])} {step['done']:,}/{step['total']:,}"
            return 0.0, f"{run.name}: audit, {what}, then {run.config.get('folds')} folds"
        return (step["done"] / max(step["total"], 1),
                f"{run.name}: audit, {step['done']} of {step['total']} folds done (each trains a model on the other folds)")
    if done:
        return min(done / total, 1.0), f"{run.name}: {run.state}, epoch {done}/{total}"
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
        fraction, text = progress_text(run, done, total)
        c[0].progress(fraction, text=text)
        if c[1].button("Cancel", key=f"cancel-{run.name}"):
            request_cancel(run.path)
            st.toast(f"Cancelling {run.name} after the current step")
        if done:
            curves = hist.melt(id_vars="epoch", value_vars=["train_loss", "val_top1", "val_semsim5"])
            st.plotly_chart(px.line(curves, x="epoch", y="value", color="variable", markers=True, height=260),
                            key=f"live-{run.name}-{done}")
    st.subheader("All runs")
    table = runs_table(store)
    if not table.empty:
        st.dataframe(table, hide_index=True, key="runs_table")


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
    chosen = st.multiselect("Runs", done.run_id.tolist(), default=done.run_id.tolist()[:4])
    if chosen:
        metrics, config = split_comparison(compare([runs_dir() / r for r in chosen]))
        st.dataframe(metrics, key="compare", column_config={r: st.column_config.NumberColumn(format="%.4f") for r in chosen})
        with st.expander("Settings of these runs"):
            st.dataframe(config, key="compare_settings")
        scatter(done[done.run_id.isin(chosen)])
        baseline_comparison(chosen)
        for run_id in chosen[:4]:
            hist = runs.Run(runs_dir() / run_id).history()
            if not hist.empty:
                st.plotly_chart(px.line(hist, x="epoch", y=["val_top1", "val_semsim5"], title=run_id, height=240, markers=True),
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
    with st.expander("New training run", expanded=not runs.RunStore(runs_dir()).runs()):
        data_path, preview, taxonomy, taxonomy_format = data_source()
        config = settings_form(data_path, preview, taxonomy, taxonomy_format)
        if config is not None:
            folds = st.session_state.pop("launch_audit_folds", None)
            run_dir = launch(config, audit_folds=folds)
            st.success(f"Audit {run_dir.name} of every product started ({folds} folds): follow it below, then review its "
                       "likely label errors on the Errors page." if folds else f"Run {run_dir.name} started.")
    active = any(r.state in ("queued", "running") for r in runs.RunStore(runs_dir()).runs())
    st.fragment(live_runs, run_every=2 if active else None)()
    runs_table_and_compare()


page()
