"""Similarity page: how the encoder sees the categories, next to how the taxonomy arranges them."""

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.similarity import (
    branch_sizes,
    default_branch,
    label_map,
    short_labels,
    suspicious_pairs,
    tree_agreement,
)
from pages.shared import class_distances, guard, label_space, neighbours

HEATMAP_MAX = 150
NEIGHBOURHOOD = 40
UMAP_DEFAULT_MAX = 1000  # above this the map opens with PCA (instant); UMAP is one click away


@st.cache_data(show_spinner="Laying out the label map…", max_entries=8)
def cached_map(key: str, kind: str, template: str, method: str, _emb: np.ndarray) -> np.ndarray:
    return label_map(_emb, method)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_agreement(key: str, kind: str, template: str, _emb, _tax, _classes) -> tuple[dict, pd.DataFrame]:
    return tree_agreement(_emb, _tax, _classes), suspicious_pairs(_emb, _tax, _classes, k=5, limit=30)


def heatmap_rows(tax, classes, emb, key, kind, template) -> list[int]:
    """Which classes the heatmap shows: all when few, else a branch (in parts of HEATMAP_MAX) or a
    category's neighbourhood. A note always says what is shown and how to see the rest."""
    if len(classes) <= HEATMAP_MAX:
        return list(range(len(classes)))
    paths = [tax.path_str(int(c)) for c in classes]
    mode = st.radio(f"{len(classes):,} categories are too many for one heatmap. Show", ["A branch", "A category's neighbourhood"],
                    horizontal=True, key="hm_mode")
    if mode == "A branch":
        sizes = branch_sizes(paths)
        options = sizes.index.tolist()
        if st.session_state.get("hm_branch") not in options:
            st.session_state["hm_branch"] = default_branch(sizes, HEATMAP_MAX)
        c = st.columns([3, 1])
        branch = c[0].selectbox("Branch (second level; branches of a single category are left out)", options, key="hm_branch",
                                format_func=lambda b: f"{b} ({sizes[b]:,} categories)")
        rows = [i for i, p in enumerate(paths) if p == branch or p.startswith(branch + " > ")]
        parts = -(-len(rows) // HEATMAP_MAX)
        if parts == 1:
            st.caption(f"All {len(rows):,} categories of {branch}.")
            return rows
        part = c[1].selectbox("Part", range(parts), key="hm_part", format_func=lambda i: f"{i + 1} of {parts}")
        part = min(part, parts - 1)
        shown = rows[part * HEATMAP_MAX:(part + 1) * HEATMAP_MAX]
        st.caption(f"{branch} has {len(rows):,} categories; showing {part * HEATMAP_MAX + 1}-{part * HEATMAP_MAX + len(shown)} "
                   f"in taxonomy order. Choose another part to see the rest, or a category's neighbourhood.")
        return shown
    centre = st.selectbox("Category", range(len(classes)), format_func=paths.__getitem__, key="hm_centre")
    n = min(NEIGHBOURHOOD, len(classes) - 1)
    idx, _ = neighbours(key, kind, template, emb, n)
    st.caption(f"{paths[centre]} and its {n} most similar categories, in taxonomy order.")
    return sorted([centre, *idx[centre].tolist()])


def heatmap(sub: np.ndarray, paths: list[str]) -> go.Figure:
    """Short names on the axes, full paths and the similarity on hover, one row about 16 px high."""
    labels = short_labels(paths)
    hover = [[f"{a}<br>{b}" for b in paths] for a in paths]
    fig = go.Figure(go.Heatmap(z=sub, x=labels, y=labels, customdata=hover, colorscale="Viridis", zmin=float(sub.min()), zmax=1.0,
                               colorbar={"title": "similarity"},
                               hovertemplate="%{customdata}<br>similarity %{z:.3f}<extra></extra>"))
    show = len(paths) <= 80
    fig.update_xaxes(showticklabels=show, tickangle=-45, type="category")
    fig.update_yaxes(showticklabels=show, autorange="reversed", type="category")
    fig.update_layout(height=int(min(max(16 * len(paths), 300), 1400) + (160 if show else 40)), margin=dict(t=10, l=10, r=10, b=10))
    return fig


def page() -> None:
    st.title("Similarity")
    space = label_space("there is nothing to compare.")
    if space is None:
        return
    tax, key, kind, template, classes, emb, paths = (space.tax, space.key, space.encoder, space.template, space.classes,
                                                     space.emb, space.paths)
    tops = [tax.path(int(c))[0] for c in classes]

    st.subheader("Cosine similarity, ordered by the taxonomy")
    rows = heatmap_rows(tax, classes, emb, key, kind, template)
    st.plotly_chart(heatmap(emb[rows] @ emb[rows].T, [paths[i] for i in rows]), key="heatmap")

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
    st.caption("Suspicious pairs: close in meaning, far apart in the tree; candidates for mis-filed or ambiguously named "
               "categories. Ranked by suspicion = similarity x tree distance / the largest tree distance, so a pair comes "
               "first when it is both similar and far apart.")
    st.dataframe(pairs, hide_index=True)


guard(page)
