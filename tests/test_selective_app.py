"""Guaranteed-accuracy answers in the app: Categorize explains the back-off, Errors shows the curve and
the groups per level, on a copy of the shared finished run."""

import shutil

import pytest

from core.evaluation import selective
from core.runs import store as runs
from tests.conftest import app_page as page


def slider(at, label):
    return next(s for s in at.slider if s.label == label)


def test_categorize_shows_how_far_the_answer_backed_off_and_why(good_store):
    at = page("categorize")
    at.text_input[0].set_value("Waterproof leather hiking boots with a lug sole")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    steps = at.dataframe[-1].value
    assert list(steps.columns) == ["depth", "category", "subtree probability", "verdict"]
    assert steps["category"].iloc[0].startswith("Footwear > Boots") and steps["verdict"].iloc[-1] == "answer"
    assert steps["subtree probability"].is_monotonic_increasing and steps["depth"].is_monotonic_decreasing
    assert slider(at, "Target accuracy").value == 0.95
    strict = slider(at, "Target accuracy").set_value(0.99).run()  # the product stays shown while the slider moves
    assert not strict.exception, [e.value for e in strict.exception]
    answered = [m.value for m in (*strict.info, *strict.warning, *strict.success)]
    assert any("backed off" in v or "left for a person" in v or "the top answer itself" in v or "needs at least" in v
               for v in answered), answered


def test_errors_shows_the_curve_and_each_level_group_at_the_target(good_store, tree_run):
    shutil.copytree(tree_run["run_dir"], good_store / "20980101-000000-baseline")
    at = page("errors")
    assert any(s.value == "Categorizing at a guaranteed accuracy" for s in at.subheader)
    run = runs.Run(good_store / "20990101-000000-good")
    counts = next(d.value for d in at.dataframe if "group" in d.value.columns and "items" in d.value.columns)
    assert counts["items"].sum() == run.metrics()["n_test"]
    leaf = counts.set_index("group")["items"].get(selective.GROUP_LEAF, 0)
    assert leaf / counts["items"].sum() == pytest.approx(tree_run["leaf_rate@0.95"])
    group = at.selectbox(key="errors_answer_group")
    assert group.options == counts["group"].tolist()
    shown = next(d.value for d in at.dataframe if "answer_correct" in d.value.columns)  # the group browsed
    assert "answer" in shown and len(shown) == min(100, counts["items"].iloc[0])
    assert any(b.label.startswith("Export ") for b in at.get("download_button"))
    next(s for s in at.selectbox if s.label == "Baseline run beside it").select_index(1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert sum("hAURC" in c.value for c in at.caption) == 1 and "20980101-000000-baseline" in " ".join(c.value for c in at.caption)
