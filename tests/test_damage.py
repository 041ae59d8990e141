"""Every file a run, a features folder and the embedding cache hold, corrupted in every way its format
allows; every reader answers with one clear message (or reads past the damage), keeps the other runs
usable and never crashes. The files come from the stores' own declarations (RUN_FILES, FEATURE_FILES,
CACHE_FILES), so a file added there is damaged here too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli.main import main
from core.data.featuredir import FEATURE_FILES
from core.data.itemcache import CACHE_FILES
from core.runs.store import RUN_FILES, Run, RunStore
from tests.conftest import SAMPLE_PRODUCTS, app_page

pytestmark = pytest.mark.slow


def _numbers_to_nan(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float("nan")
    if isinstance(value, dict):
        return {k: _numbers_to_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_to_nan(v) for v in value]
    return value


def _rewrite_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _rewrite_jsonl(path: Path, change) -> None:
    path.write_text("".join(json.dumps(change(json.loads(line))) + "\n" for line in path.read_text().splitlines()))


def _rewrite_npy(path: Path, change) -> None:
    np.save(path, change(np.load(path)), allow_pickle=False)
    if path.suffix != ".npy":  # np.save appends .npy to any other name
        Path(f"{path}.npy").replace(path)


def _rewrite_safetensors(path: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    save_file({k: change(v).contiguous() for k, v in load_file(str(path)).items()}, str(path))


def _rewrite_parquet(path: Path, change) -> None:
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def _nan_frame(frame: pd.DataFrame) -> pd.DataFrame:
    numeric = frame.select_dtypes("number").columns
    return frame.assign(**{c: np.nan for c in numeric})


COMMON = {
    "missing": lambda p: p.unlink(),
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)]),
    "garbage": lambda p: p.write_bytes(b"\xff\x00\x13garbage" * 16),
}
BY_FORMAT = {
    "json": {"wrong JSON type": lambda p: p.write_text("[1, 2, 3]"),
             "NaN": lambda p: _rewrite_json(p, _numbers_to_nan),
             "wrong shape": lambda p: _rewrite_json(p, lambda d: {k: {"x": []} for k in d} if isinstance(d, dict) else {})},
    "jsonl": {"wrong JSON type": lambda p: p.write_text("[1, 2]\n\"text\"\n"),
              "NaN": lambda p: _rewrite_jsonl(p, _numbers_to_nan),
              "wrong shape": lambda p: p.write_text('{"epoch": "first", "train_loss": [1]}\n')},
    "parquet": {"NaN": lambda p: _rewrite_parquet(p, _nan_frame),
                "wrong shape": lambda p: pd.DataFrame({"x": [1, 2]}).to_parquet(p, index=False)},
    "safetensors": {"NaN": lambda p: _rewrite_safetensors(p, lambda t: t * float("nan")),
                    "wrong shape": lambda p: _rewrite_safetensors(p, lambda t: t.reshape(-1)[:-1] if t.numel() > 1 else t),
                    "other dtype": lambda p: _rewrite_safetensors(p, lambda t: t.half())},
    "npy": {"NaN": lambda p: _rewrite_npy(p, lambda a: np.full(a.shape, np.nan) if a.dtype.kind == "f" else a.astype(np.float32) * np.nan),
            "wrong shape": lambda p: _rewrite_npy(p, lambda a: a.reshape(len(a), -1)[:, :-1] if a.size > len(a) else a[:-1])},
}


def damages(fmt: str) -> dict:
    return COMMON | BY_FORMAT[fmt]


def cases(declared: dict) -> list:
    return [pytest.param(name, kind, id=f"{name}-{kind}") for name, (fmt, _) in declared.items() for kind in damages(fmt)]


def one_clear_answer(code: int, err: str) -> None:
    """The CLI's contract: success, or exit 2 with one line saying what is wrong."""
    assert code in (0, 2), err
    if code == 2:
        lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and lines[0].strip() != "error:", err
    assert "Traceback" not in err


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ----- runs ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def damaged_stores(tree_run, tmp_path_factory):
    """Per declared run file, a store holding a healthy run and one copy per kind of damage."""
    stores = {}
    for name, (fmt, _) in RUN_FILES.items():
        root = tmp_path_factory.mktemp("damaged")
        shutil.copytree(tree_run["run_dir"], root / "20990101-000000-good")
        (root / "20990101-000000-good" / "progress.json").write_text('{"stage": "train epoch", "done": 4, "total": 4}')
        for number, (kind, damage) in enumerate(damages(fmt).items()):
            run = root / f"2098010{number}-000000-{kind.replace(' ', '-').lower()}"
            shutil.copytree(root / "20990101-000000-good", run)
            damage(run / name)
        stores[name] = root
    return stores


