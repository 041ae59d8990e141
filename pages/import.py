"""Import page: another categorizer's predictions file -> an imported run, then its errors."""

import tempfile
from pathlib import Path

import streamlit as st

from core.data.tables import read_table
from core.runs.importer import ImportSpec, build, guess_spec, import_run
from pages.shared import APP_ENCODERS, runs_dir

PREVIEW_ROWS = 10


def upload_frame() -> tuple[object, str] | None:
    """The uploaded table read with the CLI's reader (CSV, TSV, Parquet, JSON Lines)."""
    upload = st.file_uploader("Predictions file (CSV, TSV, Parquet or JSON Lines)", type=["csv", "tsv", "parquet", "jsonl"],
                              key="import_upload")
    if upload is None:
        st.info("One row per product: its given category (a path such as `Footwear > Boots > Snow Boots`, or a taxonomy "
                "id) and your categorizer's answers, best first, optionally with their scores.")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        return read_table(path), upload.name


def column_mapping(columns: list[str]) -> ImportSpec:
    """Which column plays which role: guessed from the names, corrected by the user."""
    guess = guess_spec(columns)
    none = "(none)"
    c = st.columns(2)
    true = c[0].selectbox("Given category", columns, index=columns.index(guess["true_column"]) if guess["true_column"] else 0)
    id_options = [none, *columns]
    id_col = c[1].selectbox("Product id", id_options, index=id_options.index(guess["id_column"]) if guess["id_column"] else 0)
    preds = st.multiselect("Answers, best first", columns, default=guess["pred_columns"])
    scores = st.multiselect("Scores of those answers, same order (optional)", columns, default=guess["score_columns"])
    texts = st.multiselect("Product text (optional, shown beside mistakes)", columns, default=guess["text_columns"])
    return ImportSpec(true, preds, scores, None if id_col == none else id_col, texts)


def page() -> None:
    st.title("Import predictions")
    st.caption("Judge any categorizer's mistakes: upload its predictions, check the columns, import, and read its errors.")
    loaded = upload_frame()
    if loaded is None:
        return
    frame, name = loaded
    spec = column_mapping(list(frame.columns))
    tax_upload = st.file_uploader("Taxonomy (optional; without it the tree comes from the labels)", key="import_taxonomy")
    encoder = st.selectbox("Encoder for category names (semantic metrics)", APP_ENCODERS, key="import_encoder")
    with tempfile.TemporaryDirectory() as tmp:
        tax_path = None
        if tax_upload is not None:
            tax_path = str(Path(tmp) / Path(tax_upload.name).name)
            Path(tax_path).write_bytes(tax_upload.getvalue())
        from core.data.tables import load_catalog_taxonomy

        preview = build(frame.head(2000), spec, load_catalog_taxonomy(tax_path))
        st.subheader("Preview")
        st.dataframe(preview.predictions.head(PREVIEW_ROWS), hide_index=True)
        for line in preview.report.lines():
            st.caption(line + (" (preview of the first 2,000 rows)" if len(frame) > 2000 else ""))
        if st.button("Import", type="primary", key="import_go"):
            with st.status("Importing: embedding category names and computing metrics", expanded=False) as status:
                run_dir, summary = import_run(str(runs_dir()), frame, spec, source=name, taxonomy_path=tax_path,
                                              encoder=encoder, name=Path(name).stem)
                status.update(label=f"Imported as run {run_dir.name}", state="complete")
            st.session_state["selected_run"] = run_dir.name
            st.switch_page("pages/errors.py")


page()
