"""Errors page: a run's mistakes, worst first, and where in the taxonomy they concentrate."""

import base64
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from core.data.export import write_csv
from core.data.images import read_thumbnail
from core.display import plain
from core.evaluation import selective, triage
from core.evaluation.metrics import headline_from_predictions, rollup_from_predictions
from core.evaluation.registry import HEADLINE, METRICS
from core.runs import store as runs
from core.taxonomy.tree import leaf_name, top_level
from core.training.audit import DECISIONS, corrections, load_decisions, save_decisions
from pages.shared import (
    damaged_runs_notice,
    default,
    demo_run_offer,
    finished_runs,
    persistent,
    remember,
    runs_dir,
    target_slider,
)

ROWS_SHOWN = 100
CARDS = [METRICS[key] for key in HEADLINE]


@st.cache_data(show_spinner=False, max_entries=8)
def predictions(path: str, mtime: float) -> pd.DataFrame:
    return runs.Run(path).predictions()


@st.cache_data(show_spinner=False, max_entries=8)
def rollup(path: str, mtime: float, crm: bool) -> pd.DataFrame:
    frame = predictions(path, mtime)
    return rollup_from_predictions(frame, "crm_pred_1" if crm else "pred_1", "crm_tree_distance" if crm else "tree_distance")


def thumbnail(path: object, image_root: str | None) -> str | None:
    """A small image as a data URI (the browser cannot read the server's files); only real images
    inside the run's image folder are shown."""
    data = read_thumbnail(path, image_root)
    return None if data is None else "data:image/jpeg;base64," + base64.b64encode(data).decode()


@st.cache_data(show_spinner=False, max_entries=8)
def stored_climbs(path: str, mtime: float, split: str) -> selective.Climbs:
    return selective.stored_climbs(runs.Run(path), split)


def guaranteed_accuracy(run: runs.Run, frame: pd.DataFrame, others: list[runs.Run]) -> None:
    """The hierarchical risk-coverage curve of the run (and a baseline's), and at the chosen target how
    many test products land at each level and how many are left for a person, each group browsable."""
    st.subheader("Categorizing at a guaranteed accuracy")
    try:
        test = stored_climbs(str(run.path), run.predictions_mtime(), "test")
    except selective.SelectiveError as exc:
        st.info(plain(exc))
        return
    c = st.columns(2)
    target = target_slider(c[0])
    baseline = c[1].selectbox("Baseline run beside it", [None, *others], format_func=lambda r: "(none)" if r is None else r.name)
    curves = [selective.risk_coverage(test).assign(run=run.name)]
    if baseline is not None:
        try:
            curves.append(selective.risk_coverage(stored_climbs(str(baseline.path), baseline.predictions_mtime(), "test"))
                          .assign(run=baseline.name))
        except selective.SelectiveError as exc:
            st.caption(plain(exc))
    fig = px.line(pd.concat(curves), x="coverage", y="risk", color="run", line_shape="hv", hover_data=["theta", "leaf_rate"],
                  labels={"risk": "hierarchical error (1 - accuracy)", "coverage": "coverage (mean specificity)"})
    fig.update_layout(height=380, margin=dict(t=10, l=10, r=10, b=10))
    st.plotly_chart(fig, key="risk_coverage")
    st.caption(" · ".join(f"hAURC {cv.run.iloc[0]}: {selective.haurc(cv):.4f}" for cv in curves) + " (lower is better)")
    try:
        threshold = selective.fit_threshold(stored_climbs(str(run.path), run.predictions_mtime(), "val"), target,
                                            default("confidence"))
    except selective.SelectiveError as exc:
        st.warning(plain(exc))
        return
    answered = selective.answered_items(frame, test, threshold.theta, run.taxonomy())
    st.markdown(f"At target **{target:.0%}** (confidence {threshold.confidence:.0%}, threshold {threshold.theta:.3f}): "
                f"the test products are hierarchically right for **{answered.answer_correct.mean():.1%}**, "
                f"{(answered.group == selective.GROUP_LEAF).mean():.1%} at a leaf.")
    counts = selective.group_counts(answered)
    st.dataframe(counts, hide_index=True, column_config={"share": st.column_config.NumberColumn(format="percent"),
                                                         "hacc": st.column_config.NumberColumn("hierarchically right", format="percent")})
    group = st.selectbox("Browse a group", counts.group.tolist(), key="errors_answer_group")
    rows = answered[answered.group == group]
    cols = [col for col in ("id", "text", "answer", "answer_prob", "answer_correct", "true_label", "pred_1", "prob_1") if col in rows]
    st.dataframe(rows[cols].head(ROWS_SHOWN), hide_index=True)
    st.download_button(f"Export {group} (CSV)", write_csv(rows[cols]), file_name=f"answers-{group.replace(' ', '-')}-{run.name}.csv",
                       mime="text/csv")


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


def label_issue_table(suspects: pd.DataFrame, pred_col: str, run: runs.Run, scored: int) -> None:
    st.subheader(f"{len(suspects):,} likely label errors")
    st.caption(coverage(run, scored))
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


