import errno
import json
import os
import shutil

import pandas as pd
import pytest

from core import files
from core.evaluation.registry import SELECTIVE_KEYS
from core.runs import progress, tables
from core.runs import store as runs
from core.runs.status import append_epoch, cancel_requested, history, request_cancel, set_status, status
from tests.conftest import SAMPLE_PRODUCTS, SAMPLE_TAXONOMY


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
    assert status(run.path)["state"] == "queued"
    set_status(run.path, "running")
    append_epoch(run.path, {"epoch": 0, "train_loss": 1.0})
    with open(run.path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 1, "tra')  # torn line from a crash
    assert history(run.path).epoch.tolist() == [0]
    files.write_json(run.path / "metrics.json", {"plain": {"top1": 0.8, "mistake_severity": 2.0}, "crm": {"mistake_severity": 1.5}})
    set_status(run.path, "done")
    row = tables.runs_table(store).iloc[0]
    assert (row.status, row.targets, row.top1, row.crm_mistake_severity, row.data) == ("done", "semantic", 0.8, 1.5, "products.csv")
    assert status(run.path)["started"]
    table = tables.compare([run.path])
    assert isinstance(table, pd.DataFrame) and table.loc["top1", run.name] == 0.8
    with pytest.raises(ValueError, match="unknown run state"):
        set_status(run.path, "exploded")


def test_cancel_flag(tmp_path):
    run = runs.RunStore(tmp_path).create({})
    assert not cancel_requested(run.path)
    request_cancel(run.path)
    assert cancel_requested(run.path)


def test_compare_rejects_non_run_folder(tmp_path):
    with pytest.raises(runs.RunError, match="not a run folder"):
        tables.compare([tmp_path])


def finished_run(store: runs.RunStore, **config) -> runs.Run:
    run = store.create({"targets": "semantic", "alpha": 0.1, "temperature": 0.1, "k": 20, "data": "/x/p.csv"} | config)
    note = "MiniLM (sentence-transformers/all-MiniLM-L6-v2, bundled) " * 7  # a long encoder note, as real runs have
    files.write_json(run.path / "metrics.json", {"encoder": note, "plain": {"top1": 0.8, "mistake_severity": 2.0}, "crm": {}})
    set_status(run.path, "done")
    return run


def test_compare_puts_metrics_first_and_splits_them_from_settings(tmp_path):
    store = runs.RunStore(tmp_path)
    a, b = finished_run(store), finished_run(store, temperature=0.05)
    table = tables.compare([a.path, b.path])
    assert table.index[0] == "top1" and table.index.get_loc("mistake_severity") < table.index.get_loc("targets")
    metrics, settings = tables.split_comparison(table)
    assert all(pd.api.types.is_float_dtype(d) for d in metrics.dtypes) and metrics.loc["top1", a.name] == 0.8
    assert "targets" in settings.index and all(isinstance(v, str) for v in settings.to_numpy().ravel())
    assert settings.loc["temperature", b.name] == "0.05"
    labels = [tables.representation_label(r) for r in tables.runs_table(store).to_dict("records")]
    assert sorted(labels) == ["semantic α=0.1 T=0.05 k=20", "semantic α=0.1 T=0.1 k=20"]
    assert tables.representation_label({"targets": "onehot", "alpha": 0.1}) == "onehot"


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
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    write = progress.ProgressWriter(tmp_path, every=1.0)
    assert progress.read_progress(tmp_path) is None
    write("embed products", 0, 100)  # a stage's start: written
    write("embed products", 10, 100)  # 0.1 s later: skipped
    assert progress.read_progress(tmp_path) == {"stage": "embed products", "done": 0, "total": 100}
    write("embed products", 100, 100)  # a stage's end: always written
    assert progress.read_progress(tmp_path)["done"] == 100
    write("embed categories", 5, 50)  # a new stage: written at once
    write("embed categories", 6, 50)  # 0.1 s later: skipped
    assert progress.read_progress(tmp_path) == {"stage": "embed categories", "done": 5, "total": 50}


def test_a_run_is_an_object_with_a_path_not_a_path(tmp_path):
    run = runs.RunStore(tmp_path).create({})
    assert run.path.parent == tmp_path and run == runs.Run(run.path) and run.name == run.path.name
    with pytest.raises(TypeError):
        os.fspath(run)
    with pytest.raises(TypeError):
        run / "config.json"  # noqa: B018


def tiny_results(tree):
    """A two-item predictions table over the small tree's leaves a and d, and its metrics."""
    classes = ["A > A1 > a", "B > d"]
    frame = pd.DataFrame({"id": ["p1", "p2"], "true_label": classes, "pred_1": ["A > A1 > a", "A > A1 > a"],
                          "correct": [True, False], "tree_distance": [0, 3]})
    return frame, {"plain": {"top1": 0.5, "mistake_severity": 3.0}, "crm": {}}, classes, [tree.resolve(c) for c in classes]


def test_finish_writes_every_result_then_done(tmp_path, small_tree):
    run = runs.RunStore(tmp_path).create({"targets": "onehot"})
    frame, metrics, classes, nodes = tiny_results(small_tree)
    run.finish(frame, metrics, taxonomy=small_tree, classes=classes, nodes=nodes, report={"notes": ["2 rows kept"]},
               slices=[("text", 0, 4)])
    assert run.state == "done" and not run.problems()
    assert run.predictions()["id"].tolist() == ["p1", "p2"] and run.metrics() == metrics
    assert run.classes() == classes and run.class_nodes() == nodes
    assert [run.taxonomy().path_str(n) for n in run.class_nodes()] == classes
    assert run.report() == {"notes": ["2 rows kept"]}
    assert files.read_json(run.path / "classes.json")["slices"] == [["text", 0, 4]]


def test_finish_on_a_full_disk_marks_the_run_failed_and_leaves_no_partial_file(tmp_path, small_tree, monkeypatch):
    def full_disk(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    run = runs.RunStore(tmp_path).create({"targets": "onehot"})
    frame, metrics, classes, nodes = tiny_results(small_tree)
    with pytest.raises(files.StoreWriteError, match="predictions.parquet: the disk is full"):
        run.finish(frame, metrics, taxonomy=small_tree, classes=classes, nodes=nodes)
    assert run.state == "failed" and "the disk is full" in run.status()["error"]
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "status.json"]  # no half file, no temporary


# What a trained run folder held as the version before the split of the run store wrote it (commit 6b8da3d):
# the file names and each JSON file's keys. A change here is a change of the run format: old folders must still open.
PREVIOUS_RUN_FILES = {
    "claimed": None, "config.json": None, "status.json": {"state", "updated", "pid", "pid_started", "started"},
    "metrics.jsonl": None, "report.json": {"notes", "encoder"}, "predictions.parquet": None, "model.safetensors": None,
    "model.json": {"slices", "n_classes", "hidden", "fusion", "dropout", "aux_dim", "temperature", "encoder_identity",
                   "encoder_note", "template", "image_source"},
    "classes.json": {"classes", "nodes", "slices"}, "taxonomy.json": {"ids", "names", "parent"},
    "metrics.json": {"plain", "crm", "val", "encoder", "encoder_identity", "n_classes", "n_train", "n_val", "n_test",
                     "best_epoch", "stopped_early", "modalities", "notes", "train_seconds"},
}
ADDED_FILES = {"selective.parquet"}  # written by later versions
ADDED_KEYS = {"model.json": {"lexical", "members"}, "metrics.json": {"n_calibration", "selective", "best_epochs", "members"}}
PREVIOUS_CONFIG = {  # config.json of `train --targets tree --beta 3 --epochs 4` (tests/conftest.py TRAIN), as then written
    "data": str(SAMPLE_PRODUCTS), "label_columns": ["category_path"], "text_columns": ["title"], "id_column": "id",
    "image_column": None, "image_dir": None, "image_pattern": "{}", "embeddings": None, "embedding_ids": None,
    "features": None, "use_text": True, "column_names": None, "max_rows": 1500, "max_depth": None,
    "taxonomy": str(SAMPLE_TAXONOMY), "taxonomy_format": None, "val_fraction": 0.1, "test_fraction": 0.2,
    "encoder": "minilm", "clip_checkpoint": None, "device": "auto", "template": "name", "targets": "tree", "alpha": 0.1,
    "temperature": 0.1, "k": 20, "beta": 3.0, "mix": 0.5, "curriculum_epochs": 0, "aux_codes": "none",
    "aux_weight": 0.5, "epochs": 4, "batch_size": 256, "lr": 0.002, "weight_decay": 0.0001, "patience": 4, "seed": 0,
    "hidden": 512, "dropout": 0.2, "fusion": "concat",
}


def test_a_run_folder_of_the_previous_version_opens_predicts_and_compares(tree_run, tmp_path, capsys):
    from core.cli.main import main

    new = tree_run["run_dir"]
    old = tmp_path / "store" / "20250101-000000-tree-0a1b"
    shutil.copytree(new, old)
    # what later versions add, taken away again: the guaranteed-accuracy climbs and metrics
    assert {p.name for p in old.iterdir()} == set(PREVIOUS_RUN_FILES) | ADDED_FILES
    for name in ADDED_FILES:
        (old / name).unlink()
    metrics_json = files.read_json(old / "metrics.json")
    for block in ("plain", "crm", "val"):
        metrics_json[block] = {k: v for k, v in metrics_json[block].items() if k not in SELECTIVE_KEYS}
    files.write_json(old / "metrics.json", metrics_json)
    for name, added in ADDED_KEYS.items():
        data = files.read_json(old / name)
        assert added <= set(data), name
        files.write_json(old / name, {k: v for k, v in data.items() if k not in added})
    for name, keys in PREVIOUS_RUN_FILES.items():
        if keys is not None:
            assert set(files.read_json(old / name)) == keys, name
    (old / "config.json").write_text(json.dumps(PREVIOUS_CONFIG, indent=2))
    (old / "status.json").write_text(json.dumps({"state": "done", "updated": "2025-01-01T00:04:00+00:00", "pid": 2 ** 22 + 7,
                                                 "pid_started": "80954", "started": "2025-01-01T00:00:00+00:00"}))
    run = runs.Run.open(old)
    assert run.state == "done" and not run.problems() and run.experiment_config().beta == 3.0
    assert runs.RunStore(old.parent).finished() == [run]

    capsys.readouterr()
    assert main(["predict", str(old), "--data", str(SAMPLE_PRODUCTS), "--max-rows", "1500", "--out", str(tmp_path / "a.parquet"),
                 "--quiet"]) == 0
    scored = pd.read_parquet(tmp_path / "a.parquet").set_index("id")
    test = run.predictions().set_index("id")
    assert (scored.loc[test.index, "pred_1"] == test["pred_1"]).all()  # the old weights and classes, read as they were

    table = tables.compare([old, new])
    metrics, _ = tables.split_comparison(table)
    previous = metrics.drop(index=[k for k in SELECTIVE_KEYS if k in metrics.index])
    assert previous[old.name].equals(previous[runs.Run(new).name]) and metrics.loc["top1", old.name] == tree_run["top1"]
    assert metrics.loc[list(SELECTIVE_KEYS), old.name].isna().all()  # an old run has no guaranteed-accuracy metrics
    assert main(["compare", str(new), "--baseline", str(old), "--resamples", "1000"]) == 0
    assert "0 better, 0 worse" in capsys.readouterr().out


def test_compare_shows_every_changed_setting_only_where_it_matters_and_rounded(tmp_path):
    """Issue 20, item 7: an adopted template = name must be visible; one-hot's alpha is not shown as if it
    mattered; alpha 0.3587435924002349 reads 0.359 in the table and the legend."""
    store = runs.RunStore(tmp_path)
    onehot = finished_run(store, targets="onehot", alpha=0.3587435924002349, template="name", lr=0.01)
    semantic = finished_run(store, alpha=0.3587435924002349)
    _, shown = tables.split_comparison(tables.compare([onehot.path, semantic.path]))
    assert shown.loc["template", onehot.name] == "name" and shown.loc["template", semantic.name] == "path"
    assert shown.loc["lr", onehot.name] == "0.01"  # a non-default setting outside the label group
    assert shown.loc["alpha", onehot.name] == "" and shown.loc["alpha", semantic.name] == "0.359"
    assert tables.changed_settings(runs.Run(onehot.path).config) == {"targets": "onehot", "template": "name", "lr": 0.01}
    table = tables.runs_table(store).set_index("run_id")
    assert table.loc[semantic.name, "alpha"] == 0.359 and table.loc[onehot.name, "alpha"] != table.loc[onehot.name, "alpha"]
    assert tables.representation_label(table.loc[semantic.name].to_dict()) == "semantic α=0.359 T=0.1 k=20"
    assert tables.representation_label({"kind": "imported", "targets": float("nan")}) == "imported"  # not "nan"


def test_compare_opens_on_runs_of_the_newest_runs_data(tmp_path):
    """Issue 20, item 8: the newest runs across catalogs gave a legend of nan and 'not compared'."""
    store = runs.RunStore(tmp_path)

    def run(n: int, **config) -> str:  # names in creation order, so "newest first" is certain within one second
        r = store.create({"targets": "onehot", "data": "/x/products.csv"} | config, name=f"r{n}")
        files.write_json(r.path / "metrics.json", {"plain": {"top1": 0.8}, "crm": {}})
        set_status(r.path, "done")
        return r.name

    first, _, second, _, newest = run(1), run(2, data="/y/google.csv"), run(3), run(4, max_rows=100), run(5)
    assert tables.same_data_runs(store) == [newest, second, first]
    assert tables.same_data_runs(store, n=2) == [newest, second]
    assert tables.same_data_runs(runs.RunStore(tmp_path / "none")) == []
