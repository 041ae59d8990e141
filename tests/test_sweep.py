"""Sweeps: space and objective parsing, the Pareto set and the report's statistics by hand; the CLI's
bad input; real two-trial sweeps on the embedded local Ray and on a Ray head node."""

import json
import math
import subprocess
import sys

import pytest

from core import files
from core.cli.main import main
from core.runs import store as runs
from core.scale import sweep
from tests.conftest import ROOT, SAMPLE_PRODUCTS, SAMPLE_TAXONOMY, app_test, free_port

DATA = ["--data", SAMPLE_PRODUCTS, "--label-column", "category_path", "--text-column", "title", "--id-column", "id",
        "--taxonomy", SAMPLE_TAXONOMY, "--encoder", "minilm", "--max-rows", "600", "--epochs", "2", "--members", "1"]


def test_objectives_parse_and_reject():
    assert sweep.parse_objectives("top1:max, hdist@5:min") == [("top1", "max"), ("hdist@5", "min")]
    for text, word in [("top1", "needs a direction"), ("top2:max", "unknown metric 'top2'"), ("top1:up", "unknown direction"),
                       ("", "no objectives"), ("top1:max,top1:min", "twice")]:
        with pytest.raises(sweep.SweepError, match=word):
            sweep.parse_objectives(text)
    assert {"top1", "hdist@5", "mistake_severity", "semsim@5", "ece", "hier_f1"} <= set(sweep.metric_keys())


def test_default_space_is_valid_and_grid_values():
    dims = {d.name: d for d in sweep.parse_space(sweep.DEFAULT_SPACE)}
    assert dims["targets"].choices == ("onehot", "semantic", "tree", "hybrid")
    assert dims["k"].integer and dims["k"].grid_values() == [3, 11, 40]  # geomspace(3, 40, 3) rounded
    assert dims["mix"].grid_values() == [0.0, 0.5, 1.0]
    assert sweep.grid_size(sweep.parse_space({"targets": ["semantic", "hybrid"], "alpha": {"low": 0.1, "high": 0.3, "points": 2}})) == 4


@pytest.mark.parametrize(("space", "word"), [
    ({}, "empty"),
    ([], "empty"),
    ({"seed": [0, 1]}, "cannot be searched"),
    ({"alpha": {"low": 0.4, "high": 0.1}}, "above high"),
    ({"alpha": {"low": 0.1, "high": 2.0}}, "alpha must be >= 0 and <= 1"),
    ({"targets": ["semantic", "cubist"]}, "targets must be one of"),
    ({"targets": []}, "empty list"),
    ({"temperature": {"low": 0.0, "high": 1.0, "log": True}}, "temperature must be > 0"),
    ({"targets": ["onehot", "tree"], "temperature": {"low": 0.05, "high": 1.0}}, "none of its target kinds"),
    ({"aux_codes": {"low": 0, "high": 1}}, "numeric setting"),
])
def test_bad_spaces_say_what_is_wrong(space, word):
    with pytest.raises(sweep.SweepError, match=word):
        sweep.parse_space(space)


def test_pareto_front_by_hand():
    objectives = [("top1", "max"), ("hdist@5", "min")]
    points = [{"top1": 0.5, "hdist@5": 2.0},   # 0: front
              {"top1": 0.4, "hdist@5": 1.5},   # 1: front
              {"top1": 0.4, "hdist@5": 2.0},   # 2: dominated by 0 and 1
              {"top1": 0.5, "hdist@5": 2.0},   # 3: ties 0, so neither dominates: front
              None,                            # 4: a failed trial
              {"top1": 0.6, "hdist@5": None}]  # 5: missing hdist counts as worst; still best top1: front
    assert sweep.pareto_front(points, objectives) == [0, 1, 3, 5]
    assert sweep.pareto_front(points[:3], [("top1", "max")]) == [0]


