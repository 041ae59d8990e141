"""Tree drawing plan (core/taxonomy/view.py) and display text helpers (core/display.py), by hand and at scale."""

from __future__ import annotations

from core.display import plain, short_labels
from core.taxonomy.formats import load_taxonomy
from core.taxonomy.view import drawable_tree, leaves_under


def test_leaf_counts_and_levels_on_the_hand_worked_tree(small_tree):
    counts = dict(zip(small_tree.names, leaves_under(small_tree).tolist(), strict=True))
    assert counts == {"A": 3, "A1": 2, "a": 1, "b": 1, "A2": 1, "c": 1, "B": 1, "d": 1}
    one = drawable_tree(small_tree, 1)
    assert one.frame.name.tolist() == ["A", "B"] and one.frame.leaves.tolist() == [3, 1] and one.levels == 1
    assert "top 1 level" in one.note()
    assert len(drawable_tree(small_tree, 3).frame) == 8 and drawable_tree(small_tree, 3).note() == ""


def test_node_cap_drops_levels_then_keeps_the_largest_top_level_branches(small_tree):
    capped = drawable_tree(small_tree, 3, max_nodes=5)  # depth <= 2 is 5 nodes, depth 3 would be 8
    assert capped.levels == 2 and len(capped.frame) == 5 and "more than" in capped.note()
    flat = load_taxonomy(b"Shoes\nBags\nHats\n")
    widest = drawable_tree(flat, 1, max_nodes=2)
    assert len(widest.frame) == 2 and widest.cut


def test_a_200k_node_taxonomy_draws_a_few_thousand_segments():
    from synthetic_taxonomy import synthetic_paths

    tax = load_taxonomy("\n".join(synthetic_paths(170_000)).encode())
    assert len(tax) > 190_000
    drawing = drawable_tree(tax, 4)
    assert drawing.cut and len(drawing.frame) <= 4000 and drawing.levels < 4
    assert drawing.frame.leaves[drawing.frame.parent == ""].sum() == len(tax.leaves)  # sizes stay exact


def test_plain_text_is_not_markdown():
    assert plain("![t](http://127.0.0.1:9/t.png)") == r"\!\[t\]\(http\://127\.0\.0\.1\:9/t\.png\)"
    assert plain("**bold** <b>") == r"\*\*bold\*\* \<b\>"


def test_short_labels_are_unique_and_short():
    paths = ["Shoes > Boots > Ski", "Sports > Ski > Boots", "Shoes > Boots", "Bags > Totes"]
    assert short_labels(paths) == ["Ski", "Boots (Ski)", "Boots (Shoes)", "Totes"]
    assert short_labels(["A > X > Boots", "B > X > Boots"]) == ["Boots (A > X)", "Boots (B > X)"]
