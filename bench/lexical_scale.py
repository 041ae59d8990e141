"""The lexical fast path at catalog scale (issue 18, "Speed"): a lexical-only single model (`--encoder none
--members 1`) categorizes 1,000,000 distinct titles from a cold start (a fresh process, an empty embedding cache),
and the default model (MiniLM + lexical) predicts 20,000 titles with a warm cache. Wall time includes
loading the model; peak RSS is the `predict` process alone (bench/predict.py's `cli`).

    .venv/bin/python bench/lexical_scale.py      # writes bench/results/lexical_scale.json
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from predict import ROOT, WORK, cli  # noqa: E402

SAMPLE = ["--data", ROOT / "sample_data" / "products.csv", "--label-column", "category_path", "--text-column", "title",
          "--id-column", "id", "--taxonomy", ROOT / "sample_data" / "taxonomy.txt"]


def train(*args: object) -> str:
    line, _, _ = cli("train", *SAMPLE, *args, "--quiet", "--json", "--out", WORK / "runs")
    return json.loads(line)["run_dir"]


def titles(n: int) -> pd.DataFrame:
    base = pd.read_csv(ROOT / "sample_data" / "products.csv", dtype=str).title.tolist()
    return pd.DataFrame({"id": [f"n{i}" for i in range(n)], "title": [f"{base[i % len(base)]} (lot {i})" for i in range(n)]})


def timed_predict(run: str, data: Path, items: int, env: dict) -> dict:
    _, wall, rss = cli("predict", run, "--data", data, "--out", WORK / "out.parquet", "--quiet", env=env)
    return {"items": items, "seconds": round(wall, 1), "items_per_s": round(items / wall), "peak_rss_mb": round(rss)}


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    env = {"TAXOLENS_CACHE": tempfile.mkdtemp(prefix="cache-", dir=WORK)}
    os.environ.update(env)
    results = {}
    lexical_run = train("--encoder", "none", "--members", "1", "--epochs", "6")
    big = WORK / "distinct-1m.csv"
    titles(1_000_000).to_csv(big, index=False)
    results["lexical only, 1,000,000 distinct titles, cold start"] = timed_predict(lexical_run, big, 1_000_000, env)
    print(results, flush=True)
    default_run = train("--encoder", "minilm", "--epochs", "6")
    small = WORK / "distinct-20k.csv"
    titles(20_000).to_csv(small, index=False)
    timed_predict(default_run, small, 20_000, env)  # fills the cache
    results["default (MiniLM + lexical), 20,000 titles, warm cache"] = timed_predict(default_run, small, 20_000, env)
    print(results, flush=True)
    (ROOT / "bench" / "results" / "lexical_scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
