import json

import pandas as pd
import pytest

from core import runs


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    target = tmp_path / "metrics.json"
    runs.write_json(target, {"top1": 0.5})
    with pytest.raises(RuntimeError), runs.atomic_path(target) as tmp:
        tmp.write_text('{"top1": 0.9')  # half written
        raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"top1": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_store_lifecycle_and_table(tmp_path):
    store = runs.RunStore(tmp_path)
    run = store.create({"targets": "semantic", "alpha": 0.1, "data": "/x/products.csv"})
    assert runs.status(run)["state"] == "queued"
    runs.set_status(run, "running")
    runs.append_epoch(run, {"epoch": 0, "train_loss": 1.0})
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 1, "tra')  # torn line from a crash
    assert runs.history(run).epoch.tolist() == [0]
    runs.write_json(run / "metrics.json", {"plain": {"top1": 0.8, "mistake_severity": 2.0}, "crm": {"mistake_severity": 1.5}})
    runs.set_status(run, "done")
    row = store.table().iloc[0]
    assert (row.status, row.targets, row.top1, row.crm_mistake_severity, row.data) == ("done", "semantic", 0.8, 1.5, "products.csv")
    assert runs.status(run)["started"]
    table = runs.compare([run])
    assert isinstance(table, pd.DataFrame) and table.loc["top1", run.name] == 0.8
    with pytest.raises(ValueError, match="unknown run state"):
        runs.set_status(run, "exploded")


def test_cancel_flag(tmp_path):
    run = runs.RunStore(tmp_path).create({})
    assert not runs.cancel_requested(run)
    runs.request_cancel(run)
    assert runs.cancel_requested(run)


def test_compare_rejects_non_run_folder(tmp_path):
    with pytest.raises(runs.RunError, match="not a run folder"):
        runs.compare([tmp_path])
