"""Runs as objects: calibrated, saved models that `predict` reloads in a fresh process; a store that
survives damaged files and killed processes; `run` that never overwrites results."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from core.runs import store as runs
from tests.conftest import ROOT, SAMPLE_PRODUCTS, TRAIN
from tests.test_cli_taxonomy import run_cli

pytestmark = pytest.mark.slow  # every test trains (tree_run) or starts `python -m core`


@pytest.fixture(scope="module")
def store(tree_run):
    return runs.Run(tree_run["run_dir"]).path.parent


def files(run_dir):
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def test_train_reports_calibration_and_saves_what_predict_needs(tree_run):
    assert {"ece", "ece_raw", "temperature"} <= set(tree_run)
    assert tree_run["ece"] < tree_run["ece_raw"] and tree_run["ece"] < 0.1
    run = runs.Run(tree_run["run_dir"])
    assert run.model_info()["temperature"] == pytest.approx(tree_run["temperature"])
    assert run.model_info()["encoder_identity"] == "minilm:all-MiniLM-L6-v2"
    assert run.metrics()["val"]["top1"] > 0.5  # validation-split metrics are kept too
    assert len(run.classes()) == len(run.class_nodes()) == run.metrics()["n_classes"]
    preds = run.predictions()
    assert {"risk", "crm_pred_1", "prob_1"} <= set(preds.columns)


def test_predict_in_a_fresh_process_reproduces_the_test_predictions(tree_run, tmp_path):
    out = tmp_path / "scored.parquet"
    r = run_cli("predict", tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--max-rows", "1500", "--out", out, "--json",
                "--chunk-rows", "400")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 1500 and "all-MiniLM-L6-v2" in r.stderr
    scored = pd.read_parquet(out).set_index("id")
    assert list(scored.columns[:2]) == ["pred_1", "prob_1"] and {"crm_pred_1", "risk", "review"} <= set(scored.columns)
    test = runs.Run(tree_run["run_dir"]).predictions().set_index("id")
    mine = scored.loc[test.index]
    assert (mine.pred_1 == test.pred_1).all()
    assert np.abs(mine.prob_1.to_numpy() - test.prob_1.to_numpy()).max() <= 1e-6
    assert np.abs(mine.risk.to_numpy() - test.risk.to_numpy()).max() <= 1e-5  # sum of p_j * d (d up to 4)
    assert (scored.review == (scored.risk > 0.5)).all()


def test_predict_writes_csv_and_jsonl_formula_safe(tree_run, tmp_path):
    data = tmp_path / "new.csv"
    pd.DataFrame({"id": ["=1+1", "b"], "title": ["leather hiking boots", "chef knife 8 inch"]}).to_csv(data, index=False)
    for suffix in ("csv", "jsonl"):
        out = tmp_path / f"scored.{suffix}"
        r = run_cli("predict", tree_run["run_dir"], "--data", data, "--out", out, "--top-k", "3")
        assert r.returncode == 0, r.stderr
        frame = pd.read_csv(out, dtype=str) if suffix == "csv" else pd.read_json(out, lines=True, dtype=False)
        assert len(frame) == 2 and "pred_3" in frame and "pred_4" not in frame
    assert pd.read_csv(tmp_path / "scored.csv", dtype=str).id.tolist() == ["'=1+1", "b"]


def test_predict_bad_inputs_exit_2_and_write_nothing(tree_run, store, tmp_path):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("id,title\n")
    queued = runs.RunStore(store).create({"targets": "onehot"})
    broken_encoder = tmp_path / "copy"
    subprocess.run(["cp", "-r", tree_run["run_dir"], broken_encoder], check=True)
    info = json.loads((broken_encoder / "model.json").read_text())
    (broken_encoder / "model.json").write_text(json.dumps(info | {"encoder_identity": "clip:ViT-B-32:file:0123abcd"}))
    cases = [
        ([tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--text-column", "no_such"], "text column 'no_such' is not in the data"),
        ([tree_run["run_dir"], "--data", header_only], "empty.csv holds no rows"),
        ([queued.path, "--data", SAMPLE_PRODUCTS], "is queued; only a finished (done) run"),
        ([tmp_path, "--data", SAMPLE_PRODUCTS], "is not a run folder"),
        ([broken_encoder, "--data", SAMPLE_PRODUCTS], "trained with CLIP ViT-B-32 from a local checkpoint"),
        ([tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--out", tmp_path / "x.xlsx"], "--out must end in"),
    ]
    for args, message in cases:
        out = tmp_path / "never.parquet"
        r = run_cli("predict", *args, *([] if "--out" in args else ["--out", out]))
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_run_refuses_a_finished_run_and_leaves_it_byte_identical(tree_run):
    run_dir = runs.Run(tree_run["run_dir"]).path
    before = files(run_dir)
    r = run_cli("run", run_dir)
    assert r.returncode == 2 and "is done, not queued" in r.stderr and "Traceback" not in r.stderr
    assert files(run_dir) == before


def test_damaged_runs_are_marked_and_the_rest_stay_usable(tree_run, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    healthy, bad_status, bad_metrics = (store / n for n in ("c-healthy", "a-bad-status", "b-bad-metrics"))
    for d in (healthy, bad_status, bad_metrics):
        subprocess.run(["cp", "-r", tree_run["run_dir"], d], check=True)
    (bad_status / "status.json").write_text("1")
    (bad_metrics / "metrics.json").write_text('{"plain": null}')
    r = run_cli("compare", healthy)
    assert r.returncode == 0, r.stderr
    r = run_cli("compare", bad_metrics)
    assert r.returncode == 2 and "metrics.json" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("runs", store, "--json")
    assert r.returncode == 0, r.stderr
    states = {row["run_id"]: row["state"] for row in json.loads(r.stdout.strip().splitlines()[-1])}
    assert states == {"c-healthy": "done", "a-bad-status": "damaged", "b-bad-metrics": "damaged"}
    assert [r.name for r in runs.RunStore(store).finished()] == ["c-healthy"]
    for bad in ("../", str(tmp_path)):
        r = run_cli("compare", bad)
        assert r.returncode == 2 and "not a run folder" in r.stderr


def test_a_killed_training_is_reported_interrupted(tmp_path):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    args = [a for a in TRAIN if a != "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "core", *map(str, args), "--targets", "onehot", "--epochs", "200",
                             "--patience", "0", "--out", str(tmp_path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        listed = runs.RunStore(tmp_path).runs()
        if listed and listed[0].history().shape[0] >= 1:
            break
        time.sleep(0.5)
    assert listed and listed[0].state == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    r = run_cli("runs", tmp_path, "--json")
    (row,) = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["state"] == "interrupted" and "is gone" in row["error"]
    r = run_cli("run", listed[0].path)
    assert r.returncode == 2 and "is interrupted, not queued" in r.stderr


def test_alternatives_name_each_runner_ups_tree_distance_from_the_answer(small_tree):
    """What the Categorize page lists for a typed product; distances by hand (METHOD.md: max depth - lca depth)."""
    from core.training.predictor import alternatives

    answer = pd.Series({"id": "typed", "pred_1": "A > A1 > a", "prob_1": 0.6, "pred_2": "A > A1 > b", "prob_2": 0.3,
                        "pred_3": "B > d", "prob_3": 0.1, "risk": 0.7, "review": False})
    table = alternatives(small_tree, answer)
    assert table["rank"].tolist() == [1, 2, 3] and table["category"].tolist() == ["A > A1 > a", "A > A1 > b", "B > d"]
    assert table["probability"].tolist() == [0.6, 0.3, 0.1]
    assert table["tree_distance"].tolist() == [0, 1, 3]  # itself; a sibling (lca A1 at depth 2); another root
