"""Taxonomy page defects: levels shown, a flat taxonomy, a very large taxonomy, user text shown as text."""

from __future__ import annotations

import json
import sys

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from synthetic_taxonomy import synthetic_paths  # noqa: E402

TIMEOUT = 300


def page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "taxonomy.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].upload(name, data, "text/plain").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def tree_trace(at: AppTest) -> dict:
    chart = next(c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] in ("sunburst", "icicle", "treemap"))
    return json.loads(chart.proto.spec)["data"][0]


def rings(trace: dict) -> int:
    """Levels the browser will draw: the depth of the deepest drawn id, capped by maxdepth."""
    parent = dict(zip(trace["ids"], trace["parents"], strict=True))

    def depth(i: str) -> int:
        return 1 if not parent[i] else 1 + depth(parent[i])

    deepest = max(depth(i) for i in trace["ids"])
    return min(deepest, trace.get("maxdepth", deepest) if trace.get("maxdepth", -1) > 0 else deepest)


def test_levels_shown_draws_exactly_that_many_rings():
    at = page()
    for levels in (1, 3, 4):
        at.slider[0].set_value(levels).run()
        trace = tree_trace(at)
        assert rings(trace) == levels
        assert trace["branchvalues"] == "total"  # wedge sizes are the leaves under each node, drawn levels or not


def test_flat_taxonomy_renders_without_a_levels_slider():
    at = upload(page(), "flat.txt", b"Shoes\nBags\nHats\n")
    assert not at.error
    assert not at.slider and any("flat taxonomy" in c.value for c in at.caption)
    assert sorted(tree_trace(at)["labels"]) == ["Bags", "Hats", "Shoes"]


def test_large_taxonomy_is_drawn_capped_and_says_so():
    at = upload(page(), "big.txt", "\n".join(synthetic_paths(30_000)).encode())
    trace = tree_trace(at)
    assert len(trace["ids"]) <= 4000
    assert rings(trace) == 2  # three levels would be over 4,000 segments
    assert any("Drawing" in c.value and "2 of the 3 levels" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")[0].proto.spec) < 1_000_000


def test_user_text_in_a_fatal_error_is_shown_as_text():
    image = "![t](http://127.0.0.1:9/t.png)"
    at = upload(page(), "evil.csv", f"id,parent_id,name\n{image},B,A\nB,{image},C\n".encode())
    (error,) = at.error
    assert "cycle" in error.value
    assert image not in error.value and r"\!\[t\]\(http\:" in error.value  # markdown would make it an image
