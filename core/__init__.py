"""Taxolens core: taxonomies, label embeddings, soft targets, severity metrics, training and the run store.
Pure Python with no UI imports; the CLI (`python -m core`) and the Streamlit app both call it."""