@pytest.mark.parametrize("name", list(RUN_FILES))
def test_runs_lists_every_damaged_run_and_keeps_the_good_one(damaged_stores, capsys, name):
    code, out, err = cli(capsys, "runs", damaged_stores[name], "--json")
    one_clear_answer(code, err)
    rows = {r["run_id"]: r for r in json.loads(out.strip().splitlines()[-1])}
    assert rows.pop("20990101-000000-good")["state"] == "done"
    for row in rows.values():
        assert row["state"] in ("done", "damaged"), row
        if row["state"] == "damaged":
            assert name in row["error"] or "status.json" in row["error"], row


@pytest.mark.parametrize(("name", "kind"), cases(RUN_FILES))
def test_compare_and_predict_on_a_damaged_run(damaged_stores, capsys, tmp_path, name, kind):
    root = damaged_stores[name]
    good = root / "20990101-000000-good"
    bad = next(p for p in root.iterdir() if p.name.endswith(kind.replace(" ", "-").lower()))
    one_clear_answer(*cli(capsys, "compare", good, bad)[::2])
    code, _, err = cli(capsys, "compare", good, good)
    assert code == 0, err
    out = tmp_path / "answers.csv"
    code, _, err = cli(capsys, "predict", bad, "--data", SAMPLE_PRODUCTS, "--max-rows", "30", "--out", out, "--quiet")
    one_clear_answer(code, err)
    if code == 0:  # read past the damage: the answers are whole and finite
        answers = pd.read_csv(out)
        assert len(answers) == 30 and np.isfinite(answers["prob_1"]).all()
    else:
        assert not out.exists()


@pytest.mark.parametrize("name", list(RUN_FILES))
@pytest.mark.parametrize("page", ["training", "errors", "categorize"])
def test_app_pages_open_on_a_store_of_damaged_runs(damaged_stores, monkeypatch, name, page):
    monkeypatch.setenv("TAXOLENS_RUNS", str(damaged_stores[name]))
    at = app_page(page)  # asserts no exception
    if page == "categorize":
        assert "20990101-000000-good" in at.selectbox(key="categorize_run").options
    assert Run(damaged_stores[name] / "20990101-000000-good") in RunStore(damaged_stores[name]).finished()


# ----- a features folder ----------------------------------------------------------------------------------
EMBED = ["embed", "--data", SAMPLE_PRODUCTS, "--text-column", "title", "--id-column", "id", "--encoder", "minilm",
         "--max-rows", "200", "--chunk-rows", "100", "--quiet"]


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features") / "F"
    assert main([str(a) for a in (*EMBED, "--out", folder)]) == 0
    return folder


@pytest.mark.parametrize(("name", "kind"), cases(FEATURE_FILES))
def test_a_damaged_features_folder_is_refused_or_rebuilt(features, tree_run, capsys, tmp_path, name, kind):
    folder = Path(shutil.copytree(features, tmp_path / "F"))
    damages(FEATURE_FILES[name][0])[kind](folder / name)
    out = tmp_path / "answers.csv"
    code, _, err = cli(capsys, "predict", tree_run["run_dir"], "--data", SAMPLE_PRODUCTS, "--max-rows", "200",
                       "--features", folder, "--out", out, "--quiet")
    one_clear_answer(code, err)
    if code == 0:
        assert np.isfinite(pd.read_csv(out)["prob_1"]).all()
    code, _, err = cli(capsys, *EMBED, "--out", folder)  # embed again: resumes, redoes or refuses
    one_clear_answer(code, err)
    if code == 0:
        np.testing.assert_array_equal(np.load(folder / "features.npy"), np.load(features / "features.npy"))


# ----- the embedding cache --------------------------------------------------------------------------------
@pytest.mark.parametrize(("suffix", "kind"), cases(CACHE_FILES))
def test_a_damaged_cache_shard_is_never_served(features, capsys, tmp_path, monkeypatch, suffix, kind):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TAXOLENS_CACHE", str(cache))
    from core.data import encoders

    encoders._CACHES.clear()
    assert main([str(a) for a in (*EMBED, "--out", tmp_path / "first")]) == 0
    for shard in sorted(cache.rglob("*.keys.npy")):
        path = Path(str(shard).removesuffix(".keys.npy") + suffix)
        damages("npy")[kind](path)
    encoders._CACHES.clear()  # a new process's view of the cache
    code, _, err = cli(capsys, *EMBED, "--out", tmp_path / "again")
    one_clear_answer(code, err)
    assert code == 0
    np.testing.assert_allclose(np.load(tmp_path / "again" / "features.npy"), np.load(features / "features.npy"), atol=1e-5)
