"""Taxonomy page: pick the sample or upload a taxonomy, read its validation report, explore the tree."""

from collections import Counter

import pandas as pd
import plotly.express as px
import streamlit as st

from core.display import plain
from core.taxonomy.formats import FORMATS, TableNotTaxonomy, paths_from_table
from core.taxonomy.view import drawable_tree
from pages.shared import current_taxonomy, guard, taxonomy_from_bytes

PLAIN_WORDS = {
    "created-ancestor": "ancestors were created because a path named them without a line of their own",
    "unknown-child": "sub-category references point at categories that appear nowhere else (ignored)",
    "child-mismatch": "child references disagree with the child's own path (the path wins)",
    "mixed-separators": "lines use a different path separator than the rest of the file",
    "duplicate-id": "categories are listed twice (the repeats are ignored)",
    "unknown-parent": "categories name a parent that does not exist (placed at the top level)",
    "empty-name": "categories have an empty name",
    "two-parents": "categories are given two different parents",
    "bad-line": "lines do not follow the file's format (skipped)",
    "bad-path": "entries have a path that does not end at themselves",
}


def source_picker() -> None:
    choice = st.radio("Taxonomy", ["Sample catalog", "Upload a file"], horizontal=True,
                      index=0 if st.session_state.get("taxonomy_source") is None else 1)
    if choice == "Sample catalog":
        st.session_state["taxonomy_source"] = None
        return
    cols = st.columns([3, 1])
    upload = cols[0].file_uploader("Taxonomy file: paths (A > B > C), Google taxonomy, CSV/TSV, nested JSON or Best Buy JSON",
                                   type=["txt", "csv", "tsv", "json"])
    fmt = cols[1].selectbox("Format", ["auto", *FORMATS], help="Detected from the content unless you choose one.")
    if upload is not None:
        data, name = upload.getvalue(), upload.name
        fmt = None if fmt == "auto" else fmt
        try:
            with st.spinner(f"Reading {name}…"):  # the Google taxonomy takes seconds
                taxonomy_from_bytes(data, fmt, name)  # a readable error for a bad file, before anything is replaced
        except TableNotTaxonomy as exc:
            st.warning(plain(exc), icon=":material/table:")
            column = st.selectbox("Column that holds the category paths", exc.columns, index=None, key="taxonomy_column")
            if column is None:
                return
            data, fmt, name = paths_from_table(data, column), "paths", f"{name} (column {column})"
            taxonomy_from_bytes(data, fmt, name)
        st.session_state["taxonomy_source"] = {"bytes": data, "format": fmt, "name": name}


def validation_report(tax) -> None:
    counts = Counter(p.code for p in tax.problems)
    if not counts:
        st.success("No problems found: every category has a unique id, one parent, and a name.")
        return
    st.warning("The taxonomy loaded, with these findings:\n" + "\n".join(
        f"- **{n}** {PLAIN_WORDS.get(code, code)}" for code, n in counts.most_common()))
    with st.expander(f"All {len(tax.problems)} findings, with their line or id"):
        st.dataframe(pd.DataFrame([p.to_dict() for p in tax.problems]), hide_index=True)


def tree_view(tax) -> None:
    kind = st.segmented_control("Tree view", ["Sunburst", "Icicle", "Treemap"], default="Sunburst")
    # a flat taxonomy has one level: a slider from 1 to 1 is refused by Streamlit, and there is nothing to choose
    levels = st.slider("Levels shown", 1, tax.max_depth, min(3, tax.max_depth)) if tax.max_depth > 1 else 1
    drawing = drawable_tree(tax, levels)
    if drawing.cut:
        st.caption(drawing.note())
    draw = {"Sunburst": px.sunburst, "Icicle": px.icicle, "Treemap": px.treemap}[kind or "Sunburst"]
    fig = draw(drawing.frame, ids="id", names="name", parents="parent", values="leaves", branchvalues="total",
               hover_data={"path": True, "leaves": False})
    fig.update_traces(hovertemplate="%{customdata[0]}<br>%{value} leaf categories<extra></extra>")
    fig.update_layout(margin=dict(t=10, l=10, r=10, b=10), height=560)
    st.plotly_chart(fig, key="tree")


def statistics(tax, frame: pd.DataFrame) -> None:
    cols = st.columns(2)
    depth_counts = frame.groupby("depth").size().rename("categories").reset_index()
    cols[0].plotly_chart(px.bar(depth_counts, x="depth", y="categories", title="Categories per depth"), key="depth")
    fanout = pd.Series([len(tax.children(i)) for i in range(len(tax))])
    fanout = fanout[fanout > 0].rename("children").to_frame()
    cols[1].plotly_chart(px.histogram(fanout, x="children", title="Fan-out of internal categories"), key="fanout")


def search(tax) -> None:
    query = st.text_input("Search a category", placeholder="e.g. boots")
    if query:
        hits = tax.search(query)
        if hits:
            st.dataframe(pd.DataFrame({"category": [tax.names[i] for i in hits], "path": [tax.path_str(i) for i in hits],
                                       "depth": [int(tax.depth[i]) for i in hits], "id": [tax.ids[i] for i in hits]}), hide_index=True)
        else:
            st.info(f"No category name contains '{plain(query)}'.")


def page() -> None:
    st.title("Taxonomy")
    guard(source_picker)
    tax, name = current_taxonomy()
    s = tax.summary()
    st.caption(f"Active taxonomy: **{plain(name)}** (format: {s['format']})")
    m = st.columns(4)
    m[0].metric("Categories", f"{s['nodes']:,}")
    m[1].metric("Leaf categories", f"{s['leaves']:,}")
    m[2].metric("Top-level branches", s["roots"])
    m[3].metric("Depth", s["max_depth"])
    validation_report(tax)
    frame = tax.to_frame()
    tree_view(tax)
    statistics(tax, frame)
    search(tax)


page()
