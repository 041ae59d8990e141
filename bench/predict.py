"""`predict` throughput and memory: the 'Categorizing new products' rows of BENCHMARKS.md.

    .venv/bin/python bench/predict.py            # ~10 min on 2 cores

1. a text run on the sample catalog; `predict` on 20,000 distinct titles with an empty embedding
   cache, then the same file again (warm cache);
2. an image-only run on fashion-small's precomputed CLIP embeddings; `predict` on its 2,000 items;
3. peak RSS of `predict` on 1,000,000 rows (the 20,000 titles repeated, so the warm cache measures the
   streaming itself, not MiniLM): it must stay flat, well under 1.5 GB.
Each `predict` runs in its own process; its wall time includes loading the model and the encoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT.parent / "shared" / "data" / "fashion-small"
WORK = Path(os.environ.get("TAXOLENS_BENCH_DIR", "/tmp/taxolens-bench")) / "predict"


def cli(*args: object, env: dict | None = None) -> tuple[str, float, float]:
    """(last stdout line, wall seconds, peak RSS MB of that child alone, read with wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, stdout=out, stderr=err,
                                env=os.environ | {"HF_HUB_OFFLINE": "1"} | (env or {}))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(err.read())
        return out.read().strip().splitlines()[-1], wall, usage.ru_maxrss / 1024


def train(*args: object) -> str:
    line, _, _ = cli("train", *args, "--encoder", "minilm", "--epochs", "6", "--quiet", "--json", "--out", WORK / "runs")
    return json.loads(line)["run_dir"]


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    cache = tempfile.mkdtemp(prefix="cache-", dir=WORK)
    env = {"TAXOLENS_CACHE": cache}
    os.environ.update(env)
    products = pd.read_csv(ROOT / "sample_data" / "products.csv", dtype=str)
    text_run = train("--data", ROOT / "sample_data" / "products.csv", "--label-column", "category_path", "--text-column",
                     "title", "--id-column", "id", "--taxonomy", ROOT / "sample_data" / "taxonomy.txt")
    titles = (products.title.tolist() * 5)[:20_000]
    distinct = pd.DataFrame({"id": [f"n{i}" for i in range(20_000)], "title": [f"{t} (lot {i})" for i, t in enumerate(titles)]})
    small = WORK / "new-20k.csv"
    distinct.to_csv(small, index=False)
    results = {}
    for label in ("text, empty cache", "text, warm cache"):
        _, wall, rss = cli("predict", text_run, "--data", small, "--out", WORK / "out.parquet", "--quiet", env=env)
        results[label] = {"items": 20_000, "seconds": round(wall, 1), "items_per_s": round(20_000 / wall), "peak_rss_mb": round(rss)}
        print(label, results[label], flush=True)
    if FASHION.exists():
        image_run = train("--data", FASHION / "styles.csv", "--label-column", "masterCategory", "--label-column", "subCategory",
                          "--label-column", "articleType", "--text-column", "productDisplayName", "--id-column", "id",
                          "--embeddings", FASHION / "clip-vit-b32-image-embeddings.npy", "--embedding-ids",
                          FASHION / "clip-vit-b32-image-embeddings.ids.csv", "--no-text-features")
        _, wall, rss = cli("predict", image_run, "--data", FASHION / "styles.csv", "--out", WORK / "out.parquet", "--quiet", env=env)
        results["precomputed image embeddings"] = {"items": 2000, "seconds": round(wall, 1), "items_per_s": round(2000 / wall),
                                                   "peak_rss_mb": round(rss)}
        print("precomputed", results["precomputed image embeddings"], flush=True)
    big = WORK / "new-1m.csv"
    pd.concat([distinct] * 50, ignore_index=True).assign(id=lambda f: [f"m{i}" for i in range(len(f))]).to_csv(big, index=False)
    _, wall, rss = cli("predict", text_run, "--data", big, "--out", WORK / "out-1m.parquet", "--quiet", env=env)
    results["text, 1,000,000 rows, warm cache"] = {"items": 1_000_000, "seconds": round(wall, 1),
                                                   "items_per_s": round(1_000_000 / wall), "peak_rss_mb": round(rss)}
    print("1M", results["text, 1,000,000 rows, warm cache"], flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "predict.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
