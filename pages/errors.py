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
from core.evaluation.branches import branch_table
from core.evaluation.crm import answer_semantic_distance
from core.evaluation.metrics import headline_from_predictions, rollup_from_predictions
from core.evaluation.registry import HEADLINE, METRICS, explain
from core.evaluation.schema import COLUMNS
from core.runs import store as runs
from core.taxonomy.tree import leaf_name, top_level
from core.training.audit import DECISIONS, corrections, load_decisions, save_decisions
from pages.shared import (
    damaged_runs_notice,
    default,
    demo_run_offer,
    finished_runs,
    glossary_expander,
    persistent,
    remember,
    runs_dir,
    target_slider,
)

ROWS_SHOWN = 100
CARDS = [METRICS[key] for key in HEADLINE]
# column widths (px) that keep every verdict column of a table on screen at 1440 px with the sidebar open;
# a long product text or path is cut in its cell (the row's detail and the export hold it whole)
PRODUCT_W, PATH_W, NAME_W, NUMBER_W, WIDE_NUMBER_W, KIND_W = 260, 200, 160, 100, 130, 130
BARS = 30  # branches drawn in the bar chart; the table lists them all


@st.cache_data(show_spinner=False, max_entries=8)
def predictions(path: str, mtime: float) -> pd.DataFrame:
    return runs.Run(path).predictions()


@st.cache_data(show_spinner=False, max_entries=8)
def answers(path: str, mtime: float, crm: bool) -> pd.DataFrame:
    """The predictions with the triage and semantic distance of the answer shown (the re-ranked one with CRM on)."""
    frame = predictions(path, mtime)
    if crm and "semantic_distance" in frame:
        frame = frame.assign(semantic_distance=answer_semantic_distance(frame))
    if "triage" not in frame:
        return frame
    return frame.assign(triage=triage.answer_triage(frame, runs.Run(path).taxonomy(), "crm_pred_1" if crm else "pred_1"))


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
    st.dataframe(rows[cols].head(ROWS_SHOWN), hide_index=True, key="answers_group", column_config={
        "id": st.column_config.TextColumn(width="small"), "text": st.column_config.TextColumn(width=PRODUCT_W),
        **{c: st.column_config.TextColumn(width=PATH_W) for c in ("answer", "true_label", "pred_1")}})
    st.download_button(f"Export {group} (CSV)", write_csv(rows[cols]), file_name=f"answers-{group.replace(' ', '-')}-{run.name}.csv",
                       mime="text/csv")


