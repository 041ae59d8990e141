"""Smoothing page: tune the soft targets and watch a category's target distribution change."""

import io

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from core import settings
from core.data.export import write_csv
from core.display import short_labels
from core.labels.kinds import TARGET_KINDS
from core.labels.kinds import kind as target_kind
from core.labels.targets import build_targets, effective_neighbors, effective_neighbors_curve, targets_frame
from pages.shared import (
    SLIDER_HI,
    class_distances,
    default,
    label_space,
    neighbours,
    persistent,
    remember,
    remembered,
    setting_widget,
)

SHOWN_KINDS = [key for key, kind in TARGET_KINDS.items() if kind.smooths]  # one-hot has no distribution worth drawing
TEMPERATURES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
SHOWN = 20


@st.cache_resource(show_spinner="Building targets…", max_entries=16)
def cached_targets(key, enc, template, kind, alpha, temperature, k, beta, mix, _emb, _dist):
    return build_targets(kind, embeddings=_emb, distance=_dist if target_kind(kind).tree else None, alpha=alpha,
                         temperature=temperature, k=k, beta=beta, mix=mix, n_classes=len(_emb))


def bar(targets, chosen: int, paths: list[str], title: str, key: str):
    """The chosen class's target row, largest weights first: short names on the axis (full paths on
    hover), the legend above the plot and the 'every other class' weight below it, so neither covers a bar."""
    idx, val = targets.sparse_row(chosen)
    shown = [paths[i] for i in idx[:SHOWN]]
    frame = pd.DataFrame({"category": short_labels(shown), "path": shown, "target": val[:SHOWN]})
    frame["role"] = np.where(frame.path == paths[chosen], "true class", "neighbour")
    fig = px.bar(frame, x="target", y="category", color="role", orientation="h", title=title, log_x=True, hover_name="path",
                 hover_data={"category": False, "role": False}, color_discrete_map={"true class": "#1f77b4", "neighbour": "#ff7f0e"})
    # the 'every other class' weight goes in the axis title: an annotation under the axis covered the title
    rest = f" (every other class: {float(targets.rows([chosen])[0].min()):.2e})" if target_kind(targets.kind).floor else ""
    fig.update_layout(yaxis={"categoryorder": "total ascending", "title": None}, xaxis={"nticks": 5, "title": "target" + rest},
                      height=170 + 24 * len(frame), margin=dict(l=10, r=10, t=70, b=50),
                      legend=dict(orientation="h", x=0, y=1.0, xanchor="left", yanchor="bottom", title=None))
    st.plotly_chart(fig, key=key)


def page() -> None:
    st.title("Smoothing")
    space = label_space("smoothing needs more.")
    if space is None:
        return
    tax, key, enc, template, classes, emb, paths = (space.tax, space.key, space.encoder, space.template, space.classes,
                                                    space.emb, space.paths)
    c = st.columns([2, 1, 1, 1, 1, 1])
    k_max = min(SLIDER_HI["k"], len(classes) - 1)
    kind = setting_widget("targets", c[0], key=persistent("targets", default("targets")), options=SHOWN_KINDS)
    reads = target_kind(kind).reads  # a setting this kind ignores is shown greyed out
    alpha = setting_widget("alpha", c[1], key=persistent("alpha", default("alpha")), slider=True, disabled="alpha" not in reads)
    temperatures = sorted(set(TEMPERATURES) | {float(st.session_state.get("temperature", remembered("temperature", default("temperature"))))})
    temperature = c[2].select_slider(settings.get("temperature").label, temperatures,
                                     key=persistent("temperature", default("temperature")),
                                     disabled="temperature" not in reads, help=settings.get("temperature").help)
    k = setting_widget("k", c[3], key=persistent("k", min(default("k"), k_max)), slider=True, hi=k_max,
                       disabled="k" not in reads)
    beta = setting_widget("beta", c[4], key=persistent("beta", default("beta")), slider=True, disabled="beta" not in reads)
    mix = setting_widget("mix", c[5], key=persistent("mix", default("mix")), slider=True, disabled="mix" not in reads)
    remember(*settings.representation_settings())

    chosen = st.selectbox("Category", range(len(classes)), format_func=paths.__getitem__, key="smooth_category")
    dist = class_distances(key, tax)
    targets = cached_targets(key, enc, template, kind, alpha, temperature, k, beta, mix, emb, dist)
    bar(targets, chosen, paths, f"Target distribution when the true class is {tax.names[int(classes[chosen])]}", "target_bar")
    st.caption(f"Effective number of neighbours sharing the mass: {effective_neighbors(targets, chosen):.2f}")

    nb_idx, nb_sim = neighbours(key, enc, template, emb, k)
    curve = effective_neighbors_curve(nb_sim[chosen], TEMPERATURES)
    fig = px.line(pd.DataFrame({"temperature": TEMPERATURES, "effective neighbours": curve}), x="temperature",
                  y="effective neighbours", log_x=True, markers=True, title=f"Effective neighbours (exp entropy) vs temperature, k = {k}")
    fig.add_vline(x=temperature, line_dash="dot")
    st.plotly_chart(fig, key="eff_curve")
    st.markdown("**Semantic and tree targets side by side**")
    side = st.columns(2)
    semantic = cached_targets(key, enc, template, "semantic", alpha, temperature, k, beta, mix, emb, None)
    tree = cached_targets(key, enc, template, "tree", alpha, temperature, k, beta, mix, emb, dist)
    with side[0]:
        bar(semantic, chosen, paths, "semantic", "side_semantic")
    with side[1]:
        bar(tree, chosen, paths, f"tree, β = {beta}", "side_tree")

    st.subheader("Export these targets")
    fmt = st.radio("Format", ["CSV", "Parquet"], horizontal=True)
    if st.button("Prepare the export"):
        # seconds on a large taxonomy (the Google one: about 236,000 rows, 41 MB of CSV): say what is happening
        with st.status(f"Preparing the {fmt} export of {len(paths):,} categories' targets…") as status:
            frame = targets_frame(targets, paths, min_weight=1e-6, max_per_row=50)
            if fmt == "CSV":
                data = write_csv(frame)
            else:
                buffer = io.BytesIO()
                frame.to_parquet(buffer, index=False)
                data = buffer.getvalue()
            status.update(label=f"Export ready: {len(frame):,} rows, {len(data) / 1e6:.1f} MB", state="complete")
        st.download_button(f"Download {len(frame):,} rows ({fmt})", data, file_name=f"targets-{kind}.{fmt.lower()}",
                           mime="text/csv" if fmt == "CSV" else "application/octet-stream", on_click="ignore")

page()
