"""Training page: launch runs in the background, follow them live, cancel them, compare them."""

import hashlib
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from core import runs, settings
from core.columns import LABEL_HELP, guess_columns
from core.comparison import DifferentItems, compare_runs
from core.data import read_table
from core.settings import ExperimentConfig
from pages.shared import (
    SAMPLE_PRODUCTS,
    SAMPLE_TAXONOMY,
    current_taxonomy,
    demo_run_offer,
    guard,
    launch,
    plain,
    remembered,
    runs_dir,
    setting_widget,
)


def saved_upload(data: bytes, name: str) -> Path:
    """Uploads are written into the run store so the background run process can read them; a folder
    per content keeps the user's own file name, which every message about the file then shows."""
    folder = runs_dir() / "uploads" / hashlib.sha1(data).hexdigest()[:12]
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
    if src and st.checkbox(f"Check the labels against the taxonomy from the Taxonomy page ({plain(src['name'])})", value=True):
        taxonomy, fmt = str(saved_upload(src["bytes"], src["name"])), src["format"]
    elif not src:
        st.caption("The taxonomy will be derived from the label paths (upload one on the Taxonomy page to check them against it).")
    return str(path), read_table(path, nrows=200), taxonomy, fmt


def settings_form(data_path: str, preview: pd.DataFrame, taxonomy: str | None, taxonomy_format: str | None) -> ExperimentConfig | None:
    cols = list(preview.columns)
    known = None
    if taxonomy is not None and taxonomy != str(SAMPLE_TAXONOMY):
        tax, _ = current_taxonomy()
        known = lambda v: tax.resolve(v) is not None  # noqa: E731
    guess = guess_columns(preview, known)
    if not guess["label"]:
        st.info("No column looks like a category label, so none is chosen. " + LABEL_HELP)
    with st.form("launch"):
        st.markdown("**Columns**")
        c = st.columns(3)
        label = c[0].multiselect("Label column(s), top level first", cols, default=guess["label"], help=LABEL_HELP)
        text = c[1].multiselect("Text column(s)", cols, default=guess["text"])
        id_col = c[2].selectbox("Id column", ["(none)", *cols], index=1 + cols.index(guess["id"]) if guess["id"] else 0)
        st.markdown("**Label representation** (defaults from the Smoothing page)")
        chosen = {}
        c = st.columns(6)
        for col, name in zip(c, ("targets", "alpha", "temperature", "k", "beta", "mix"), strict=True):
            chosen[name] = setting_widget(name, col, value=remembered(name, settings.get(name).default))
        c = st.columns(4)
        for col, name in zip(c, ("epochs", "curriculum_epochs", "aux_codes", "seed"), strict=True):
            chosen[name] = setting_widget(name, col, value=8 if name == "epochs" else remembered(name, None))
        submitted = st.form_submit_button("Launch training run", type="primary")
    if not submitted:
        return None
    if not label or not text:
        st.error("Choose at least one label column and one text column. " + LABEL_HELP)
        return None
    return ExperimentConfig(data=data_path, label_columns=label, text_columns=text, id_column=None if id_col == "(none)" else id_col,
                            taxonomy=taxonomy, taxonomy_format=taxonomy_format, encoder=remembered("encoder_kind", "auto"),
                            template=remembered("template", "name"), **chosen)


STAGES = {"embed products": "embedding products", "embed categories": "embedding category names", "train epoch": "training"}


def progress_line(run: runs.Run) -> tuple[float, str]:
    """(fraction, text) for a live run: the embedding step before the first epoch (from progress.json,
    written by the run process), then epochs."""
    epochs = len(run.history())
    total = int(run.config.get("epochs", 1))
    step = runs.read_progress(run.path)
    head = f"{run.name}: {run.state}, epoch {epochs}/{total}"
    if epochs == 0 and step is None:
        return 0.0, f"{head} (loading the encoder)"
    if epochs == 0 and step["stage"] != "train epoch":
        done, of = step["done"], max(step["total"], 1)
        return done / of, f"{head}: {STAGES.get(step['stage'], step['stage'])} {done:,}/{of:,}"
    return min(epochs / total, 1.0), head


