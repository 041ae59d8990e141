"""Errors page: a run's mistakes, worst first, and where in the taxonomy they concentrate."""

import base64
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from core import runs, triage
from core.audit import corrections
from core.data import csv_safe
from core.metrics import metrics_from_predictions, rollup_from_predictions
from pages.shared import (
    damaged_runs_notice,
    demo_run_offer,
    finished_runs,
    guard,
    persistent,
    remember,
    runs_dir,
)

ROWS_SHOWN = 100
CARDS = [("top1", "Top-1 accuracy", False), ("mistake_severity", "Mistake severity (tree distance)", True),
         ("hdist@5", "hdist@5", True), ("semsim@5", "semsim@5", False)]


@st.cache_data(show_spinner=False, max_entries=8)
def predictions(path: str, mtime: float) -> pd.DataFrame:
    return runs.Run(path).predictions()


@st.cache_data(show_spinner=False, max_entries=8)
def rollup(path: str, mtime: float, crm: bool) -> pd.DataFrame:
    frame = predictions(path, mtime)
    return rollup_from_predictions(frame, "crm_pred_1" if crm else "pred_1", "crm_tree_distance" if crm else "tree_distance")


def thumbnail(path: object) -> str | None:
    """A small image as a data URI (the browser cannot read the server's files)."""
    try:
        data = Path(str(path)).read_bytes()
    except (OSError, TypeError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def branch(path: str) -> str:
    return str(path).split(" > ")[0]


def leaf(path: str) -> str:
    return str(path).split(" > ")[-1]


def filters(frame: pd.DataFrame, pred_col: str) -> tuple[pd.DataFrame, bool]:
    """The items the merchandiser asked about (true branch, predicted branch, confidence band): the
    cards, the mistakes table and the sunburst all describe this subset."""
    c = st.columns([1, 1, 1])
    true_b = c[0].multiselect("True branch", sorted(frame.true_label.map(branch).unique()), key="errors_true_branch")
    pred_b = c[1].multiselect("Predicted branch", sorted(frame[pred_col].map(branch).unique()), key="errors_pred_branch")
    lo, hi = c[2].slider("Confidence of the top answer", 0.0, 1.0, (0.0, 1.0), 0.05, disabled="prob_1" not in frame,
                         key="errors_confidence")
    keep = pd.Series(True, index=frame.index)
    if true_b:
        keep &= frame.true_label.map(branch).isin(true_b)
    if pred_b:
        keep &= frame[pred_col].map(branch).isin(pred_b)
    if "prob_1" in frame and (lo, hi) != (0.0, 1.0):
        keep &= frame.prob_1.between(lo, hi)
    return frame[keep], bool(true_b or pred_b or (lo, hi) != (0.0, 1.0))


@st.cache_data(show_spinner=False, max_entries=8)
def run_taxonomy(path: str, mtime: float):
    try:
        return runs.Run(path).taxonomy()
    except runs.RunError:
        return None  # an older run without taxonomy.json: hdist@5 of a subset is then n/a


def metric_cards(run: runs.Run, metrics: dict, scope: pd.DataFrame | None, crm: bool) -> None:
    """The four headline figures: the run's test metrics, or those of the filtered items. With CRM on,
    the deltas say what re-ranking changed."""
    if scope is None:
        plain, rer = metrics.get("plain", {}), metrics.get("crm", {})
    else:
        tax = run_taxonomy(str(run.path), run.predictions_mtime())
        plain = metrics_from_predictions(scope, tax)
        rer = metrics_from_predictions(scope, tax, "crm_pred_1", "crm_tree_distance") if "crm_pred_1" in scope else {}
    compared = bool(crm and rer)
    shown = rer if compared else plain
    for col, (key, label, lower_is_better) in zip(st.columns(len(CARDS)), CARDS, strict=True):
        value, base = shown.get(key), plain.get(key)
        delta = f"{value - base:+.3f}" if compared and value is not None and base is not None else None
        col.metric(label, "n/a" if value is None else f"{value:.3f}", delta=delta,
                   delta_color="inverse" if lower_is_better else "normal")


def product_detail(item: pd.Series, pred_col: str) -> None:
    """One mistake in full: text, image, the true path against the answer, the top-5 with probabilities."""
    with st.container(border=True):
        cols = st.columns([1, 3]) if isinstance(item.get("image_path"), str) else [None, st.container()]
        if cols[0] is not None:
            try:
                cols[0].image(Path(item["image_path"]).read_bytes(), width=160)
            except OSError:
                cols[0].caption("image not readable")
        body = cols[1]
        body.markdown("**Product**")
        body.text(str(item.get("text", item["id"])))
        body.markdown("**True path**")
        body.text(item.true_label)
        body.markdown("**Answer**" + (" (CRM re-ranked)" if pred_col != "pred_1" else ""))
        body.text(item[pred_col])
        ranks = [r for r in range(1, 6) if f"pred_{r}" in item]
        body.dataframe(pd.DataFrame({
            "rank": ranks,
            "category": [item[f"pred_{r}"] for r in ranks],
            "probability": [round(float(item[f"prob_{r}"]), 3) if f"prob_{r}" in item else None for r in ranks],
            "similarity to the truth": [round(float(item[f"sim_{r}"]), 3) if f"sim_{r}" in item else None for r in ranks],
        }), hide_index=True, key="errors_detail_top5")


def triage_cards_and_filter(frame: pd.DataFrame, wrong: pd.DataFrame) -> pd.DataFrame:
    """Mistakes per triage class (METHOD.md, 'Triage') as cards, and a filter by class."""
    if "triage" not in frame:
        return wrong
    counts = triage.counts(frame)
    for col, (name, n) in zip(st.columns(len(counts)), counts.items(), strict=True):
        col.metric(name.capitalize(), f"{n:,}")
    chosen = st.multiselect("Kind of mistake", list(triage.CLASSES), key=persistent("errors_triage", []))
    remember("errors_triage")
    return wrong[wrong["triage"].isin(chosen)] if chosen else wrong


def split_label_issues(wrong: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(model mistakes, likely label errors): flagged rows are listed apart, not blamed on the model."""
    if "label_issue" not in wrong:
        return wrong, wrong.iloc[:0]
    flagged = wrong["label_issue"].astype(bool)
    return wrong[~flagged], wrong[flagged].sort_values("label_quality")


def label_issue_table(suspects: pd.DataFrame, pred_col: str) -> None:
    st.subheader(f"{len(suspects):,} likely label errors")
    st.warning("For these products **the label may be wrong; the model may be right**: the model confidently disagrees "
               "with the given category (confident learning, cleanlab). Check the catalog before blaming the model.")
    if suspects.empty:
        return
    st.dataframe(pd.DataFrame({
        "product": suspects.get("text", suspects["id"]).to_numpy(),
        "given label": suspects.true_label.to_numpy(),
        "model's answer": suspects[pred_col].to_numpy(),
        "label quality": suspects.label_quality.round(4).to_numpy(),
        "kind": suspects.triage.to_numpy() if "triage" in suspects else "",
    }), hide_index=True)


def audit_review(frame: pd.DataFrame, run_id: str) -> None:
    """An audit run: its label issues, most urgent first, to keep or relabel; corrections as CSV."""
    issues = frame[frame["label_issue"]].sort_values("audit_priority", ascending=False)
    st.subheader(f"Audit: {len(issues):,} likely label errors among {len(frame):,} products")
    st.caption("Ranked so that a confident disagreement across departments comes before a sibling one. Keep the label, "
               "or relabel the product to the model's answer; export the corrections to apply them to your catalog.")
    table = pd.DataFrame({"id": issues["id"].to_numpy(), "product": issues.get("text", issues["id"]).to_numpy(),
                          "given label": issues.true_label.to_numpy(), "suggested": issues.pred_1.to_numpy(),
                          "kind": issues.triage.to_numpy(), "label quality": issues.label_quality.round(4).to_numpy(),
                          "decision": "keep"})
    edited = st.data_editor(table, hide_index=True, key=f"audit_{run_id}", disabled=[c for c in table if c != "decision"],
                            column_config={"decision": st.column_config.SelectboxColumn("decision", options=["keep", "relabel"])})
    fixes = corrections(issues, edited.set_index("id")["decision"])
    st.download_button(f"Export {len(fixes):,} corrections (CSV)", csv_safe(fixes).to_csv(index=False).encode(),
                       file_name=f"corrections-{run_id}.csv", mime="text/csv", key="audit_export")


def page() -> None:
    st.title("Errors")
    done = finished_runs()
    damaged_runs_notice()
    if not done:
        demo_run_offer("demo-errors")
        return
    names = [p.name for p in done]
    default = names.index(st.session_state["selected_run"]) if st.session_state.get("selected_run") in names else 0
    run_id = st.selectbox("Run", names, index=default)
    run = runs.Run(runs_dir() / run_id)
    metrics = run.metrics()
    frame = predictions(str(run.path), run.predictions_mtime())

    crm = st.toggle("Re-rank answers by conditional risk (CRM)", help="Without retraining, answer the class with the lowest "
                    "expected tree distance under the model's probabilities.", disabled="crm_pred_1" not in frame)
    pred_col, dist_col = ("crm_pred_1", "crm_tree_distance") if crm else ("pred_1", "tree_distance")
    scope, filtered = filters(frame, pred_col)
    metric_cards(run, metrics, scope if filtered else None, crm)
    if filtered:
        st.caption(f"Cards, table and chart below: the {len(scope):,} of {len(frame):,} test items that match the filters.")
    st.caption(metrics.get("encoder", ""))

    wrong = scope[scope[pred_col] != scope.true_label].copy()
    order = st.radio("Rank by", ["semantic distance", "tree distance"], horizontal=True)
    wrong = triage_cards_and_filter(scope, wrong)
    wrong, suspects = split_label_issues(wrong)
    key = "semantic_distance" if order == "semantic distance" and "semantic_distance" in wrong else dist_col
    wrong = wrong.sort_values([key, "prob_1"] if "prob_1" in wrong else [key], ascending=False)
    st.subheader(f"{len(wrong):,} mistakes of {len(scope):,} test items")
    top = wrong.head(ROWS_SHOWN)
    view = pd.DataFrame({
        "product": top.text.to_numpy() if "text" in top else top["id"].to_numpy(),
        "true category": top.true_label.map(leaf).to_numpy(),
        "predicted": top[pred_col].map(leaf).to_numpy(),
        "confidence": top.prob_1.round(3).to_numpy() if "prob_1" in top else None,
        "tree distance": top[dist_col].to_numpy(),
        "semantic distance": top.semantic_distance.round(3).to_numpy() if "semantic_distance" in top else None,
    })
    config = {"product": st.column_config.TextColumn("product", width="large"),
              "confidence": st.column_config.NumberColumn("confidence", width="small", format="%.3f"),
              "tree distance": st.column_config.NumberColumn("tree dist.", width="small"),
              "semantic distance": st.column_config.NumberColumn("semantic dist.", width="small", format="%.3f")}
    if "image_path" in top:
        view.insert(0, "image", [thumbnail(p) for p in top.image_path])
        config["image"] = st.column_config.ImageColumn("image", width="small")
    st.caption("Click a row to see the product in full: its text, image, true path and the top-5 answers.")
    event = st.dataframe(view, hide_index=True, column_config=config, on_select="rerun", selection_mode="single-row",
                         key="errors_table")
    if len(wrong) > ROWS_SHOWN:
        st.caption(f"Showing the {ROWS_SHOWN} worst; the export holds all {len(wrong):,} and the likely label errors.")
    if not top.empty:
        rows = event.selection.rows if event is not None else []
        product_detail(top.iloc[rows[0] if rows else 0], pred_col)
    shown = pd.concat([wrong, suspects])  # the export keeps the likely label errors, marked by label_issue
    export = csv_safe(shown.drop(columns=[c for c in ("image_path",) if c in shown]))
    st.download_button("Export these mistakes (CSV)", export.to_csv(index=False).encode(), file_name=f"mistakes-{run_id}.csv",
                       mime="text/csv")

    if "label_issue" in frame:
        label_issue_table(suspects, pred_col)
    if run.kind == "audit":
        audit_review(frame, run_id)

    st.subheader("Where the errors are")
    roll = rollup_from_predictions(scope, pred_col, dist_col) if filtered else rollup(str(run.path), run.predictions_mtime(), crm)
    measure = st.segmented_control("Size by", ["errors", "support"], default="errors") or "errors"
    fig = px.sunburst(roll, ids="id", parents="parent", names="name", values=measure, color="mean_severity",
                      color_continuous_scale="OrRd", hover_data={"error_rate": ":.2f", "mean_severity": ":.2f"},
                      branchvalues="total")
    fig.update_layout(height=600, margin=dict(t=10, l=10, r=10, b=10))
    st.plotly_chart(fig, key="error_sunburst")
    st.caption("Segment size: number of errors (or items) under a category; colour: mean tree distance of its mistakes.")


guard(page)