def coverage(run: runs.Run, scored: int) -> str:
    """Which products the flags cover (`scored`: the rows of the predictions table) and where they
    come from, in words."""
    m = run.metrics()
    data = Path(str(run.config.get("data") or "the catalog")).name
    if run.kind == "audit":
        return (f"Every product of {data} ({scored:,}): a {run.config.get('folds')}-fold audit, each product "
                "scored by the model that never saw it (confident learning on its out-of-fold probabilities).")
    total = sum(int(m.get(k) or 0) for k in ("n_train", "n_val", "n_test"))
    scope = f"the test split only ({scored:,} of {total:,} products" if total > scored else f"the {scored:,} imported items ("
    return (f"These flags cover {scope}) of {data}, from the calibrated probabilities of run {run.name}. To check every "
            "product, launch an audit of the whole catalog on the Training page.")


def audit_review(frame: pd.DataFrame, run: runs.Run) -> None:
    """An audit run: its label issues, most urgent first, to keep or relabel (saved in the run folder at
    each change, so a reload loses nothing); the review and the corrections as CSV."""
    issues = frame[frame["label_issue"]].sort_values("audit_priority", ascending=False)
    st.subheader(f"Audit: {len(issues):,} likely label errors among {len(frame):,} products")
    st.caption(coverage(run, len(frame)) + " Ranked so that a confident disagreement across departments comes before a sibling one. "
               "Keep the label, or relabel the product to the model's answer; your decisions are saved as you make them.")
    saved = load_decisions(run.path)
    table = pd.DataFrame({"id": issues["id"].to_numpy(),  # the decision next to the id: in view at 1440 px
                          "decision": [saved.get(i, "keep") for i in issues["id"]],
                          "product": issues.get("text", issues["id"]).to_numpy(),
                          "given label": issues.true_label.to_numpy(), "suggested": issues.pred_1.to_numpy(),
                          "kind": issues.triage.to_numpy(), "label quality": issues.label_quality.round(4).to_numpy()})
    edited = st.data_editor(table, hide_index=True, key=f"audit_{run.name}", disabled=[c for c in table if c != "decision"],
                            column_config={"decision": st.column_config.SelectboxColumn("decision", options=list(DECISIONS),
                                                                                        required=True)})
    decisions = edited.set_index("id")["decision"]
    if decisions.to_dict() != {i: saved.get(i, "keep") for i in decisions.index}:
        save_decisions(run.path, saved | decisions.to_dict())
    fixes = corrections(issues, decisions)
    c = st.columns(2)
    c[0].download_button(f"Export {len(fixes):,} corrections (CSV)", write_csv(fixes), file_name=f"corrections-{run.name}.csv",
                         mime="text/csv", key="audit_export", on_click="ignore")
    c[1].download_button(f"Export the {len(edited):,} reviewed flags (CSV)", write_csv(edited),
                         file_name=f"label-errors-{run.name}.csv", mime="text/csv", key="audit_export_all", on_click="ignore")


def filtered(frame: pd.DataFrame, pred_col: str, true_b: list, pred_b: list, confidence: tuple[float, float]) -> pd.DataFrame:
    """The test items in the chosen branches and confidence band (all of them when nothing is chosen)."""
    keep = pd.Series(True, index=frame.index)
    if true_b:
        keep &= frame.true_label.map(top_level).isin(true_b)
    if pred_b:
        keep &= frame[pred_col].map(top_level).isin(pred_b)
    if "prob_1" in frame and confidence != (0.0, 1.0):
        keep &= frame.prob_1.between(*confidence)
    return frame[keep]


def metric_cards(run: runs.Run, metrics: dict, scope: pd.DataFrame, crm: bool, filtering: bool) -> None:
    """The headline figures of the run, or of the filtered items when a filter is set (a merchandiser
    filtering to one branch expects that branch's figures); deltas show CRM against the plain answer."""
    plain, rer = metrics.get("plain", {}), metrics.get("crm", {})
    if filtering:
        tax = run.taxonomy()
        plain = headline_from_predictions(scope, tax)
        rer = headline_from_predictions(scope, tax, "crm_pred_1", "crm_tree_distance") if "crm_pred_1" in scope else {}
    compared = bool(crm and rer)
    shown = rer if compared else plain
    for col, card in zip(st.columns(len(CARDS)), CARDS, strict=True):
        value, base = shown.get(card.key), plain.get(card.key)
        delta = f"{value - base:+.3f}" if compared and value is not None and base is not None else None
        col.metric(card.label, "n/a" if value is None else f"{value:.3f}", delta=delta, help=card.meaning,
                   delta_color="inverse" if card.lower_is_better else "normal")
    st.caption((f"Figures for the {len(scope):,} test items in the filter. " if filtering else "") + metrics.get("encoder", ""))


