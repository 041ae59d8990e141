"""Guaranteed-accuracy answers end to end: train stores the validation climbs and reports hacc@a,
coverage@a, leaf_rate@a and hAURC; `predict --target-accuracy` refits the threshold from them."""

import json
import shutil

import pandas as pd
import pytest

from core.evaluation import selective
from core.runs import store as runs
from core.runs import tables
from core.scale.sweep import metric_keys, parse_objectives
from core.training.predictor import Predictor
from tests.conftest import SAMPLE_PRODUCTS
from tests.test_cli_taxonomy import run_cli

KEYS = ("hacc@0.95", "coverage@0.95", "leaf_rate@0.95", "hAURC")


def hierarchically_correct(frame: pd.DataFrame) -> pd.Series:
    """The answer is the true path, one of its ancestors' paths, or no category."""
    return [a == "" or t == a or t.startswith(a + " > ") for a, t in zip(frame.answer, frame.true_label, strict=True)]


def test_train_reports_the_metrics_and_stores_the_validation_climbs(tree_run):
    run = runs.Run(tree_run["run_dir"])
    metrics = run.metrics()
    for key in KEYS:
        assert key in tree_run and key in metrics["val"] and key in tables.summary_row(run)
    assert 0 < tree_run["hAURC"] < 1 and 0 <= tree_run["leaf_rate@0.95"] <= 1
    (threshold,) = metrics["selective"]
    assert threshold["target_accuracy"] == 0.95 and threshold["confidence"] == 0.9
    assert threshold["calibration_items"] == metrics["n_calibration"] < metrics["n_val"] and threshold["calibration_bound"] >= 0.95
    stored = pd.read_parquet(run.path / selective.CLIMBS_FILE)
    assert (stored.split == "val").sum() == metrics["n_calibration"] and (stored.split == "test").sum() == metrics["n_test"]
    assert {"pred_index", "true_index", "p_1"} <= set(stored.columns)
    assert set(KEYS) <= set(tables.compare([run.path]).index)
    assert set(KEYS) <= set(metric_keys())
    assert parse_objectives("coverage@0.95:max,hAURC:min") == [("coverage@0.95", "max"), ("hAURC", "min")]


def test_refit_from_the_stored_climbs_reproduces_the_training_threshold(tree_run):
    predictor = Predictor.load(tree_run["run_dir"])
    refit = predictor.guarantee(0.95, 0.9)
    assert refit.to_dict() == pytest.approx(runs.Run(tree_run["run_dir"]).metrics()["selective"][0])
    assert predictor.guarantee(0.8, 0.9).theta <= refit.theta  # a lower target never needs more backing off


def test_predict_target_accuracy_answers_test_items_as_train_measured(tree_run, tmp_path):
    out = tmp_path / "scored.parquet"
    r = run_cli("predict", tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--max-rows", "1500", "--out", out,
                "--target-accuracy", "0.95", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["target_accuracy"] == 0.95 and summary["confidence"] == 0.9
    assert summary["threshold"] == pytest.approx(runs.Run(tree_run["run_dir"]).metrics()["selective"][0]["threshold"])
    scored = pd.read_parquet(out).set_index("id")
    assert {"answer", "answer_prob", "answer_depth", "pred_1"} <= set(scored.columns)
    assert ((scored.answer == "") == (scored.answer_depth == 0)).all()
    assert all(p == a or p.startswith(a + " > ") or a == "" for a, p in zip(scored.answer, scored.pred_1, strict=True))
    kept = scored.answer_depth > 0
    assert (scored.answer_prob[kept] >= summary["threshold"]).all() and (scored.answer_prob[~kept] == 1.0).all()
    assert summary["leaf_rate"] == pytest.approx((scored.answer == scored.pred_1).mean())
    assert summary["no_category"] == int((~kept).sum())
    test = runs.Run(tree_run["run_dir"]).predictions().set_index("id")
    mine = scored.loc[test.index].assign(true_label=test.true_label)
    assert pd.Series(hierarchically_correct(mine)).mean() == pytest.approx(tree_run["hacc@0.95"])
    assert (mine.answer == mine.pred_1).mean() == pytest.approx(tree_run["leaf_rate@0.95"])


def test_predict_without_a_target_has_no_answer_columns(tree_run, tmp_path):
    out = tmp_path / "plain.csv"
    data = tmp_path / "new.csv"
    pd.DataFrame({"id": ["a"], "title": ["leather hiking boots"]}).to_csv(data, index=False)
    r = run_cli("predict", tree_run["run_dir"], "--data", data, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    assert "answer" not in pd.read_csv(out).columns and "threshold" not in json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("extra", "message"), [
    (["--target-accuracy", "1.5"], "target_accuracy must be > 0 and < 1; got 1.5"),
    (["--target-accuracy", "0"], "target_accuracy must be > 0 and < 1; got 0"),
    (["--target-accuracy", "1"], "target_accuracy must be > 0 and < 1; got 1"),
    (["--confidence", "1.0"], "confidence must be > 0 and < 1; got 1"),
    (["--confidence", "-0.2"], "confidence must be > 0 and < 1; got -0.2"),
    (["--target-accuracy", "0.999", "--confidence", "0.99"], "validation items; a guaranteed accuracy of 0.999 at "
                                                             "confidence 0.99 needs at least 4603"),
])
def test_predict_bad_target_exits_2_with_one_message_and_writes_nothing(tree_run, tmp_path, extra, message):
    out = tmp_path / "scored.csv"
    r = run_cli("predict", tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--max-rows", "10", "--out", out, *extra)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()[-1:]) == 1 and r.stderr.count("error:") == 1
    assert not out.exists()


def test_predict_on_a_run_without_stored_climbs_says_to_retrain(tree_run, tmp_path):
    old = tmp_path / "old-run"
    shutil.copytree(tree_run["run_dir"], old)
    (old / selective.CLIMBS_FILE).unlink()
    before = sorted(p.name for p in old.iterdir())
    out = tmp_path / "scored.csv"
    r = run_cli("predict", old, "--data", SAMPLE_PRODUCTS, "--max-rows", "10", "--out", out, "--target-accuracy", "0.9")
    assert r.returncode == 2 and "predates guaranteed-accuracy answers" in r.stderr and "retrain it" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists() and sorted(p.name for p in old.iterdir()) == before


def test_a_run_reports_more_targets_on_request(tree_run):
    run = runs.Run(tree_run["run_dir"])
    stored = selective.climbs_from_frame(pd.read_parquet(run.path / selective.CLIMBS_FILE),
                                         Predictor.load(run.path).class_tree)
    test, val, thresholds, notes = selective.guaranteed_accuracy(stored, stored, selective.report_targets(0.9), 0.9)
    assert [t["target_accuracy"] for t in thresholds] == [0.9, 0.95] and not notes
    assert {"hacc@0.9", "coverage@0.9", "leaf_rate@0.9", *KEYS} == set(test) == set(val)
    assert test["hacc@0.9"] <= test["hacc@0.95"] and test["coverage@0.9"] >= test["coverage@0.95"]
    _, _, fitted, notes = selective.guaranteed_accuracy(stored, stored, [0.999], 0.99)
    assert not fitted and notes[0].startswith("hacc@0.999 not computed:")
