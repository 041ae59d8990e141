"""Taxolens: see how severe a product categorizer's mistakes are, and make them milder.
`make run` starts this on the sample catalog; each page lives in pages/."""

from pathlib import Path

import streamlit as st

# a local icon: a material-symbol icon makes the browser fetch a font from an outside host, which fails offline
st.set_page_config(page_title="Taxolens", page_icon=str(Path(__file__).parent / "assets" / "favicon.png"), layout="wide")

PAGES = [
    st.Page("pages/taxonomy.py", title="Taxonomy", icon=":material/account_tree:", default=True),
    st.Page("pages/similarity.py", title="Similarity", icon=":material/hub:"),
    st.Page("pages/smoothing.py", title="Smoothing", icon=":material/tune:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/errors.py", title="Errors", icon=":material/troubleshoot:"),
    st.Page("pages/categorize.py", title="Categorize", icon=":material/label:"),
    st.Page("pages/tune.py", title="Tune", icon=":material/query_stats:"),
    st.Page("pages/import.py", title="Import predictions", icon=":material/upload_file:"),
]
page = st.navigation(PAGES)
with st.sidebar:
    st.caption("Taxolens: taxonomy-aware label smoothing and severity-aware evaluation for product categorization.")

from pages.shared import guard, session_kept  # noqa: E402 - after st.navigation, which ends Streamlit's legacy pages/ mode

with session_kept():  # a browser refresh keeps the remembered settings and the uploaded taxonomy
    guard(page.run)  # the one place a page's errors are caught: the user's as a message, a bug as a bug