def triage_cards_and_filter(scope: pd.DataFrame, wrong: pd.DataFrame) -> pd.DataFrame:
    """Mistakes per triage class (METHOD.md, 'Triage') among the filtered items, of the answer shown,
    as cards, and a filter by class."""
    if "triage" not in scope:
        return wrong
    counts = triage.counts(scope)
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
    }), hide_index=True, key="label_issues", column_order=["product", "label quality", "kind", "given label", "model's answer"],
        column_config={"product": st.column_config.TextColumn(width=PRODUCT_W),
                       "label quality": st.column_config.NumberColumn(format="%.4f", width=NUMBER_W,
                                                                      help=COLUMNS["label_quality"].meaning),
                       "kind": st.column_config.TextColumn(width=KIND_W),
                       "given label": st.column_config.TextColumn(width=PATH_W),
                       "model's answer": st.column_config.TextColumn(width=PATH_W)})


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
        col.metric(card.label, "n/a" if value is None else f"{value:.3f}", delta=delta, help=explain(card.key),
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
    config = {"product": st.column_config.TextColumn("product", width=PRODUCT_W),
              "true category": st.column_config.TextColumn(width=NAME_W), "answer": st.column_config.TextColumn(width=NAME_W),
              "confidence": st.column_config.NumberColumn(format="%.3f", width=NUMBER_W),
              "tree distance": st.column_config.NumberColumn(width=NUMBER_W, help=COLUMNS["tree_distance"].meaning),
              "semantic distance": st.column_config.NumberColumn(format="%.3f", width=WIDE_NUMBER_W,
                                                                 help=COLUMNS["semantic_distance"].meaning)}
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


# the address of a run's Errors page: query parameter -> the widget it restores (lists repeat the parameter)
URL = {"run": "errors_run", "crm": "errors_crm", "rank": "errors_order", "true": "errors_true", "pred": "errors_pred",
       "confidence": "errors_conf", "kind": "errors_triage"}
RANKS = ["semantic distance", "tree distance"]


def url_values() -> dict[str, list[str]]:
    return {name: st.query_params.get_all(name) for name in URL if name in st.query_params}


def restore_from_url(names: list[str]) -> str | None:
    """When the address holds what this page did not write (a link just opened, a bookmark), set the
    filters it names; returns the run it names. Values that no longer fit (a deleted run) are ignored."""
    given = url_values()
    if given == st.session_state.get("_errors_url"):
        return None
    state = st.session_state
    for name, values in given.items():
        if name in ("true", "pred"):
            state[URL[name]] = values  # checked against the run's branches when the widget is drawn
        elif name == "kind":
            state[URL[name]] = [v for v in values if v in triage.CLASSES]
        elif name == "crm":
            state[URL[name]] = values[-1] == "1"
        elif name == "rank" and values[-1] in RANKS:
            state[URL[name]] = values[-1]
        elif name == "confidence":
            try:
                lo, hi = sorted(min(max(float(v), 0.0), 1.0) for v in values[-1].split(","))
            except ValueError:
                continue
            state[URL[name]] = (lo, hi)
    run = given.get("run", [None])[-1]
    return run if run in names else None


def write_url(run_id: str) -> None:
    """The address of what is on screen: opening it restores the run and its filters."""
    state = st.session_state
    values = {"run": [run_id], "crm": ["1"] if state.get("errors_crm") else [],
              "rank": [state["errors_order"]] if state.get("errors_order", RANKS[0]) != RANKS[0] else [],
              "true": state.get("errors_true", []), "pred": state.get("errors_pred", []),
              "confidence": [",".join(f"{v:g}" for v in state["errors_conf"])] if tuple(state.get("errors_conf", (0.0, 1.0))) != (0.0, 1.0) else [],
              "kind": state.get("errors_triage", [])}
    values = {k: list(v) for k, v in values.items() if v}
    if url_values() != values:
        st.query_params.from_dict(values)
    state["_errors_url"] = values


def branch_choice(where, label: str, options: list[str], key: str) -> list[str]:
    """A branch filter whose remembered choice keeps only the branches this run has."""
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]
    return where.multiselect(label, options, key=key)


def branches_section(scope: pd.DataFrame, pred_col: str, dist_col: str) -> None:
    """Which branches suffer: a sortable table of the filtered items per top-level branch, and a bar chart."""
    st.subheader("Which branches suffer")
    table = branch_table(scope, pred_col, dist_col)
    measures = [c for c in table.columns if c != "branch"]
    by = st.segmented_control("Bars show", measures, default="mistakes", key="errors_branch_measure") or "mistakes"
    ranked = table.sort_values(by, ascending=False, kind="stable")
    fig = px.bar(ranked.head(BARS), x="branch", y=by, color="mean severity", color_continuous_scale="OrRd",
                 hover_data={"items": True, "error rate": ":.1%", "mean severity": ":.2f"})
    fig.update_layout(height=380, margin=dict(t=10, l=10, r=10, b=10), xaxis_title=None)
    st.plotly_chart(fig, key="branch_bars")
    if len(table) > BARS:
        st.caption(f"The chart shows the {BARS} branches with the highest {by}; the table lists all {len(table):,}.")
    percent = {"format": "percent", "width": NUMBER_W}
    st.dataframe(ranked, hide_index=True, key="branch_table", column_config={
        "branch": st.column_config.TextColumn(width=PATH_W, help="top-level category of the true label"),
        "items": st.column_config.NumberColumn(help="test items in the filter whose true category is in the branch"),
        "mistakes": st.column_config.NumberColumn(help="items whose answer is not the true category"),
        "error rate": st.column_config.NumberColumn(help="mistakes / items", **percent),
        "mean severity": st.column_config.NumberColumn(format="%.2f", width=NUMBER_W, help=explain("mistake_severity")),
        "cross-department share": st.column_config.NumberColumn(help="share of the mistakes that answer another top-level "
                                                                     "branch", format="percent", width=PATH_W),
        "label issues": st.column_config.NumberColumn(help=COLUMNS["label_issue"].meaning)})
    st.caption("Click a column header to sort the table.")