def mistakes_table(wrong: pd.DataFrame, pred_col: str, dist_col: str, image_root: str | None) -> None:
    """The verdict columns first and short names, so they fit at 1440 px; a clicked row's full detail
    (text, image, paths, top-5 with probabilities) beneath, the worst mistake's until one is clicked."""
    head = wrong.head(ROWS_SHOWN)
    view = pd.DataFrame({
        "product": head.text.to_numpy() if "text" in head else head.id.to_numpy(),
        "true category": head.true_label.map(leaf_name).to_numpy(),
        "answer": head[pred_col].map(leaf_name).to_numpy(),
        "confidence": head.prob_1.round(3).to_numpy() if "prob_1" in head else None,
        "tree distance": head[dist_col].to_numpy(),
        "semantic distance": head.semantic_distance.round(3).to_numpy() if "semantic_distance" in head else None,
    })
    config = {"product": st.column_config.TextColumn("product", width="large"),
              "confidence": st.column_config.NumberColumn(format="%.3f"),
              "semantic distance": st.column_config.NumberColumn(format="%.3f")}
    if "image_path" in head:
        view.insert(0, "image", [thumbnail(p, image_root) for p in head.image_path])
        config["image"] = st.column_config.ImageColumn("image", width="small")
    event = st.dataframe(view, hide_index=True, column_config=config, on_select="rerun", selection_mode="single-row",
                         key="mistakes")
    if len(wrong) > ROWS_SHOWN:
        st.caption(f"Showing the {ROWS_SHOWN} worst; the export holds all {len(wrong):,} and the likely label errors.")
    if not head.empty:
        rows = event.selection.rows if event else []
        detail(head.iloc[rows[0] if rows else 0], pred_col, image_root)


def detail(row: pd.Series, pred_col: str, image_root: str | None) -> None:
    """One product in full: what the model saw, the truth, and its ranked answers."""
    with st.container(border=True):
        st.caption("Click a row above to see another product.")
        image = thumbnail(row["image_path"], image_root) if "image_path" in row else None
        body = st.container()
        if image:
            cols = st.columns([1, 3])
            cols[0].image(image)
            body = cols[1]
        body.text(str(row.get("text", row["id"])))
        body.text(f"True category: {row.true_label}\nAnswer:        {row[pred_col]}")
        ranks = [r for r in range(1, 6) if f"pred_{r}" in row]
        body.dataframe(pd.DataFrame({
            "rank": ranks, "category": [row[f"pred_{r}"] for r in ranks],
            "probability": [row.get(f"prob_{r}") for r in ranks], "similarity to truth": [row.get(f"sim_{r}") for r in ranks],
        }), hide_index=True, key="mistake_top5")


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
    c = st.columns([1, 1, 1, 1])
    order = c[0].radio("Rank by", ["semantic distance", "tree distance"])
    true_b = c[1].multiselect("True branch", sorted(frame.true_label.map(top_level).unique()))
    pred_b = c[2].multiselect("Predicted branch", sorted(frame[pred_col].map(top_level).unique()))
    lo, hi = c[3].slider("Confidence of the top answer", 0.0, 1.0, (0.0, 1.0), 0.05)
    scope = filtered(frame, pred_col, true_b, pred_b, (lo, hi))
    metric_cards(run, metrics, scope, crm, filtering=len(scope) < len(frame))

    wrong = scope[scope[pred_col] != scope.true_label].copy()
    wrong = triage_cards_and_filter(frame, wrong)
    wrong, suspects = split_label_issues(wrong)
    key = "semantic_distance" if order == "semantic distance" else dist_col
    wrong = wrong.sort_values([key, "prob_1"] if "prob_1" in wrong else [key], ascending=False)
    st.subheader(f"{len(wrong):,} mistakes of {len(scope):,} test items")
    mistakes_table(wrong, pred_col, dist_col, run.config.get("image_dir"))
    shown = pd.concat([wrong, suspects])  # the export keeps the likely label errors, marked by label_issue
    export = write_csv(shown.drop(columns=[c for c in ("image_path",) if c in shown]))
    st.download_button("Export these mistakes (CSV)", export, file_name=f"mistakes-{run_id}.csv", mime="text/csv")

    if "label_issue" in frame:
        label_issue_table(suspects, pred_col, run, len(frame))
    if run.kind == "audit":
        audit_review(frame, run)
    if run.kind == "trained":
        guaranteed_accuracy(run, frame, [r for r in done if r.name != run_id and r.kind == "trained"])

    st.subheader("Where the errors are")
    roll = rollup(str(run.path), run.predictions_mtime(), crm)
    measure = st.segmented_control("Size by", ["errors", "support"], default="errors") or "errors"
    fig = px.sunburst(roll, ids="id", parents="parent", names="name", values=measure, color="mean_severity",
                      color_continuous_scale="OrRd", hover_data={"error_rate": ":.2f", "mean_severity": ":.2f"},
                      branchvalues="total")
    fig.update_layout(height=600, margin=dict(t=10, l=10, r=10, b=10))
    st.plotly_chart(fig, key="error_sunburst")
    st.caption("Segment size: number of errors (or items) under a category; colour: mean tree distance of its mistakes.")


page()
