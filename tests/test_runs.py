import json

import pandas as pd
import pytest

from core import files
from core.runs import store as runs


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json(target, {"top1": 0.5})
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
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
    files.write_json(run / "metrics.json", {"plain": {"top1": 0.8, "mistake_severity": 2.0}, "crm": {"mistake_severity": 1.5}})
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


def finished_run(store: runs.RunStore, **config) -> runs.Run:
    run = store.create({"targets": "semantic", "alpha": 0.1, "temperature": 0.1, "k": 20, "data": "/x/p.csv"} | config)
    note = "MiniLM (sentence-transformers/all-MiniLM-L6-v2, bundled) " * 7  # a long encoder note, as real runs have
    files.write_json(run.path / "metrics.json", {"encoder": note, "plain": {"top1": 0.8, "mistake_severity": 2.0}, "crm": {}})
    runs.set_status(run.path, "done")
    return run


def test_compare_puts_metrics_first_and_splits_them_from_settings(tmp_path):
    store = runs.RunStore(tmp_path)
    a, b = finished_run(store), finished_run(store, temperature=0.05)
    table = runs.compare([a, b])
    assert table.index[0] == "top1" and table.index.get_loc("mistake_severity") < table.index.get_loc("targets")
    metrics, settings = runs.split_comparison(table)
    assert all(pd.api.types.is_float_dtype(d) for d in metrics.dtypes) and metrics.loc["top1", a.name] == 0.8
    assert "targets" in settings.index and all(isinstance(v, str) for v in settings.to_numpy().ravel())
    assert settings.loc["temperature", b.name] == "0.05"
    labels = [runs.representation_label(r) for r in store.table().to_dict("records")]
    assert sorted(labels) == ["semantic α=0.1 T=0.05 k=20", "semantic α=0.1 T=0.1 k=20"]
    assert runs.representation_label({"targets": "onehot", "alpha": 0.1}) == "onehot"


def test_cli_compare_fits_a_terminal(tmp_path, capsys):
    from core.cli.main import main

    store = runs.RunStore(tmp_path)
    dirs = [str(finished_run(store, temperature=t).path) for t in (0.05, 0.1, 0.2, 0.5)]
    assert main(["compare", *dirs]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    assert lines[0].split()[0] != "status" and any(line.startswith("top1") for line in lines)


def test_progress_file_is_throttled_and_keeps_stage_ends(tmp_path, monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 5.0, 5.1, 5.2])
    monkeypatch.setattr(runs.time, "monotonic", lambda: next(clock))
    write = runs.ProgressWriter(tmp_path, every=1.0)
    assert runs.read_progress(tmp_path) is None
    write("embed products", 0, 100)  # a stage's start: written
    write("embed products", 10, 100)  # 0.1 s later: skipped
    assert runs.read_progress(tmp_path) == {"stage": "embed products", "done": 0, "total": 100}
    write("embed products", 100, 100)  # a stage's end: always written
    assert runs.read_progress(tmp_path)["done"] == 100
    write("embed categories", 5, 50)  # a new stage: written at once
    write("embed categories", 6, 50)  # 0.1 s later: skipped
    assert runs.read_progress(tmp_path) == {"stage": "embed categories", "done": 5, "total": 50}
