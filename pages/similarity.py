"""Similarity page: how the encoder sees the categories, next to how the taxonomy arranges them."""

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from core.data.encoders import collision_note, repeated_names
from core.display import plain, short_labels
from core.labels.similarity import (
    default_branch,
    heatmap_branches,
    label_map,
    suspicious_pairs,
    tree_agreement,
)
from core.taxonomy.tree import PATH_SEP
from pages.shared import class_distances, label_space, neighbours

HEATMAP_MAX = 150
ROW_PX = 14  # a heatmap row's height: one 10 px label per row stays readable
COLUMN_LABELS_MAX = 80  # above this many columns, labels across would overlap at 1440 px
PAIR_COLUMNS = ["suspicion", "similarity", "tree_distance", "category_a", "category_b"]  # the scores stay on screen
PAIR_PATH_W, PAIR_SCORE_W = 330, 90  # px: a long path is cut in its cell, clicking it shows it whole
UMAP_DEFAULT_MAX = 1000  # above this the map opens with PCA (instant); UMAP is one click away


@st.cache_data(show_spinner="Laying out the label map…", max_entries=8)
def cached_map(key: str, kind: str, template: str, method: str, _emb: np.ndarray) -> np.ndarray:
    return label_map(_emb, method)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_agreement(key: str, kind: str, template: str, _emb, _tax, _classes) -> tuple[dict, pd.DataFrame]:
    return tree_agreement(_emb, _tax, _classes), suspicious_pairs(_emb, _tax, _classes, limit=30)


def heatmap_rows(tax, classes, emb, paths, key, kind, template) -> list[int]:
    """Which classes the heatmap shows: all when few, else a branch (never a single leaf) or a category's
    neighbourhood; a branch too large to draw says what is left out and how to see it."""
    if len(classes) <= HEATMAP_MAX:
        return list(range(len(classes)))
    st.caption(f"{len(classes):,} categories are too many for one heatmap: choose a branch or a category's neighbourhood.")
    mode = st.radio("Show", ["A branch", "A category's neighbourhood"], horizontal=True, key="hm_mode")
    if mode == "A branch":
        branches = heatmap_branches(paths)
        options = branches.index.tolist()
        start = options.index(default_branch(branches, HEATMAP_MAX))
        branch = st.selectbox("Branch", options, index=start, key="hm_branch",
                              format_func=lambda b: f"{b} ({branches[b]:,} categories)")
        rows = [i for i, p in enumerate(paths) if p.startswith(branch + PATH_SEP)]
        if len(rows) > HEATMAP_MAX:
            deeper = [b for b in options if b.startswith(branch + PATH_SEP) and b.count(PATH_SEP) == branch.count(PATH_SEP) + 1]
            st.info(plain(f"{branch} holds {len(rows):,} categories; the heatmap shows the first {HEATMAP_MAX} in taxonomy "
                          f"order. To see the rest, choose one of its {len(deeper)} sub-branches"
                          + (f" (e.g. {deeper[-1]})" if deeper else "") + ", or a category's neighbourhood."))
        return rows[:HEATMAP_MAX]
    centre = st.selectbox("Category", range(len(classes)), format_func=paths.__getitem__, key="hm_centre")
    idx, _ = neighbours(key, kind, template, emb, min(40, len(classes) - 1))
    return sorted([centre, *idx[centre].tolist()])


def heatmap(emb, paths: list[str], rows: list[int]) -> None:
    """Short names on the axes (full paths on hover), one readable row per category: every row is labelled,
    the figure growing with the rows; the columns, in the same order, are labelled while they fit across."""
    sub = emb[rows] @ emb[rows].T
    full = [paths[i] for i in rows]
    fig = px.imshow(sub, x=full, y=full, color_continuous_scale="Viridis", zmin=float(sub.min()), zmax=1.0,
                    labels={"color": "similarity"}, aspect="auto")
    short = short_labels(full)
    across = len(rows) <= COLUMN_LABELS_MAX
    fig.update_xaxes(showticklabels=across, tickvals=full, ticktext=short, tickangle=-60, tickfont_size=10)
    fig.update_yaxes(showticklabels=True, tickvals=full, ticktext=short, tickfont_size=10, automargin=True)
    fig.update_traces(hovertemplate="%{y}<br>%{x}<br>similarity %{z:.3f}<extra></extra>")
    fig.update_layout(height=max(420, ROW_PX * len(rows) + 220), margin=dict(t=10, l=10, r=10, b=10))
    st.plotly_chart(fig, key="heatmap")
    if not across:
        st.caption(f"The columns follow the rows' order ({len(rows):,} categories are too many to name across); "
                   "hover a cell for both full paths.")


