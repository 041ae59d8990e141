"""Issue 21's defects, each pinned by a test that failed before its fix: concurrent writers of the item
cache, tiny catalogs, damaged model files, full disks, bad --probabilities files and the smaller ones."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.itemcache import ItemCache, item_keys, save_npy

DIM = 4


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


# ----- 1. the item cache under concurrent writers and damaged shards ---------------------------------
def test_two_writers_storing_the_same_items_leave_a_usable_cache(tmp_path):
    keys = item_keys("enc", "text", ["a", "b", "c"])
    first, second = ItemCache(tmp_path, "enc", DIM), ItemCache(tmp_path, "enc", DIM)
    first.put(keys, vectors(3))
    second.put(keys[1:], vectors(3)[1:])  # the second writer had not seen the first's shard
    reader = ItemCache(tmp_path, "enc", DIM)
    got, found = reader.get(np.concatenate([keys, keys[:1]]))
    assert found.all() and len(reader) == 3
    np.testing.assert_array_equal(got[:3], vectors(3))
    np.testing.assert_array_equal(got[3], vectors(3)[0])
    second.refresh()  # a writer that indexes the other's shard later is not broken either
    assert second.get(keys)[1].all()


def write_shard(folder, name: str, keys: np.ndarray, vecs: np.ndarray) -> None:
    save_npy(folder / f"{name}.npy", vecs)
    save_npy(folder / f"{name}.keys.npy", keys)


@pytest.mark.parametrize("damage", ["nan", "inf", "wide", "keys2d", "complex", "truncated", "garbage"])
def test_a_damaged_shard_is_never_served_and_its_items_are_stored_again(tmp_path, damage):
    keys = item_keys("enc", "text", ["a", "b", "c"])
    cache = ItemCache(tmp_path, "enc", DIM)
    good = vectors(3)
    bad = {"nan": np.where(np.eye(3, DIM, dtype=bool), np.nan, good), "inf": good * np.inf,
           "wide": vectors(3)[:, :3], "keys2d": good, "complex": good.astype(np.complex64), "truncated": good,
           "garbage": good}[damage]
    cache.folder.mkdir(parents=True)
    write_shard(cache.folder, "0bad", keys[:, None] if damage == "keys2d" else keys, bad)
    if damage == "truncated":
        path = cache.folder / "0bad.npy"
        path.write_bytes(path.read_bytes()[:-9])
    if damage == "garbage":
        (cache.folder / "0bad.npy").write_bytes(b"\x00garbage" * 20)
    reader = ItemCache(tmp_path, "enc", DIM)
    got, found = reader.get(keys)
    assert not found.any() and np.isfinite(got).all()
    reader.put(keys, good)  # the items are embedded again; from then on the good copy is served
    for cache_view in (reader, ItemCache(tmp_path, "enc", DIM)):
        got, found = cache_view.get(keys)
        assert found.all()
        np.testing.assert_array_equal(got, good)


# ----- 2. tiny catalogs ----------------------------------------------------------------------------
def tiny_catalog(tmp_path, classes: int, per_class: int):
    import pandas as pd

    from tests.conftest import SAMPLE_PRODUCTS

    frame = pd.read_csv(SAMPLE_PRODUCTS)
    kept = frame["category_path"].value_counts().index[:classes]
    frame = frame[frame["category_path"].isin(kept)].groupby("category_path").head(per_class)
    path = tmp_path / "tiny.csv"
    frame.to_csv(path, index=False)
    return path


def tiny_args(path, store, command="train"):
    from tests.conftest import SAMPLE_TAXONOMY

    return [command, "--data", path, "--label-column", "category_path", "--text-column", "title", "--id-column", "id",
            "--taxonomy", SAMPLE_TAXONOMY, "--encoder", "minilm", "--epochs", "2", "--members", "1", "--quiet", "--json", "--out", store]


@pytest.mark.parametrize("command", ["train", "audit"])
def test_three_classes_train_and_audit_to_the_end(tmp_path, command):
    import json

    from core.runs.store import RunStore
    from tests.test_cli_taxonomy import run_cli

    r = run_cli(*tiny_args(tiny_catalog(tmp_path, 3, 12), tmp_path / "store", command))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    json.loads(r.stdout.strip().splitlines()[-1])
    (run,) = RunStore(tmp_path / "store").runs()
    assert run.state == "done"
    frame = run.predictions()
    assert "pred_3" in frame and "pred_4" not in frame


def test_too_few_items_say_how_many_are_needed(tmp_path):
    from tests.test_cli_taxonomy import run_cli

    r = run_cli(*tiny_args(tiny_catalog(tmp_path, 2, 3), tmp_path / "store"))
    assert r.returncode == 2
    assert "n_samples" not in r.stderr and "Traceback" not in r.stderr
    assert "6 items" in r.stderr and "at least" in r.stderr, r.stderr
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


# ----- 3. damaged model files -------------------------------------------------------------------------
def copied_run(tree_run, tmp_path):
    import shutil
    from pathlib import Path

    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    return Path(shutil.copytree(tree_run["run_dir"], store / Path(tree_run["run_dir"]).name))


def edit_json(path, change) -> None:
    import json

    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


MODEL_DAMAGE = {
    "weights truncated": lambda run: (run / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:5000]),
    "weights empty": lambda run: (run / "model.safetensors").write_bytes(b""),
    "weights garbage": lambda run: (run / "model.safetensors").write_bytes(b"\xff" * 4096),
    "weights missing": lambda run: (run / "model.safetensors").unlink(),
    "slices shifted": lambda run: edit_json(run / "model.json", lambda d: d.update(slices=[["text", 0, 100]])),
    "slices not a list": lambda run: edit_json(run / "model.json", lambda d: d.update(slices="text")),
    "hidden huge": lambda run: edit_json(run / "model.json", lambda d: d.update(hidden=10**12)),
    "hidden other": lambda run: edit_json(run / "model.json", lambda d: d.update(hidden=64)),
    "image source without images": lambda run: edit_json(run / "model.json", lambda d: d.update(image_source="clip")),
    "temperature text": lambda run: edit_json(run / "model.json", lambda d: d.update(temperature="hot")),
    "too few classes": lambda run: edit_json(run / "classes.json", lambda d: d.update(classes=d["classes"][:3])),
    "nodes out of range": lambda run: edit_json(run / "classes.json", lambda d: d.update(nodes=[10**6] * len(d["nodes"]))),
    "nodes not numbers": lambda run: edit_json(run / "classes.json", lambda d: d.update(nodes=["x"] * len(d["nodes"]))),
}


@pytest.mark.parametrize("damage", list(MODEL_DAMAGE))
def test_a_damaged_model_is_refused_with_the_file_named(tree_run, tmp_path, damage):
    from core.runs.store import Run, RunError
    from core.training.predictor import Predictor, model_problems

    run = copied_run(tree_run, tmp_path)
    MODEL_DAMAGE[damage](run)
    with pytest.raises(RunError) as caught:
        Predictor.load(run)
    file = "model.safetensors" if damage.startswith("weights") or damage == "hidden other" else \
        "classes.json" if "classes" in damage or "nodes" in damage else "model.json"
    assert file in str(caught.value) and "\n" not in str(caught.value)
    assert model_problems(Run(run)) == [str(caught.value)]


def test_the_cli_lists_and_refuses_a_damaged_model(tree_run, tmp_path):
    import json

    from tests.conftest import SAMPLE_PRODUCTS
    from tests.test_cli_taxonomy import run_cli

    run = copied_run(tree_run, tmp_path)
    MODEL_DAMAGE["weights truncated"](run)
    listed = run_cli("runs", tmp_path / "store", "--json")
    assert listed.returncode == 0
    (row,) = json.loads(listed.stdout.strip().splitlines()[-1])
    assert row["state"] == "damaged" and "model.safetensors" in row["error"]
    r = run_cli("predict", run, "--data", SAMPLE_PRODUCTS, "--out", tmp_path / "out.csv", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "model.safetensors" in r.stderr and not (tmp_path / "out.csv").exists()


def test_the_categorize_page_opens_when_the_newest_run_is_damaged(tree_run, tmp_path, monkeypatch):
    import shutil

    from tests.conftest import app_page

    root = tmp_path / "runs"
    shutil.copytree(tree_run["run_dir"], root / "20990101-000000-good")
    shutil.copytree(tree_run["run_dir"], root / "20991231-000000-newest-damaged")
    MODEL_DAMAGE["weights garbage"](root / "20991231-000000-newest-damaged")
    monkeypatch.setenv("TAXOLENS_RUNS", str(root))
    at = app_page("categorize")
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="categorize_run").options == ["20990101-000000-good"]
    assert any("newest-damaged" in w.value and "model.safetensors" in w.value for w in at.warning)


# ----- 4. full disks --------------------------------------------------------------------------------------
def test_features_files_are_allocated_up_front_and_a_full_disk_is_said(tmp_path, monkeypatch, minilm):
    import errno
    import os

    from core.data import featuredir
    from core.settings import ExperimentConfig
    from tests.conftest import SAMPLE_PRODUCTS

    config = ExperimentConfig(data=str(SAMPLE_PRODUCTS), text_columns=["title"], id_column="id", max_rows=300)
    ids = featuredir.scan_ids(config)
    featuredir.begin(tmp_path / "F", minilm, config, ids, 100)
    stat = os.stat(tmp_path / "F" / "features.npy")
    assert stat.st_blocks * 512 >= stat.st_size  # not sparse: a memory-mapped write cannot hit a full disk

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    for out in (tmp_path / "G", tmp_path / "F"):  # a new folder, and one resumed
        with pytest.raises(OSError, match="the disk is full") as caught:
            featuredir.begin(out, minilm, config, ids, 100)
        assert ".tmp" not in str(caught.value)
    assert not (tmp_path / "G" / "features.npy").exists()


def test_a_short_write_to_the_cache_says_the_disk_is_full(tmp_path, monkeypatch):
    def short(fh, array, **kwargs):
        raise OSError("115200 requested and 29664 written")

    monkeypatch.setattr(np, "save", short)
    with pytest.raises(OSError, match="the disk is full"):
        ItemCache(tmp_path, "enc", DIM).put(item_keys("enc", "text", ["a"]), vectors(1))
    assert not list(tmp_path.rglob("*.npy")) and not list(tmp_path.rglob("*.tmp"))


# ----- 5. evaluate's inputs -------------------------------------------------------------------------------
SMALL = "A > A1 > a\nA > A1 > b\nA > A2 > c\nB > d\n"


def evaluate_cli(tmp_path, capsys, *args):
    from core.cli.main import main

    code = main(["evaluate", "--out", str(tmp_path / "runs"), "--encoder", "minilm", "--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_empty_middle_prediction_cell_keeps_the_columns_before_it(tmp_path, capsys):
    import json

    from core.evaluation import schema

    data = tmp_path / "p.csv"
    data.write_text("y,p1,p2,p3\nA > A1 > a,A > A1 > a,A > A1 > b,B > d\nB > d,A > A2 > c,,A > A1 > a\n")
    code, out, err = evaluate_cli(tmp_path, capsys, "--predictions", data, "--true-column", "y", "--pred-columns", "p1", "p2", "p3",
                                  "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["top1"] == 0.5
    frame = schema.read(str(next((tmp_path / "runs").iterdir()) / "predictions.parquet"))
    assert "pred_1" in frame and "pred_2" not in frame


@pytest.mark.parametrize(("matrix", "message"), [
    (np.zeros(4, dtype=[("a", "f4"), ("b", "f4")]), "real numbers"),
    (np.full((4, 4), 0.25, dtype=np.complex64), "real numbers"),
    (np.full((4, 4), 0.3), "must sum to 1: 4 rows do not (row 0 sums to 1.2)"),
    ("huge", "not a readable .npy array"),
])
def test_a_probability_matrix_that_is_not_one_is_refused(tmp_path, capsys, matrix, message):
    classes = tmp_path / "c.txt"
    classes.write_text(SMALL)
    data = tmp_path / "p.csv"
    data.write_text("y\n" + "A > A1 > a\n" * 4)
    path = tmp_path / "p.npy"
    if isinstance(matrix, str):  # a header declaring 10^12 rows over a few bytes of data
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 4)}
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            fh.write(b"\x00" * 64)
    else:
        np.save(path, matrix)
    code, out, err = evaluate_cli(tmp_path, capsys, "--predictions", data, "--true-column", "y", "--probabilities", path,
                                  "--classes", classes)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_probabilities_off_by_rounding_are_renormalised_and_said(tmp_path, capsys):
    import json

    classes = tmp_path / "c.txt"
    classes.write_text(SMALL)
    data = tmp_path / "p.csv"
    data.write_text("y\n" + "A > A1 > a\n" * 4)
    np.save(tmp_path / "p.npy", np.array([[0.7, 0.1, 0.1, 0.104]] * 4))
    code, out, err = evaluate_cli(tmp_path, capsys, "--predictions", data, "--true-column", "y", "--probabilities",
                                  tmp_path / "p.npy", "--classes", classes, "--json")
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    notes = json.loads((run / "metrics.json").read_text())["notes"]
    assert any("renormalised" in n for n in notes)
    from core.evaluation import schema

    frame = schema.read(str(run / "predictions.parquet"))
    assert frame["prob_1"].iloc[0] == pytest.approx(0.7 / 1.004, abs=1e-6)


# ----- 6. the smaller ones ------------------------------------------------------------------------------
def test_a_bin_checkpoint_that_is_not_weights_is_one_message(tmp_path):
    from core.data.encoders import ClipEncoder, EncoderUnavailable

    (tmp_path / "model.bin").write_bytes(b"these are not weights at all")
    with pytest.raises(EncoderUnavailable, match="could not load .*model.bin.*open_clip weights file"):
        ClipEncoder.load("ViT-B-32", checkpoint=tmp_path / "model.bin")


def test_a_cache_that_is_a_file_is_not_reported_as_the_output(tree_run, tmp_path):
    from tests.conftest import SAMPLE_PRODUCTS
    from tests.test_cli_taxonomy import run_cli

    (tmp_path / "cache").write_text("not a folder")
    env = __import__("os").environ | {"TAXOLENS_CACHE": str(tmp_path / "cache")}
    r = run_cli("predict", tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--max-rows", "20", "--out",
                tmp_path / "out.csv", "--quiet", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "could not save" not in r.stderr and "categorizing stopped" in r.stderr and str(tmp_path / "cache") in r.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_read_only_cache_is_read_and_not_written(tmp_path, monkeypatch):
    import errno

    from core.data import itemcache
    from core.files import write_failed

    keys = item_keys("enc", "text", ["a", "b"])
    ItemCache(tmp_path, "enc", DIM).put(keys[:1], vectors(1))

    def read_only(path, array):
        raise write_failed(path, PermissionError(errno.EROFS, "Read-only file system"))

    monkeypatch.setattr(itemcache, "save_npy", read_only)
    cache = ItemCache(tmp_path, "enc", DIM)
    assert cache.put(keys[1:], vectors(2)[1:]) is False
    assert cache.get(keys)[1].tolist() == [True, False]


@pytest.mark.parametrize("risk", ["nan", "-0.5", "inf"])
def test_review_risk_must_be_a_distance(tree_run, tmp_path, risk):
    from tests.conftest import SAMPLE_PRODUCTS
    from tests.test_cli_taxonomy import run_cli

    r = run_cli("predict", tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--out", tmp_path / "o.csv",
                f"--review-risk={risk}", "--quiet")
    assert r.returncode == 2 and "--review-risk must be" in r.stderr and not (tmp_path / "o.csv").exists()


def test_temporary_files_of_dead_writers_are_cleaned_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from core.files import STALE_SECONDS, write_json

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = __import__("time").time() - STALE_SECONDS - 10
    stale = tmp_path / f".out.json.{dead.stdout.strip()}.abc.tmp"
    live = tmp_path / f".out.json.{os.getpid()}.def.tmp"
    recent = tmp_path / f".out.json.{dead.stdout.strip()}.ghi.tmp"
    for path in (stale, live, recent):
        path.write_text("partial")
    os.utime(stale, (old, old))
    os.utime(live, (old, old))
    write_json(tmp_path / "out.json", {"a": 1})
    assert not stale.exists() and live.exists() and recent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, recent.name, "out.json"])


def test_an_unexpected_failure_reads_as_a_sentence_with_the_trace_kept(tmp_path, monkeypatch):
    import pandas as pd

    from core.runs.store import RunStore
    from core.settings import ExperimentConfig
    from core.training import experiment
    from tests.conftest import SAMPLE_PRODUCTS, SAMPLE_TAXONOMY

    def broken(*args, **kwargs):
        raise pd.errors.InvalidIndexError("Reindexing only valid with uniquely valued Index objects")

    monkeypatch.setattr(experiment, "prepare", broken)
    config = ExperimentConfig(data=str(SAMPLE_PRODUCTS), label_columns=["category_path"], text_columns=["title"],
                              taxonomy=str(SAMPLE_TAXONOMY))
    run = RunStore(tmp_path).create(config.to_dict())
    with pytest.raises(pd.errors.InvalidIndexError):
        experiment.execute_run(run.path)
    status = run.status()
    assert status["state"] == "failed" and status["error"].startswith("an unexpected error stopped this run (InvalidIndexError")
    assert "bug" in status["error"] and "Traceback" in status["trace"]
