"""Taxolens app entry point (the full multi-page app arrives with the app issue)."""

import streamlit as st

from core.taxonomy import load_taxonomy

st.set_page_config(page_title="Taxolens", layout="wide")
st.title("Taxolens")
tax = load_taxonomy("sample_data/taxonomy.txt")
st.write(tax.summary() | {"problems": len(tax.problems)})
st.dataframe(tax.to_frame(), hide_index=True)
