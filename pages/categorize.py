"""Categorize page: a finished run applied to new products, typed in or uploaded as a file."""

import hashlib
import io
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.export import write_csv
from core.data.tables import DataError, Items, count_rows, join_texts, read_table
from core.display import plain
from core.evaluation import selective
from core.settings import DEFAULT_REVIEW_RISK, ExperimentConfig
from core.training.predictor import Predictor, alternatives, model_problems, with_texts
from pages.shared import default, demo_run_offer, finished_runs, target_slider

UPLOAD_TYPES = ["csv", "tsv", "parquet", "jsonl"]


@st.cache_resource(show_spinner="Loading the model and its encoder…", max_entries=4)
def predictor(run_path: str, mtime: float) -> Predictor:
    return Predictor.load(run_path)


def guaranteed_answer(model: Predictor, probs: object) -> None:
    """The answer at the chosen target accuracy: how far the top-1 backed off up the tree, and why."""
    target = target_slider()
    try:
        threshold = model.guarantee(target, default("confidence"))
    except selective.SelectiveError as exc:
        st.info(plain(exc))
        return
    steps = selective.climb_steps(selective.climbs(probs, model.class_tree), 0, threshold.theta, model.taxonomy)
    answer, backed = steps.iloc[-1], len(steps) - 1
    why = (f"hierarchically right for at least {target:.0%} of products at confidence {threshold.confidence:.0%}: a "
           f"category is kept when the probability of its whole subtree reaches {threshold.theta:.3f}")
    if answer["depth"] == 0:
        st.warning(f"No category at this target: left for a person ({why}).", icon=":material/person:")
    elif backed:
        st.info(f"**{answer['category']}** (subtree probability {answer['subtree probability']:.3f}): backed off "
                f"{backed} level{'s' if backed > 1 else ''} from the top answer to be {why}.", icon=":material/north:")
    else:
        st.success(f"**{answer['category']}**, the top answer itself, is {why}.", icon=":material/check:")
    st.dataframe(steps, hide_index=True, column_config={
        "subtree probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")})


def typed_product(model: Predictor) -> None:
    with st.form("typed"):
        title = st.text_input("Title", placeholder="e.g. Waterproof leather hiking boots, men's size 10")
        description = st.text_area("Description (optional)", height=80)
        submitted = st.form_submit_button("Categorize", type="primary")
    if submitted:
        st.session_state["categorize_typed"] = join_texts([title, description])
        if not st.session_state["categorize_typed"]:
            st.warning("Type a title or a description first.")
    text = st.session_state.get("categorize_typed")
    if not text:  # the last product stays shown while the target slider moves
        return
    probs = model.probabilities(Items(ids=pd.Series(["typed"]).to_numpy(), texts=[text]))
    answer = model.answers(["typed"], probs).iloc[0]
    st.markdown("**Answer**")
    st.text(answer["pred_1"])
    if "risk" in answer:
        risk = float(answer["risk"])
        if answer["review"]:
            st.warning(f"Review suggested: expected tree distance of this answer is {risk:.2f} "
                       f"(above {DEFAULT_REVIEW_RISK}).", icon=":material/flag:")
        else:
            st.success(f"Confident: expected tree distance of this answer is {risk:.2f}.", icon=":material/check:")
    table = alternatives(model.taxonomy, answer).rename(columns={
        "probability": "probability (calibrated)", "tree_distance": "tree distance to the answer"})
    st.dataframe(table, hide_index=True, column_config={
        "probability (calibrated)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")})
    st.markdown("**At a guaranteed accuracy**")
    guaranteed_answer(model, probs)


def uploaded_file(model: Predictor, run_name: str) -> None:
    """Categorize an uploaded table; the results are kept in the session (keyed by run and file) so
    a download, which reruns the page, leaves the table, the message and both buttons in place."""
    upload = st.file_uploader("Product table (.csv, .tsv, .parquet, .jsonl)", type=UPLOAD_TYPES, key="categorize_upload")
    if upload is None:
        return
    config = model.config
    key = (run_name, hashlib.sha1(upload.getvalue()).hexdigest())
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / Path(upload.name).name
        source.write_bytes(upload.getvalue())
        columns = list(read_table(source, nrows=5).columns)
        text = st.multiselect("Text column(s)", columns, default=[c for c in config.text_columns if c in columns],
                              key="categorize_text")
        id_choice = st.selectbox("Id column", ["(row number)", *columns],
                                 index=1 + columns.index(config.id_column) if config.id_column in columns else 0)
        if st.button("Categorize the file", type="primary"):
            if not text:
                st.error("Choose at least one text column.")
                return
            given = model.input_config(data=str(source), text_columns=text).replace(
                id_column=None if id_choice == "(row number)" else id_choice)
            frame, result = categorized(model, source, given)
            st.session_state["categorize_result"] = {"key": key, "frame": frame, "result": result,
                                                     "stem": Path(upload.name).stem}
    saved = st.session_state.get("categorize_result")
    if saved and saved["key"] == key:
        results(saved)


def categorized(model: Predictor, source: Path, given: ExperimentConfig) -> tuple[pd.DataFrame, dict]:
    """The file's answers with each product's text beside its id, and predict_file's counts."""
    out = source.with_name("categorized.parquet")
    bar = st.progress(0.0, text="Categorizing…")
    total = count_rows(source)
    done = {"n": 0}

    def step(n: int) -> None:
        done["n"] += n
        bar.progress(min(done["n"] / max(total, 1), 1.0), text=f"Categorized {done['n']:,} of {total:,} products")

    result = model.predict_file(out, given, chunk_rows=2_000, progress=step)
    frame = with_texts(pd.read_parquet(out), read_table(source, given.column_names), given)
    bar.empty()
    return frame, result


def results(saved: dict) -> None:
    frame, result, stem = saved["frame"], saved["result"], saved["stem"]
    st.success(f"{result['rows']:,} products categorized; {result['review']:,} flagged for review.")
    st.dataframe(frame.head(200), hide_index=True, key="categorize_results")
    c = st.columns(2)
    c[0].download_button("Download CSV", write_csv(frame), file_name=f"{stem}-categorized.csv",
                         mime="text/csv", on_click="ignore")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    c[1].download_button("Download Parquet", buffer.getvalue(), file_name=f"{stem}-categorized.parquet",
                         mime="application/octet-stream", on_click="ignore")


def page() -> None:
    st.title("Categorize")
    trained = [r for r in finished_runs() if r.kind == "trained"]
    damaged = {r.name: model_problems(r) for r in trained}
    done = [r for r in trained if not damaged[r.name]]
    if any(damaged.values()):
        st.warning("Runs whose model files are damaged are left out:\n\n" +
                   "\n\n".join(p for problems in damaged.values() for p in problems), icon=":material/warning:")
    if not done:
        demo_run_offer("demo-categorize")
        return
    run = st.selectbox("Model (a finished training run)", done, format_func=lambda r: r.name, key="categorize_run")
    model = predictor(str(run.path), run.predictions_mtime())
    st.caption(f"{len(model.class_names)} categories · {model.encoder_choice.note} · calibration temperature "
               f"{model.temperature:.2f}")
    typed, upload = st.tabs(["Type a product", "Upload a file"])
    with typed:
        typed_product(model)
    with upload:
        try:
            uploaded_file(model, run.name)
        except DataError as exc:
            st.error(plain(exc))


page()
