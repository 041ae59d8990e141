"""`compare --baseline`: paired-bootstrap intervals and per-branch changes between two runs' files."""

from __future__ import annotations

import json

import pandas as pd

from core import files
from core.cli.main import main
from core.runs import store as runs
from core.runs.status import set_status


def run_with(store: runs.RunStore, name: str, true: list[str], pred: list[str], tree_distance: list[int]) -> str:
    run_dir = store.create({"targets": name}, name=name).path
    frame = pd.DataFrame({"id": [f"i{n}" for n in range(len(true))], "true_label": true, "pred_1": pred,
                          "correct": [t == p for t, p in zip(true, pred, strict=True)], "tree_distance": tree_distance})
    runs.write_parquet(run_dir / "predictions.parquet", frame)
    files.write_json(run_dir / "metrics.json", {"plain": {"top1": 0.0}, "crm": {}})
    set_status(run_dir, "done")
    return str(run_dir)


def test_baseline_comparison_prints_intervals_and_branches(tmp_path, capsys):
    store = runs.RunStore(tmp_path / "runs")
    # 200 items; the candidate fixes the 50 'A > A1 > b' mistakes (sibling, distance 1) and keeps the rest
    true = ["A > A1 > b"] * 100 + ["B > d"] * 100
    base_pred = ["A > A1 > a"] * 50 + ["A > A1 > b"] * 50 + ["B > d"] * 90 + ["A > A2 > c"] * 10
    cand_pred = ["A > A1 > b"] * 100 + ["B > d"] * 90 + ["A > A2 > c"] * 10
    dist = lambda pred: [0 if p == t else (1 if p.startswith("A > A1") else 2) for p, t in zip(pred, true, strict=True)]  # noqa: E731
    base = run_with(store, "base", true, base_pred, dist(base_pred))
    cand = run_with(store, "cand", true, cand_pred, dist(cand_pred))
    code = main(["compare", cand, "--baseline", base, "--json", "--resamples", "1000"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    top1 = report["runs"][cand.rsplit("/", 1)[1]]["metrics"]["top1"]
    assert (top1["baseline"], top1["candidate"]) == (0.7, 0.95) and abs(top1["diff"] - 0.25) < 1e-12
    assert 0.18 < top1["lo"] < 0.25 < top1["hi"] < 0.32
    severity = report["runs"][cand.rsplit("/", 1)[1]]["metrics"]["mistake_severity"]
    assert abs(severity["baseline"] - 70 / 60) < 1e-9 and severity["candidate"] == 2.0
    assert "hdist@5           n/a" in out  # top-1-only tables
    assert "better A > A1" in out.replace("  ", " ").replace("  ", " ")
    branches = {row["path"]: row["verdict"] for row in report["runs"][cand.rsplit("/", 1)[1]]["subtrees"]}
    assert branches == {"A": "better", "A > A1": "better", "B": "same", "B > d": "same"}


def test_runs_on_different_items_are_refused(tmp_path, capsys):
    store = runs.RunStore(tmp_path / "runs")
    a = run_with(store, "a", ["B > d", "B > d"], ["B > d", "B > d"], [0, 0])
    b = run_with(store, "b", ["B > d"], ["B > d"], [0])
    code = main(["compare", b, "--baseline", a])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: the runs were evaluated on different items") and len(err.splitlines()) == 1
