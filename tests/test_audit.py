"""Catalog audit: K stratified folds, every product scored by a model that never trained on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli.main import main
from core.runs import schema
from core.training import audit
from tests.conftest import SAMPLE_PRODUCTS, SAMPLE_TAXONOMY


def test_fold_plan_scores_every_item_once_and_never_trains_on_it():
    labels = np.repeat(np.arange(6), [40, 25, 9, 4, 2, 1])  # tiny classes included
    plan = audit.fold_plan(labels, folds=4, val_fraction=0.1, seed=0)
    scored = np.concatenate([f.score for f in plan])
    assert sorted(scored.tolist()) == list(range(len(labels)))
    for f in plan:
        assert not set(f.score) & (set(f.train) | set(f.val))
        assert len(set(f.train) | set(f.val) | set(f.score)) == len(labels)
    # stratified: the big class is spread evenly over the folds
    assert sorted(int((labels[f.score] == 0).sum()) for f in plan) == [10, 10, 10, 10]
    with pytest.raises(ValueError, match="folds must be between 2"):
        audit.fold_plan(labels, folds=1, val_fraction=0.1, seed=0)


@pytest.mark.slow
def test_audit_cli_scores_every_product_out_of_fold(tmp_path, capsys, monkeypatch):
    seen = []
    real = audit.train_model

    def spy(x, mask, slices, y, train_idx, val_idx, *args, **kwargs):
        seen.append(set(train_idx.tolist()) | set(val_idx.tolist()))
        return real(x, mask, slices, y, train_idx, val_idx, *args, **kwargs)

    monkeypatch.setattr(audit, "train_model", spy)
    runs = tmp_path / "runs"
    code = main(["audit", "--data", str(SAMPLE_PRODUCTS), "--label-column", "category_path", "--text-column", "title",
                 "--id-column", "id", "--taxonomy", str(SAMPLE_TAXONOMY), "--max-rows", "600", "--epochs", "2",
                 "--encoder", "minilm", "--folds", "3", "--out", str(runs), "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    run_dir = runs / result["run_id"]
    assert json.loads((run_dir / "config.json").read_text())["kind"] == "audit"
    frame = schema.read(run_dir / "predictions.parquet")
    assert len(frame) == 600 and frame["id"].is_unique and sorted(frame["fold"].unique()) == [0, 1, 2]
    assert len(seen) == 3
    position = {i: n for n, i in enumerate(frame["id"])}
    for k, trained_on in enumerate(seen):
        scored = {position[i] for i in frame.loc[frame["fold"] == k, "id"]}
        assert scored and not scored & trained_on
    assert {"triage", "label_issue", "label_quality", "audit_priority"} <= set(frame.columns)
    assert (frame.loc[frame["correct"], "audit_priority"] == 0).all()
    assert f"{int(frame['label_issue'].sum())} likely label errors among 600 products" in out


def test_audit_refuses_bad_folds(tmp_path, capsys):
    code = main(["audit", "--data", str(SAMPLE_PRODUCTS), "--label-column", "category_path", "--text-column", "title",
                 "--max-rows", "50", "--folds", "1", "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and "--folds must be between 2" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
