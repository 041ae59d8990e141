"""Similarity and Smoothing pages on a taxonomy too large for one heatmap (AppTest)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TIMEOUT = 300
# 231 leaves: a 170-leaf branch (more than one heatmap), a 60-leaf branch, and a branch of one leaf
PATHS = ([f"Sporting Goods > Outdoor Recreation > Outdoor gear item {i}" for i in range(170)]
         + [f"Home > Kitchen > Kitchen tool {i}" for i in range(60)] + ["Animals > Live Animals"])


@pytest.fixture
def at() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "similarity.py"), default_timeout=TIMEOUT)
    at.session_state["taxonomy_source"] = {"bytes": "\n".join(PATHS).encode(), "format": None, "name": "shop.txt"}
    at.session_state["encoder_kind"] = "minilm"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def heatmap(at: AppTest) -> dict:
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap")
    return spec


def test_heatmap_opens_on_the_largest_branch_that_fits_and_never_a_single_leaf(at):
    branch = at.selectbox(key="hm_branch")
    assert "Animals > Live Animals" not in branch.options and not any(o.startswith("Animals") for o in branch.options)
    assert branch.value == "Home > Kitchen"  # 60 leaves fit whole; the 170-leaf branch does not
    assert len(heatmap(at)["data"][0]["y"]) == 60
    assert any("All 60 categories of Home > Kitchen" in c.value for c in at.caption)


def test_a_branch_larger_than_the_heatmap_says_what_is_shown_and_offers_the_rest(at):
    at.selectbox(key="hm_branch").select("Sporting Goods > Outdoor Recreation").run()
    assert any("has 170 categories; showing 1-150" in c.value for c in at.caption)
    at.selectbox(key="hm_part").select(1).run()
    assert len(heatmap(at)["data"][0]["y"]) == 20
    assert any("showing 151-170" in c.value for c in at.caption)


def test_neighbourhood_heatmap_is_labelled_with_short_names_and_sized_to_its_rows(at):
    at.radio(key="hm_mode").set_value("A category's neighbourhood").run()
    at.selectbox(key="hm_centre").select(1).run()  # classes in path order: Home > Kitchen > Kitchen tool 0
    spec = heatmap(at)
    trace = spec["data"][0]
    assert len(trace["y"]) == 41 and "Kitchen tool 0" in trace["y"]
    assert all(" > " not in y for y in trace["y"])  # leaf names; the full path is on hover
    assert "similarity" in trace["hovertemplate"] and " > " in str(trace["customdata"][0][0])
    assert spec["layout"]["height"] >= 16 * 41


def test_smoothing_side_by_side_charts_fit_their_half_width():
    at = AppTest.from_file(str(ROOT / "pages" / "smoothing.py"), default_timeout=TIMEOUT)
    at.session_state["encoder_kind"] = "minilm"
    at.run()
    at.selectbox(key="smooth_category").select("Footwear > Boots > Rain Boots").run()
    assert not at.exception, [e.value for e in at.exception]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    side = [c for c in charts if c["layout"]["title"]["text"] == "semantic" or c["layout"]["title"]["text"].startswith("tree")]
    assert len(side) == 2
    for spec in side:
        labels = [y for trace in spec["data"] for y in trace["y"]]
        assert "Rain Boots" in labels and all(" > " not in y for y in labels)  # leaf names, full path on hover
        assert spec["layout"]["legend"]["orientation"] == "h" and not spec["layout"].get("annotations")
    assert any(c.value.startswith("Every other class") for c in at.caption)  # the tree note, below its chart