def test_interval_and_recommendation_by_hand():
    s = sweep.interval([0.5, 0.6, 0.7])  # mean 0.6, sd 0.1, t(0.975, 2) = 4.302653
    assert s["mean"] == pytest.approx(0.6) and s["hi"] - s["mean"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert sweep.interval([0.4, None])["lo"] is None
    arm = lambda top1, lo, hdist: {"top1": {"mean": top1, "lo": lo}, "hdist@5": {"mean": hdist}}  # noqa: E731
    arms = {"one-hot": arm(0.60, 0.55, 2.0), "pareto 1": arm(0.54, 0.5, 1.0), "pareto 2": arm(0.56, 0.5, 1.5),
            "pareto 3": arm(0.62, 0.6, 1.8)}
    assert sweep.recommend(arms) == "pareto 2"  # pareto 1 is milder but below one-hot's interval
    assert sweep.recommend({"one-hot": arm(0.6, 0.58, 2.0), "pareto 1": arm(0.5, 0.4, 1.0)}) == "one-hot"


@pytest.mark.parametrize(("extra", "message"), [
    (["--objectives", "top1:max,nope:min"], "unknown metric 'nope'"),
    (["--objectives", "top1:sideways"], "unknown direction 'sideways'"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--space", "EMPTY"], "the search space is empty"),
    (["--space", "CONTRADICTORY"], "none of its target kinds"),
    (["--ray-address", "UNREACHABLE"], "no Ray cluster answers at 127.0.0.1"),
])
def test_bad_sweep_input_exits_2_with_one_line(tmp_path, capsys, extra, message):
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    (tmp_path / "contra.json").write_text(json.dumps({"targets": ["onehot"], "beta": {"low": 1, "high": 5}}))
    subst = {"EMPTY": tmp_path / "empty.yaml", "CONTRADICTORY": tmp_path / "contra.json",
             "UNREACHABLE": f"127.0.0.1:{free_port()}"}
    store = tmp_path / "runs"
    code = main(["sweep", *map(str, DATA), "--out", str(store), *[str(subst.get(a, a)) for a in extra]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1] and "Traceback" not in "\n".join(err)
    assert not store.exists()  # nothing was created in the store


def run_sweep(*args, env=None):
    return subprocess.run([sys.executable, "-m", "core", "sweep", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=env)


def check_trials(result: dict, store, objectives):
    """Each trial is a finished run tagged with the sweep id, scored on its validation metrics, and
    `pareto` is exactly the non-dominated set of those metrics."""
    for t in result["trials"]:
        run_dir = store / t["run_id"]
        config = files.read_json(run_dir / "config.json")
        assert config["sweep"]["id"] == result["sweep_id"] and config["sweep"]["phase"] == "search"
        assert runs.Run(run_dir).state == "done"
        metrics = files.read_json(run_dir / "metrics.json")
        assert t["val"] == metrics["val"] and metrics["val"]["n"] == metrics["n_val"]  # validation, not test
        assert {k: config[k] for k in t["config"]} == t["config"]
    vals = [t["val"] for t in result["trials"]]
    def better_or_equal(o, v, m, d):
        return o[m] >= v[m] if d == "max" else o[m] <= v[m]

    # o dominates v: at least as good on every objective and strictly better on one (a tie dominates nothing)
    dominated = [any(all(better_or_equal(o, v, m, d) for m, d in objectives) and any(o[m] != v[m] for m, _ in objectives)
                     for o in vals) for v in vals]
    assert result["pareto"] == [t["run_id"] for t, dom in zip(result["trials"], dominated, strict=True) if not dom]


@pytest.mark.slow
def test_grid_sweep_on_the_embedded_local_ray(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("targets: [semantic, hybrid]\nalpha: 0.2\nmix: 0.5\n")
    store = tmp_path / "runs"
    r = run_sweep(*DATA, "--space", space, "--search", "grid", "--trials", "2", "--seeds", "0", "--out", store, "--json",
                  "--objectives", "top1:max,mistake_severity:min")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["engine"] == "ray-local" and result["address"].startswith("127.0.0.1:")  # loopback only
    assert sorted(t["config"]["targets"] for t in result["trials"]) == ["hybrid", "semantic"]
    check_trials(result, store, [("top1", "max"), ("mistake_severity", "min")])
    assert files.read_json(store / "_sweeps" / result["sweep_id"] / "sweep.json")["state"] == "done"


@pytest.mark.slow
def test_nsga2_sweep_and_report_on_a_ray_head_node(tmp_path, ray_head):
    store = tmp_path / "runs"
    r = run_sweep(*DATA, "--trials", "2", "--seeds", "2", "--ray-address", ray_head["address"], "--out", store, "--json",
                  env=ray_head["env"])
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert (result["engine"], result["address"]) == ("ray-cluster", ray_head["address"])
    assert len(result["trials"]) == 2
    check_trials(result, store, [("top1", "max"), ("hdist@5", "min")])
    rep = result["report"]
    names = [a["name"] for a in rep["arms"]]
    assert names == ["one-hot", *[f"pareto {i + 1}" for i in range(len(result["pareto"]))], "one-hot + CRM"]
    for arm in rep["arms"]:
        assert arm["test"]["top1"]["n"] == 2 and arm["test"]["top1"]["lo"] <= arm["test"]["top1"]["mean"] <= arm["test"]["top1"]["hi"]
        for run_id in arm["runs"]:
            assert files.read_json(store / run_id / "config.json")["sweep"]["phase"] == "report"
    assert rep["recommended"]["arm"] == sweep.recommend({a["name"]: a["test"] for a in rep["arms"]})
    assert "recommended:" in r.stdout
    again = subprocess.run([sys.executable, "-m", "core", "sweep", "report", result["sweep_id"], "--out", str(store), "--json"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == rep


@pytest.mark.slow
def test_tune_page_shows_a_sweep_and_adopts_a_trial(tmp_path, monkeypatch):
    """A recorded sweep on the page: trials table, front, 'use these settings' sets the remembered defaults
    the Smoothing and Training pages read; an empty choice of kinds is refused before any folder exists."""

    store = tmp_path / "runs"
    monkeypatch.setenv("TAXOLENS_RUNS", str(store))
    folder = store / "_sweeps" / "sweep-20260101-000000-abcd"
    trial = lambda run_id, targets, alpha, top1, hdist: {  # noqa: E731
        "run_id": run_id, "config": {"targets": targets, "alpha": alpha, "temperature": 0.25, "k": 7},
        "val": {"top1": top1, "hdist@5": hdist}}
    files.write_json(folder / "sweep.json", {"sweep_id": folder.name, "state": "done", "engine": "ray-local",
                                            "objectives": ["top1:max", "hdist@5:min"],
                                            "trials": [trial("r-a", "semantic", 0.3, 0.6, 1.5), trial("r-b", "hybrid", 0.2, 0.5, 2.0)],
                                            "pareto": ["r-a"]})
    at = app_test("tune", 120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["run_id"]) == ["r-a", "r-b"] and list(table["pareto"]) == [True, False]
    next(s for s in at.selectbox if s.label == "Trial").set_value("r-b").run()
    next(b for b in at.button if b.label == "Use these settings").click().run()
    assert {k: at.session_state["_persist"][k] for k in ("targets", "alpha", "temperature", "k")} == \
        {"targets": "hybrid", "alpha": 0.2, "temperature": 0.25, "k": 7}
    next(m for m in at.multiselect if m.label == "Target kinds").set_value([])  # no target kinds (a form: the value goes with the submit)
    next(b for b in at.button if b.label == "Launch sweep").click().run()
    assert not at.exception and at.error and "empty list of choices" in at.error[0].value
    assert sweep.list_sweeps(store) == [folder.name]


def test_list_sweeps_read_record_and_progress(tmp_path):
    """Issue 20, item 3: a sweep the app requested (request.json only, while Ray and the embedding start)
    was not listed, so the page said 'No sweeps yet' until a reload long after it had finished."""
    folder = tmp_path / "_sweeps" / "sweep-20260101-000000-abcd"
    files.write_json(folder / "request.json", {"objectives": "top1:max,hdist@5:min", "trials": 3, "seeds": 2,
                                              "base": {"data": "/x/mine.csv"}})
    assert sweep.list_sweeps(tmp_path) == [folder.name]
    record = sweep.read_record(folder)
    assert (record["state"], record["trials_asked"], record["base"]["data"]) == ("starting", 3, "/x/mine.csv")
    assert sweep.progress(record)[0] == 0.0 and "starting" in sweep.progress(record)[1]
    step = {"stage": "embed_items", "done": 250, "total": 1000}  # what the sweep process writes to progress.json
    assert sweep.progress(record, step, {"embed_items": "embedding products"}) == (
        0.25, "starting: embedding products 250/1,000, then 3 trials")
    trial = {"run_id": "r1", "config": {}, "val": {}}
    files.write_json(folder / "sweep.json", {"sweep_id": folder.name, "state": "running", "trials": [trial]})
    assert sweep.progress(sweep.read_record(folder)) == (pytest.approx(1 / 3), "trial 1 of 3 finished (validation split)")
    files.write_json(folder / "sweep.json", {"sweep_id": folder.name, "state": "reporting", "trials": [trial] * 3})
    assert "over 2 seeds" in sweep.progress(sweep.read_record(folder))[1]
    onehot = {"run_id": "r2", "config": {"targets": "onehot", "alpha": 0.3, "template": "name"}, "val": {}}
    frame = sweep.trials_frame({"trials": [onehot], "pareto": []})  # issue 20, item 7: alpha did nothing to it
    assert frame.loc[0, "alpha"] is None and frame.loc[0, "template"] == "name"
    sweep.mark_failed(folder, "Ray would not start")
    assert files.read_json(folder / "sweep.json")["state"] == "failed" and sweep.read_record(folder)["error"] == "Ray would not start"
    sweep.mark_failed(folder, "again")  # an ended sweep is left as it is
    assert files.read_json(folder / "sweep.json")["error"] == "Ray would not start"


def test_tune_on_an_uploaded_table_and_follow_it_live(tmp_path, monkeypatch):
    """Issue 20, items 2 and 3: the analyst's own table (the Training page's upload and column choice)
    is what the sweep reads; after Launch the page shows the sweep at once and follows it, trial by
    trial, to its trials table, without a reload."""
    import pandas as pd

    store = tmp_path / "runs"
    monkeypatch.setenv("TAXOLENS_RUNS", str(store))
    started = []
    monkeypatch.setattr(sweep, "launch_background", lambda folder, **kw: started.append(folder))
    table = pd.read_csv(SAMPLE_PRODUCTS, nrows=400).rename(columns={"category_path": "my_category", "title": "name"})
    at = app_test("tune", 120)
    at.run()
    at.radio[0].set_value("Upload a product table").run()
    at.file_uploader[0].upload("my catalog.csv", table.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    next(m for m in at.multiselect if m.label == "Label column(s), top level first").set_value(["my_category"])
    next(m for m in at.multiselect if m.label == "Text column(s)").set_value(["name", "description"])
    next(n for n in at.number_input if n.label == "Trials").set_value(2)
    next(n for n in at.number_input if n.label == "Epochs").set_value(2)
    next(b for b in at.button if b.label == "Launch sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (folder,) = started
    asked = files.read_json(folder / "request.json")
    assert asked["base"]["data"].endswith("my catalog.csv") and asked["base"]["label_columns"] == ["my_category"]
    assert (asked["base"]["text_columns"], asked["base"]["epochs"], asked["trials"]) == (["name", "description"], 2, 2)

    def bar() -> str:
        (progress,) = at.get("progress")
        return progress.proto.text

    assert not any("No sweeps yet" in i.value for i in at.info)
    assert "my catalog.csv" in bar() and "starting" in bar() and any("started in the background" in s.value for s in at.success)
    trial = {"run_id": "r-a", "config": {"targets": "semantic", "alpha": 0.3587435924002349}, "val": {"top1": 0.6, "hdist@5": 1.5}}
    files.write_json(folder / "sweep.json", {"sweep_id": folder.name, "state": "running", "objectives": ["top1:max", "hdist@5:min"],
                                            "base": asked["base"], "trials": [trial], "pareto": []})
    at.run()  # what the page's 2-second redraw does
    assert "trial 1 of 2 finished" in bar() and at.dataframe[0].value["alpha"].tolist() == [0.359]
    files.write_json(folder / "sweep.json", {"sweep_id": folder.name, "state": "done", "objectives": ["top1:max", "hdist@5:min"],
                                            "base": asked["base"], "trials": [trial, trial | {"run_id": "r-b"}],
                                            "pareto": ["r-a"]})
    at.run()
    assert not at.exception and "done: 2 of 2 trials" in bar()
    assert at.dataframe[0].value["run_id"].tolist() == ["r-a", "r-b"]


@pytest.mark.slow
def test_a_sweep_cancelled_while_it_embeds_stops_there_and_runs_no_trial(tmp_path):
    """Cancel on the Tune page while the sweep still embedded the products did nothing until the trials
    began: the whole catalog was embedded first. Now the next progress step ends the sweep as cancelled."""
    import pandas as pd

    frame = pd.read_csv(SAMPLE_PRODUCTS).head(300)
    frame["title"] = frame["title"] + " (cancel test)"  # titles no earlier test has put in the item cache
    frame.to_csv(tmp_path / "products.csv", index=False)
    base = sample_config(tmp_path / "products.csv")
    store = tmp_path / "runs"
    sweep_id = "sweep-20260101-000000-cafe"
    folder = sweep.sweeps_root(store) / sweep_id
    folder.mkdir(parents=True)
    events = []

    def press_cancel_once_embedding_starts(stage, done, total):
        events.append((stage, done, total))
        (folder / "cancel.request").touch()

    record = sweep.sweep(base, sweep.parse_space({"targets": ["semantic", "onehot"]}, base),
                         sweep.parse_objectives("top1:max,mistake_severity:min"), trials=2, store=store,
                         sweep_id=sweep_id, on_event=press_cancel_once_embedding_starts)
    assert record["state"] == "cancelled" and record["trials"] == []
    assert files.read_json(folder / "sweep.json")["state"] == "cancelled"
    assert len(events) == 1 and events[0][1] < events[0][2]  # stopped at the first step, not after embedding 300
    assert runs.RunStore(store).runs() == []  # no trial's run folder was made


def test_the_preparation_callback_stops_a_cancelled_sweep(tmp_path):
    seen = []
    event = sweep._cancellable(lambda *a: seen.append(a), tmp_path)
    event("embed_items", 1, 10)
    (tmp_path / "cancel.request").touch()
    with pytest.raises(sweep._CancelledWhileStarting):
        event("embed_items", 2, 10)
    assert seen == [("embed_items", 1, 10)]


def sample_config(data):
    from core.settings import ExperimentConfig

    return ExperimentConfig(data=str(data), label_columns=["category_path"], text_columns=["title"], id_column="id",
                            taxonomy=SAMPLE_TAXONOMY, encoder="minilm", epochs=1, members=1)
