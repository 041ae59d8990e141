"""What users run together, against one run store and one embedding cache: background trainings from
the app's launcher, `embed` twice at once, `embed --ray` with two workers, `predict` while a training
writes. Everything finishes, the vectors equal a serial run's, and no run is lost (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core.runs import store as runs
from core.runs.process import launch_background, wait_for
from core.settings import ExperimentConfig
from tests.conftest import ROOT, SAMPLE_PRODUCTS, SAMPLE_TAXONOMY

pytestmark = pytest.mark.slow
ROWS = "400"
EMBED = ["embed", "--data", SAMPLE_PRODUCTS, "--text-column", "title", "--id-column", "id", "--encoder", "minilm",
         "--max-rows", ROWS, "--chunk-rows", "100", "--quiet"]


def start(args, cache) -> subprocess.Popen:
    env = os.environ | {"TAXOLENS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return out


def queued_run(store: runs.RunStore, seed: int) -> runs.Run:
    config = ExperimentConfig(data=str(SAMPLE_PRODUCTS), label_columns=["category_path"], text_columns=["title"],
                              id_column="id", taxonomy=str(SAMPLE_TAXONOMY), encoder="minilm", max_rows=int(ROWS),
                              epochs=2, members=1, seed=seed)
    return store.create(config.to_dict(), name=f"together-{seed}")


def test_what_users_run_together_all_finishes_and_agrees_with_a_serial_run(tmp_path, monkeypatch):
    serial_cache, cache = tmp_path / "serial-cache", tmp_path / "cache"
    finish(start([*EMBED, "--out", tmp_path / "serial"], serial_cache))
    serial = np.load(tmp_path / "serial" / "features.npy")

    # embed twice at once, and on Ray with two workers, into one fresh cache
    together = [start([*EMBED, "--out", tmp_path / name], cache) for name in ("E1", "E2")]
    together.append(start([*EMBED, "--out", tmp_path / "E3", "--ray", "--workers", "2"], cache))
    for process in together:
        finish(process)
    for name in ("E1", "E2", "E3"):
        np.testing.assert_allclose(np.load(tmp_path / name / "features.npy"), serial, atol=1e-5)

    # three background trainings from the app's launcher, on that cache (repeated items across writers)
    monkeypatch.setenv("TAXOLENS_CACHE", str(cache))
    store = runs.RunStore(tmp_path / "runs")
    launched = [queued_run(store, seed) for seed in range(3)]
    processes = [launch_background(run.path) for run in launched]
    for run in launched:
        assert wait_for(run.path, timeout=900)["state"] == "done", (run.path / "run.log").read_text()[-2000:]
    for process in processes:
        process.wait(timeout=60)

    # predict with a finished run while another training writes into the same store and cache
    writer = queued_run(store, 3)
    training = launch_background(writer.path)
    finish(start(["predict", launched[0].path, "--data", SAMPLE_PRODUCTS, "--max-rows", ROWS, "--out",
                  tmp_path / "answers.parquet", "--quiet"], cache))
    assert wait_for(writer.path, timeout=900)["state"] == "done", (writer.path / "run.log").read_text()[-2000:]
    training.wait(timeout=60)

    assert sorted(r.name for r in store.finished()) == sorted(r.name for r in [*launched, writer])  # no run lost
    assert len(pd.read_parquet(tmp_path / "answers.parquet")) == int(ROWS)
