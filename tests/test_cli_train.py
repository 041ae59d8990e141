"""The CLI contract of `python -m core train/compare/run`, on the real sample catalog."""

import json

import numpy as np
import pandas as pd
import pytest

from core.runs import store as runs
from core.runs.process import launch_background, wait_for
from core.runs.status import history, request_cancel, status
from tests.conftest import SAMPLE_PRODUCTS, SAMPLE_TAXONOMY
from tests.test_cli_taxonomy import run_cli

pytestmark = pytest.mark.slow  # every test trains or runs `python -m core` in a new process

BASE = ["train", "--data", SAMPLE_PRODUCTS, "--label-column", "category_path", "--text-column", "title", "--id-column", "id",
        "--taxonomy", SAMPLE_TAXONOMY, "--members", "1", "--max-rows", "1200", "--epochs", "3", "--encoder", "minilm", "--quiet"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    r = run_cli(*BASE, "--targets", "semantic", "--alpha", "0.2", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout.strip().splitlines()[-1]), r.stdout


def test_train_json_contract_and_artifacts(finished_run):
    out, result, stdout = finished_run
    for key in ("run_id", "run_dir", "top1", "top5", "mistake_severity", "hdist@5", "semsim@5", "neighbor_hits@5", "ece", "hier_f1"):
        assert key in result
    run_dir = out / result["run_id"]
    assert status(run_dir)["state"] == "done"
    assert {"config.json", "status.json", "metrics.jsonl", "metrics.json", "predictions.parquet", "model.safetensors"} <= {p.name for p in run_dir.iterdir()}
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert {"id", "true_label", "pred_1", "prob_1", "sim_1", "tree_distance", "crm_pred_1"} <= set(preds.columns)
    assert len(history(run_dir)) >= 1
    assert "all-MiniLM-L6-v2" in stdout  # the encoder is named


@pytest.mark.parametrize(("extra", "message"), [
    (["--label-column", "no_such_column"], "is not in the data; available columns"),
    (["--image-column", "id", "--image-dir", "/nonexistent/images"], "image folder not found"),
])
def test_bad_arguments_exit_2_and_leave_runs_intact(finished_run, extra, message):
    out, result, _ = finished_run
    before = sorted(p.name for p in out.iterdir())
    metrics_before = (out / result["run_id"] / "metrics.json").read_bytes()
    args = [a for a in BASE if a != "category_path"] if "--label-column" in extra else BASE
    if "--label-column" in extra:
        args = [a for a in args if a != "--label-column"]
    r = run_cli(*args, *extra, "--targets", "onehot", "--out", out)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / result["run_id"] / "metrics.json").read_bytes() == metrics_before


def test_corrupt_data_file_exits_2(tmp_path):
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    r = run_cli("train", "--data", tmp_path / "corrupt.parquet", "--label-column", "c", "--text-column", "t",
                "--targets", "onehot", "--out", tmp_path / "runs")
    assert r.returncode == 2 and "could not be read" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def test_compare_table(finished_run):
    out, result, _ = finished_run
    r = run_cli("compare", out / result["run_id"])
    assert r.returncode == 0 and "mistake_severity" in r.stdout and "semantic" in r.stdout


def test_background_run_and_cancel(tmp_path):
    from core.training.experiment import ExperimentConfig

    store = runs.RunStore(tmp_path)
    config = ExperimentConfig(data=str(SAMPLE_PRODUCTS), label_columns=["category_path"], text_columns=["title"],
                              max_rows=600, epochs=2, members=1, encoder="minilm", targets="knn-uniform")
    done = store.create(config.to_dict()).path
    launch_background(done).wait(timeout=300)
    assert wait_for(done, timeout=5)["state"] == "done"
    cancelled = store.create(config.to_dict() | {"epochs": 50}).path
    request_cancel(cancelled)
    launch_background(cancelled).wait(timeout=300)
    assert status(cancelled)["state"] == "cancelled"


SMALL = ["--max-rows", "600", "--epochs", "2", "--members", "1", "--encoder", "minilm", "--quiet"]


@pytest.mark.parametrize("extra", [["--temperature", "nan"], ["--temperature", "inf"], ["--beta=-1"], ["--max-depth", "0"]])
def test_bad_settings_exit_2_before_a_run_folder_exists(tmp_path, extra):
    r = run_cli(*BASE, *extra, "--out", tmp_path / "runs")
    setting = extra[0].lstrip("-").split("=")[0].replace("-", "_")
    assert r.returncode == 2 and r.stderr.startswith(f"error: {setting} must") and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def _embeddings(tmp_path, array):
    ids = pd.read_csv(SAMPLE_PRODUCTS, dtype=str, nrows=600)["id"]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    np.save(tmp_path / "e.npy", array)
    return ["--embeddings", tmp_path / "e.npy", "--embedding-ids", tmp_path / "ids.txt"]


@pytest.mark.parametrize("case", ["single class", "nan embeddings", "wrong shape", "bad checkpoint"])
def test_bad_data_exits_2_before_a_run_folder_exists(tmp_path, case):
    args = [*BASE[:-7], *SMALL, "--targets", "onehot", "--out", tmp_path / "runs"]
    if case == "single class":
        args += ["--max-depth", "1", "--taxonomy", tmp_path / "one.txt"]
        (tmp_path / "one.txt").write_text("Shoes\n")
        table = pd.read_csv(SAMPLE_PRODUCTS, dtype=str, nrows=600).assign(category_path="Shoes > Boots")
        table.to_csv(tmp_path / "p.csv", index=False)
        args[args.index(SAMPLE_PRODUCTS)] = tmp_path / "p.csv"
        words = "at least two classes"
    elif case == "nan embeddings":
        array = np.ones((600, 4), dtype=np.float32)
        array[7, 2] = np.nan
        args += _embeddings(tmp_path, array)
        words = "NaN or infinite values in 1 rows"
    elif case == "wrong shape":
        args += _embeddings(tmp_path, np.ones((500, 4), dtype=np.float32))
        words = "they must match row for row"
    else:
        (tmp_path / "clip.safetensors").write_bytes(b"not weights at all")
        args += ["--encoder", "clip", "--clip-checkpoint", tmp_path / "clip.safetensors"]
        words = "cannot be read"
    r = run_cli(*args)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_disk_full_while_saving_is_one_message_and_no_partial_file(tmp_path, monkeypatch, capsys):
    import errno

    from core.cli.main import main

    def full_disk(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    rc = main([str(a) for a in (*BASE[:-7], *SMALL, "--targets", "onehot", "--out", tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: could not save") and "the disk is full" in err[-1]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert status(run_dir)["state"] == "failed" and "disk is full" in status(run_dir)["error"]
    assert not (run_dir / "predictions.parquet").exists()
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary file left behind