def page() -> None:
    st.title("Similarity")
    space = label_space("there is nothing to compare.")
    if space is None:
        return
    tax, key, kind, template, classes, emb, paths = (space.tax, space.key, space.encoder, space.template, space.classes,
                                                     space.emb, space.paths)
    tops = [tax.path(int(c))[0] for c in classes]
    note = collision_note(tax, classes, template)
    if note is not None:
        (st.warning if note[0] == "warning" else st.info)(plain(note[1]))
        with st.expander("Leaf names shared by several categories"):
            st.table(pd.DataFrame([{"name": n, "categories": len(p), "paths": "; ".join(p)}
                                   for n, p in repeated_names(tax, classes).items()]))

    st.subheader("Cosine similarity, ordered by the taxonomy")
    heatmap(emb, paths, heatmap_rows(tax, classes, emb, paths, key, kind, template))

    st.subheader("Nearest neighbours of a category")
    chosen = st.selectbox("Category", range(len(classes)), format_func=paths.__getitem__, key="nn_category")
    k = min(10, len(classes) - 1)
    idx, val = neighbours(key, kind, template, emb, k)
    dist = class_distances(key, tax)
    st.dataframe(pd.DataFrame({"neighbour": [paths[j] for j in idx[chosen]], "similarity": val[chosen].round(3),
                               "tree distance": dist[chosen, idx[chosen]]}), hide_index=True)

    st.subheader("Label map")
    large = len(classes) > UMAP_DEFAULT_MAX
    method = st.segmented_control("Layout", ["UMAP", "PCA"], default="PCA" if large else "UMAP", key="map_method") or "PCA"
    if method == "UMAP":
        st.caption("UMAP compiles its kernels on first use in a server process (up to a minute on two cores); later maps are quick.")
    xy = cached_map(key, kind, template, method.lower(), emb)
    map_frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "branch": tops, "path": paths})
    fig = px.scatter(map_frame, x="x", y="y", color="branch", hover_name="path", hover_data={"x": False, "y": False})
    fig.update_layout(height=560, margin=dict(t=10, l=10, r=10, b=10))
    st.plotly_chart(fig, key="umap")

    st.subheader("Agreement with the tree")
    agreement, pairs = cached_agreement(key, kind, template, emb, tax, classes)
    st.metric("Spearman correlation of similarity with closeness in the tree", f"{agreement['spearman']:.3f}",
              help=f"over {agreement['pairs']:,} {'sampled ' if agreement['sampled'] else ''}category pairs; 1 would mean the encoder orders pairs exactly as the tree does")
    st.caption("Suspicious pairs: close in meaning, far apart in the tree. Candidates for mis-filed or ambiguously named "
               "categories, most suspicious first: suspicion = similarity x tree distance / depth of the taxonomy.")
    st.dataframe(pairs, hide_index=True, key="suspicious_pairs", column_order=PAIR_COLUMNS, column_config={
        "category_a": st.column_config.TextColumn(width=PAIR_PATH_W), "category_b": st.column_config.TextColumn(width=PAIR_PATH_W),
        "suspicion": st.column_config.NumberColumn(width=PAIR_SCORE_W), "similarity": st.column_config.NumberColumn(width=PAIR_SCORE_W),
        "tree_distance": st.column_config.NumberColumn("tree distance", width=PAIR_SCORE_W + 20)})


page()