def page() -> None:
    st.title("Errors")
    done = finished_runs()
    damaged_runs_notice()
    if not done:
        demo_run_offer("demo-errors")
        return
    names = [p.name for p in done]
    wanted = restore_from_url(names) or st.session_state.get("selected_run")
    run_id = st.selectbox("Run", names, index=names.index(wanted) if wanted in names else 0)
    st.session_state["selected_run"] = run_id
    run = runs.Run(runs_dir() / run_id)
    metrics = run.metrics()
    has_crm = "crm_pred_1" in predictions(str(run.path), run.predictions_mtime())
    crm = st.toggle("Re-rank answers by conditional risk (CRM)", help="Without retraining, answer the class with the lowest "
                    "expected tree distance under the model's probabilities.", disabled=not has_crm, key="errors_crm") and has_crm
    frame = answers(str(run.path), run.predictions_mtime(), crm)
    pred_col, dist_col = ("crm_pred_1", "crm_tree_distance") if crm else ("pred_1", "tree_distance")
    c = st.columns([1, 1, 1, 1])
    order = c[0].radio("Rank by", RANKS, key="errors_order")
    true_b = branch_choice(c[1], "True branch", sorted(frame.true_label.map(top_level).unique()), "errors_true")
    pred_b = branch_choice(c[2], "Predicted branch", sorted(frame[pred_col].map(top_level).unique()), "errors_pred")
    st.session_state.setdefault("errors_conf", (0.0, 1.0))
    lo, hi = c[3].slider("Confidence of the top answer", 0.0, 1.0, step=0.05, key="errors_conf")
    scope = filtered(frame, pred_col, true_b, pred_b, (lo, hi))
    metric_cards(run, metrics, scope, crm, filtering=len(scope) < len(frame))
    glossary_expander()

    wrong = scope[scope[pred_col] != scope.true_label].copy()
    wrong = triage_cards_and_filter(scope, wrong)
    write_url(run_id)
    wrong, suspects = split_label_issues(wrong)
    key = "semantic_distance" if order == RANKS[0] else dist_col
    wrong = wrong.sort_values([key, "prob_1"] if "prob_1" in wrong else [key], ascending=False)
    st.subheader(f"{len(wrong):,} mistakes of {len(scope):,} test items")
    if len(suspects):
        st.caption(f"The kinds above count every mistake in the filter, the {len(suspects):,} likely label "
                   f"error{'s' if len(suspects) > 1 else ''} (listed apart below) among them.")
    mistakes_table(wrong, pred_col, dist_col, run.config.get("image_dir"))
    shown = pd.concat([wrong, suspects])  # the export keeps the likely label errors, marked by label_issue
    if crm:  # the file's triage and semantic distance stay pred_1's (the schema's), CRM's answer's beside them
        plain_answers = predictions(str(run.path), run.predictions_mtime())
        own = [c for c in ("triage", "semantic_distance") if c in shown]
        shown = shown.assign(**{f"crm_{c}": shown[c] for c in own}).assign(**{c: plain_answers[c] for c in own})
    export = write_csv(shown.drop(columns=[c for c in ("image_path",) if c in shown]))
    st.download_button("Export these mistakes (CSV)", export, file_name=f"mistakes-{run_id}.csv", mime="text/csv")

    if "label_issue" in frame:
        label_issue_table(suspects, pred_col, run, len(frame))
    if run.kind == "audit":
        audit_review(frame, run)
    if run.kind == "trained":
        guaranteed_accuracy(run, frame, [r for r in done if r.name != run_id and r.kind == "trained"])

    branches_section(scope, pred_col, dist_col)
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