@st.fragment(run_every=2)
def live_runs() -> None:
    """Refreshes itself every 2 s: progress, per-epoch curves and a cancel button per active run.
    When a run changes state (queued, running, done...) the whole page reruns, so the runs table and
    Compare below show it without a reload."""
    store = runs.RunStore(runs_dir())
    everything = store.runs()
    states = {r.name: r.state for r in everything}
    seen = st.session_state.get("_run_states")
    st.session_state["_run_states"] = states
    if seen is not None and seen != states:
        st.rerun()
    active = [r for r in everything if states[r.name] in ("queued", "running") and not r.problems()]
    if not active:
        st.caption("No run in progress.")
    for run in active:
        c = st.columns([4, 1])
        fraction, text = progress_line(run)
        c[0].progress(fraction, text=text)
        if c[1].button("Cancel", key=f"cancel-{run.name}"):
            runs.request_cancel(run.path)
            st.toast(f"Cancelling {run.name} after the current step")
        hist = run.history()
        if len(hist):
            curves = hist.melt(id_vars="epoch", value_vars=["train_loss", "val_top1", "val_semsim5"])
            st.plotly_chart(px.line(curves, x="epoch", y="value", color="variable", markers=True, height=260),
                            key=f"live-{run.name}-{len(hist)}")


def padded(values: pd.Series) -> list[float]:
    """An axis range around the data (a single run sits in the middle, not on a 0 to 1.5 axis)."""
    lo, hi = float(values.min()), float(values.max())
    pad = max((hi - lo) * 0.15, abs(hi) * 0.02, 0.01)
    return [lo - pad, hi + pad]


def comparison_table(chosen: list[str]) -> pd.DataFrame:
    """The chosen runs, one per row: the test metrics first (numbers), then the settings."""
    table = runs.compare([runs_dir() / r for r in chosen]).T.drop(columns=["error"])
    numeric = [c for c in table if c in runs.METRIC_COLUMNS or c in ("alpha", "temperature", "k", "beta", "mix",
                                                                      "curriculum_epochs", "epochs_run")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table.infer_objects()


def runs_table_and_compare() -> None:
    table = runs.RunStore(runs_dir()).table()
    if table.empty:
        demo_run_offer("demo-training")
        return
    st.dataframe(table, hide_index=True)
    for row in table[table.status.isin(["failed", "interrupted", "damaged"])].itertuples():
        st.error(plain(f"{row.run_id} {row.status}: {row.error}"))
    done = table[table.status == "done"]
    if done.empty:
        return
    st.subheader("Compare runs")
    chosen = st.multiselect("Runs", done.run_id.tolist(), default=done.run_id.tolist()[:4])
    if chosen:
        compared = comparison_table(chosen)
        st.dataframe(compared, key="compare")
        sub = compared.reset_index(names="run_id").assign(settings=lambda f: [runs.arm_label(r) for r in f.to_dict("records")])
        sub["targets"] = sub["targets"].fillna("imported")
        fig = px.scatter(sub, x="mistake_severity", y="top1", color="settings", symbol="targets", hover_name="run_id",
                         title="Accuracy against mistake severity (up and to the left is better)")
        fig.update_traces(marker=dict(size=14))
        fig.update_xaxes(range=padded(sub.mistake_severity), title="mistake severity (mean tree distance of the mistakes)")
        fig.update_yaxes(range=padded(sub.top1), title="top-1 accuracy")
        fig.update_layout(legend={"title": "label representation"})
        st.plotly_chart(fig, key="acc_vs_sev")
        baseline_comparison(chosen)
        for run_id in chosen[:4]:
            hist = runs.Run(runs_dir() / run_id).history()
            if not hist.empty:
                st.plotly_chart(px.line(hist, x="epoch", y=["val_top1", "val_semsim5"], title=run_id, height=240, markers=True),
                                key=f"hist-{run_id}")


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
            run_dir = launch(config)
            st.success(f"Run {run_dir.name} started.")
    st.subheader("In progress")
    live_runs()
    st.subheader("All runs")
    runs_table_and_compare()


guard(page)
