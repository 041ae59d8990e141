"""Training page: what a new user meets with an upload, live progress, the runs table and Compare (AppTest)."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from core import runs
from tests.conftest import ROOT

TIMEOUT = 300


@pytest.fixture(autouse=True)
def run_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def training() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "training.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio[0].set_value("Upload a product table").run()
    at.file_uploader[0].upload(name, data, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_messages_about_an_upload_name_the_users_file():
    at = upload(training(), "empty.csv", b"id,title,category_path\n")
    (error,) = at.error
    assert "empty\\.csv holds no rows" in error.value  # escaped markdown of "empty.csv holds no rows"
    assert not re.search(r"[0-9a-f]{12}", error.value)  # no internal content-hash name


def test_columns_that_do_not_fit_are_not_guessed(run_store):
    at = upload(training(), "items.csv", b"sku,colour,price\nA1,red,9.5\nA2,blue,3\nA3,red,4\n")
    label = next(m for m in at.multiselect if m.label.startswith("Label column"))
    text = next(m for m in at.multiselect if m.label == "Text column(s)")
    assert label.value == [] and text.value == []
    assert next(s for s in at.selectbox if s.label == "Id column").value == "sku"
    assert any("No column looks like a category label" in i.value and "Footwear > Boots" in i.value for i in at.info)
    at.button[0].click().run()
    assert any("Choose at least one label column" in e.value for e in at.error)
    assert runs.RunStore(run_store).runs() == []


def test_live_progress_shows_the_embedding_step(run_store):
    run = runs.RunStore(run_store).create({"epochs": 8, "targets": "semantic"}, name="demo")
    runs.set_status(run.path, "running")  # owned by this (live) test process
    runs.ProgressFile(run.path)("embed products", 1200, 4604)
    at = training()
    (bar,) = at.get("progress")
    assert "embedding products 1,200/4,604" in bar.proto.text
    assert bar.proto.value == round(100 * 1200 / 4604)


def test_compare_puts_metrics_first_as_numbers_and_tells_settings_apart(run_store, tree_run):
    import json
    import shutil

    run_store.mkdir(parents=True)
    for name, temperature in (("20990101-000000-cold", 0.05), ("20990101-000001-warm", 1.0)):
        shutil.copytree(tree_run["run_dir"], run_store / name)
        config = json.loads((run_store / name / "config.json").read_text()) | {"targets": "semantic", "temperature": temperature}
        (run_store / name / "config.json").write_text(json.dumps(config))
    at = training()
    compared = next(d.value for d in at.dataframe if d.value.columns[0] == "status")  # the runs table starts with run_id
    assert list(compared.columns[:4]) == ["status", "top1", "top5", "mistake_severity"]
    assert compared["top1"].dtype == float and compared["temperature"].dtype == float  # numbers, not strings
    spec = json.loads(next(c for c in at.get("plotly_chart") if "Accuracy against" in c.proto.spec).proto.spec)
    names = sorted(t["name"] for t in spec["data"])
    assert len(names) == 2 and "T=0.05" in names[0] and "T=1" in names[1]  # same kind, different T: different colours
    x_range = spec["layout"]["xaxis"]["range"]
    severity = compared["mistake_severity"].iloc[0]
    assert x_range[0] < severity < x_range[1] and x_range[1] - x_range[0] < 0.5
