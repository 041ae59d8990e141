"""Catalog audit: K stratified folds, every product scored by a model that never trained on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli.main import main
from core.evaluation import schema
from core.runs.status import RunError, set_status
from core.runs.store import Run, RunStore
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
                 "--id-column", "id", "--taxonomy", str(SAMPLE_TAXONOMY), "--max-rows", "600", "--epochs", "2", "--members", "1",
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


AUDIT = ["audit", "--data", str(SAMPLE_PRODUCTS), "--label-column", "category_path", "--text-column", "title", "--id-column",
         "id", "--taxonomy", str(SAMPLE_TAXONOMY), "--max-rows", "300", "--epochs", "1", "--members", "1", "--encoder", "minilm", "--folds", "2",
         "--quiet"]


@pytest.mark.parametrize("disk", ["full while saving predictions", "full for every file"])
def test_audit_on_a_full_disk_ends_failed_with_one_message_and_no_partial_file(tmp_path, capsys, monkeypatch, disk):
    """The audit is claimed and finished like a trained run: a full disk marks it failed (when the status
    can still be saved) and the user sees the error of the file that could not be saved."""
    import errno
    import tempfile

    import pandas as pd

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk(self, path, *args, **kwargs):
        if disk == "full for every file":
            monkeypatch.setattr(tempfile, "mkstemp", no_space)  # from here on no file can be created
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    code = main([*AUDIT, "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: could not save") and "predictions.parquet: the disk is full" in err[-1]
    (run_dir,) = (tmp_path / "runs").iterdir()
    state = Run(run_dir).status()
    if disk == "full while saving predictions":
        assert state["state"] == "failed" and "the disk is full" in state["error"]
    else:  # status.json cannot be saved either: it still says running, written by this (live) process
        assert state["state"] == "running"
    assert (run_dir / "claimed").is_file()  # taken once, like `run` takes a queued run
    assert not (run_dir / "predictions.parquet").exists() and not (run_dir / "metrics.json").exists()
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_audit_never_re_executes_a_started_or_finished_run(tmp_path):
    from core.settings import ExperimentConfig

    config = ExperimentConfig(data=str(SAMPLE_PRODUCTS), label_columns=["category_path"], text_columns=["title"])
    run = RunStore(tmp_path).create(config.to_dict() | {"kind": "audit", "folds": 2}, name="audit")
    set_status(run.path, "done")
    before = {p.name: p.read_bytes() for p in run.path.iterdir()}
    with pytest.raises(RunError, match="is done, not queued"):
        audit.run_audit(config, 2, run.path)
    assert {p.name: p.read_bytes() for p in run.path.iterdir()} == before


def test_run_executes_a_queued_audit_folder_and_its_progress_counts_folds(tmp_path, capsys, monkeypatch):
    """What the Training page's 'Audit the whole catalog' launches: `python -m core run FOLDER` on a
    queued audit folder runs the K-fold audit (it used to train one model), progress.json in folds."""
    from core.runs.progress import ProgressWriter
    from core.settings import ExperimentConfig

    written = []
    monkeypatch.setattr(ProgressWriter, "__call__", lambda self, stage, done, total: written.append((stage, done, total)))
    config = ExperimentConfig(data=str(SAMPLE_PRODUCTS), label_columns=["category_path"], text_columns=["title"],
                              id_column="id", taxonomy=str(SAMPLE_TAXONOMY), max_rows=300, epochs=1, members=1, encoder="minilm")
    run = RunStore(tmp_path).create(config.to_dict() | {"kind": "audit", "folds": 2}, name="audit")
    assert main(["run", str(run.path)]) == 0, capsys.readouterr().err
    frame = schema.read(run.path / "predictions.parquet")
    assert len(frame) == 300 and sorted(frame["fold"].unique()) == [0, 1] and "audit_priority" in frame
    folds = [(d, t) for s, d, t in written if s == "audit folds"]
    assert folds == [(0, 2), (1, 2), (2, 2)] and not any(s == "train epoch" for s, _, _ in written)


def test_review_decisions_are_saved_and_read_back(tmp_path):
    assert audit.load_decisions(tmp_path) == {}
    audit.save_decisions(tmp_path, {"p1": "relabel", "p2": "keep"})
    assert audit.load_decisions(tmp_path) == {"p1": "relabel", "p2": "keep"}
    with pytest.raises(ValueError, match="keep, relabel; got delete"):
        audit.save_decisions(tmp_path, {"p1": "delete"})
    assert audit.load_decisions(tmp_path) == {"p1": "relabel", "p2": "keep"}  # a refused save changes nothing
