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


def test_progress_file_is_throttled_but_keeps_each_stages_first_and_last_step(tmp_path, monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 0.3, 5.0])
    monkeypatch.setattr(runs.time, "monotonic", lambda: next(clock))
    record = runs.ProgressFile(tmp_path, every=1.0)
    assert runs.read_progress(tmp_path) is None
    record("embed products", 0, 100)
    record("embed products", 64, 100)  # 0.1 s later: not written
    assert runs.read_progress(tmp_path) == {"stage": "embed products", "done": 0, "total": 100}
    record("embed products", 100, 100)  # the last step always
    assert runs.read_progress(tmp_path)["done"] == 100
    record("embed categories", 0, 10)  # a new stage always
    assert runs.read_progress(tmp_path)["stage"] == "embed categories"
    record("embed categories", 5, 10)  # 4.7 s later
    assert runs.read_progress(tmp_path)["done"] == 5
    (tmp_path / "progress.json").write_text('{"stage": 1}')
    assert runs.read_progress(tmp_path) is None  # a damaged file reads as no progress


def test_arm_label_names_the_settings_each_kind_uses():
    row = {"targets": "semantic", "alpha": 0.1, "temperature": 0.05, "k": 20, "beta": 10.0, "mix": 0.5, "curriculum_epochs": 0,
           "aux_codes": "none"}
    assert runs.arm_label(row) == "semantic α=0.1 T=0.05 k=20"
    assert runs.arm_label(row | {"temperature": 1.0}) != runs.arm_label(row)
    assert runs.arm_label(row | {"targets": "tree", "curriculum_epochs": 3}) == "tree β=10 curriculum 3"
    assert runs.arm_label({"targets": None}) == "imported"
