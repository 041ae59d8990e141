"""Shared fixtures: the real data beside the repo (skipped cleanly when absent) and a loaded text encoder;
the `slow` mark for every test that uses the fixtures that are slow to start."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE_TAXONOMY = ROOT / "sample_data" / "taxonomy.txt"
SAMPLE_PRODUCTS = ROOT / "sample_data" / "products.csv"


# Fixtures that load an encoder, train a run or start Ray: a test using one (directly or through another
# fixture) is `slow`, so `pytest -m "not slow"` (the fast tier) never waits on them.
SLOW_FIXTURES = {"minilm", "tree_run", "ray_head"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"real data not available: {path} (place ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test run gets its own embedding cache, so no test passes on a stale cache."""
    os.environ["TAXOLENS_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session", autouse=True)
def isolated_runs(tmp_path_factory):
    """No test writes into the repository's runs/: the app keeps its remembered settings and uploaded taxonomy
    there (app_state.json), which a later test, or the developer's app, would then start from."""
    os.environ["TAXOLENS_RUNS"] = str(tmp_path_factory.mktemp("default-runs"))


@pytest.fixture(scope="session")
def minilm():
    from core.data.encoders import load_encoder

    return load_encoder("minilm").encoder


@pytest.fixture(scope="session")
def small_tree():
    """The hand-worked tree used across the maths tests.

    A            (depth 1)
    |- A1        (2)
    |  |- a      (3)
    |  `- b      (3)
    `- A2        (2)
       `- c      (3)
    B            (1)
    `- d         (2)
    """
    from core.taxonomy.formats import load_taxonomy

    text = "A > A1 > a\nA > A1 > b\nA > A2 > c\nB > d\n"
    return load_taxonomy(text.encode())


TRAIN = ["train", "--data", SAMPLE_PRODUCTS, "--label-column", "category_path", "--text-column", "title", "--id-column", "id",
         "--taxonomy", SAMPLE_TAXONOMY, "--max-rows", "1500", "--encoder", "minilm", "--members", "1", "--quiet", "--json"]


@pytest.fixture(scope="session")
def tree_run(tmp_path_factory):
    """One finished run shared by the tests that read runs (train's --json summary). Tree soft labels
    with beta 3 give under-confident raw probabilities: the case calibration is for. Copy it before
    changing anything in it."""
    import json

    from tests.test_cli_taxonomy import run_cli

    # --no-lexical: with the lexical modality a 4-epoch tree run stays under-confident after temperature
    # scaling (calibrated ECE 0.11, raw 0.80), which this fixture's calibration tests were not written for;
    # tests/test_lexical.py covers the lexical model's training, saving and predicting
    r = run_cli(*TRAIN, "--targets", "tree", "--beta", "3", "--epochs", "4", "--no-lexical", "--out",
                tmp_path_factory.mktemp("store"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head():
    """A Ray head node on a free loopback port with token authentication, started once per test
    session and stopped afterwards. Yields its address and the environment a client needs."""
    import secrets
    import shutil
    import subprocess
    import sys
    import tempfile

    ray = Path(sys.executable).with_name("ray")
    port, temp_dir = free_port(), tempfile.mkdtemp(prefix="tlray-", dir="/tmp")
    env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--disable-usage-stats",
                    "--include-dashboard=false", "--num-cpus=2", f"--temp-dir={temp_dir}"],
                   env=env, check=True, capture_output=True, timeout=180)
    try:
        yield {"address": f"127.0.0.1:{port}", "env": env}
    finally:
        stop_ray_node(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_ray_node(temp_dir: str, grace_s: float = 20.0) -> None:
    """Stop the Ray node whose files live in `temp_dir` and nothing else: `ray stop` ends every Ray
    process of the machine, other people's sweeps and test sessions included. The node is the
    processes naming `temp_dir` on their command line plus all their descendants (the agents rename
    themselves `ray::...`), collected before any is signalled so none is orphaned."""
    import signal
    import time

    def procs() -> dict[int, tuple[int, bytes]]:  # pid -> (parent pid, command line)
        out = {}
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit():
                    stat = (d / "stat").read_text()
                    out[int(d.name)] = (int(stat[stat.rindex(")") + 2:].split()[1]), (d / "cmdline").read_bytes())
            except (OSError, ValueError):
                continue
        return out

    table = procs()
    node = {pid for pid, (_, cmd) in table.items() if temp_dir.encode() in cmd}
    while True:
        more = {pid for pid, (ppid, _) in table.items() if ppid in node} - node
        if not more:
            break
        node |= more
    for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL only for what outlived the grace period
        for pid in node:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while (node := {pid for pid in node if _running(pid)}) and time.monotonic() < deadline:
            time.sleep(0.2)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def good_store(tmp_path, monkeypatch, tree_run):
    """A run store (the app's TAXOLENS_RUNS) holding a copy of the shared finished run."""
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(tree_run["run_dir"], root / "20990101-000000-good")
    monkeypatch.setenv("TAXOLENS_RUNS", str(root))
    return root


@pytest.fixture
def run_store(tmp_path, monkeypatch):
    """An empty run store for the app's pages (TAXOLENS_RUNS)."""
    monkeypatch.setenv("TAXOLENS_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture(scope="session", autouse=True)
def app_runs_through_app_py():
    """AppTest resets Streamlit's legacy-`pages/` flag before every run, and in that mode a page file runs
    alone, without app.py (its navigation, its one error guard). A server clears the flag for good on its
    first run (pages/shared.py); here app.py runs every time, as it does on a server from then on."""
    import types

    from streamlit.runtime.scriptrunner import script_runner

    def run_app_py(main_script_path: str) -> None:
        module = types.ModuleType("__main__")
        module.__file__ = main_script_path
        exec(compile(Path(main_script_path).read_text(), main_script_path, "exec"), module.__dict__)

    legacy, script_runner._mpa_v1 = script_runner._mpa_v1, run_app_py
    yield
    script_runner._mpa_v1 = legacy


def app_test(name: str, timeout: int = 300) -> object:
    """The app opened on a page, not yet run: through app.py, as a person sees it, so the page's errors
    pass through the app's one guard (a user's mistake as st.error, a bug as a bug)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout).switch_page(f"pages/{name}.py")


def app_page(name: str, timeout: int = 300) -> object:
    """A page of the app run once through AppTest; it must render without an exception."""
    at = app_test(name, timeout)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
