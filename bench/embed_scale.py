"""Catalog-scale embedding: the figures of BENCHMARKS.md's "Embedding at catalog scale" section.

    .venv/bin/python bench/embed_scale.py synthetic 1000000 /tmp/titles-1m.csv   # 1M synthetic titles
    .venv/bin/python bench/embed_scale.py catalog /tmp/catalog-28k.csv           # Flipkart 20k + sample + fashion
    .venv/bin/python bench/embed_scale.py changed /tmp/catalog-28k.csv           # embed, change one title, embed again
    .venv/bin/python bench/embed_scale.py throughput /tmp/titles-1m.csv --rows 20000 [--ray --workers 2]

Each measurement runs `python -m core embed` in a subprocess with its own cache folder and reports
wall seconds, the command's `embedded`/`cached` counts and the peak RSS of the subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORDS = {"brand": ["Zenflex", "Acme", "Northpeak", "Lumio", "Vantra", "Kestrel", "Orbis", "Tidewell"],
         "thing": ["running shoe", "rain jacket", "laptop sleeve", "coffee grinder", "desk lamp", "yoga mat",
                   "water bottle", "phone case", "backpack", "wireless earbuds", "chef's knife", "office chair"],
         "adj": ["lightweight", "waterproof", "compact", "ergonomic", "stainless", "insulated", "foldable", "classic"],
         "colour": ["black", "navy", "red", "olive", "white", "grey", "tan", "teal"]}


def synthetic(n: int, out: Path, chunk: int = 100_000, seed: int = 0) -> None:
    """`n` distinct synthetic product titles with ids, written in chunks (memory stays flat)."""
    rng = np.random.default_rng(seed)
    with open(out, "w") as fh:
        fh.write("id,title\n")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            parts = {k: np.array(v, dtype=object)[rng.integers(0, len(v), m)] for k, v in WORDS.items()}
            sizes = rng.integers(1, 60, m)
            rows = pd.DataFrame({"id": [f"P{i:08d}" for i in range(start, start + m)],
                                 "title": parts["brand"] + " " + parts["adj"] + " " + parts["thing"] + ", " + parts["colour"]
                                 + ", " + sizes.astype(str) + " cm, model " + np.arange(start, start + m).astype(str)})
            rows.to_csv(fh, header=False, index=False)


def catalog(out: Path) -> int:
    """A real ~28k-title catalog: Flipkart's 20k, the sample's 4.6k and fashion-small's 2k titles."""
    parts = [pd.read_csv(SHARED / "flipkart" / "flipkart_com-ecommerce_sample.csv", header=None, usecols=[0, 1],
                         dtype=str).set_axis(["id", "title"], axis=1).assign(id=lambda f: "fk-" + f["id"]),
             pd.read_csv(ROOT / "sample_data" / "products.csv", usecols=["id", "title"], dtype=str),
             pd.read_csv(SHARED / "fashion-small" / "styles.csv", usecols=["id", "productDisplayName"], dtype=str,
                         on_bad_lines="skip").set_axis(["id", "title"], axis=1).assign(id=lambda f: "fs-" + f["id"])]
    frame = pd.concat(parts, ignore_index=True).dropna().drop_duplicates("id")
    frame.to_csv(out, index=False)
    return len(frame)


def embed(data: Path, out: Path, cache: Path, *extra: str) -> dict:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TAXOLENS_CACHE": str(cache)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", "embed", "--data", str(data), "--text-column", "title",
                           "--id-column", "id", "--encoder", "minilm", "--out", str(out), "--json", "--quiet", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": round(seconds, 1), "embedded": result["embedded"], "cached": result["cached"],
            "rows": result["rows"], "items_per_s": round(result["rows"] / seconds, 1), "peak_rss_mb_so_far": round(peak)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["synthetic", "catalog", "changed", "throughput"])
    p.add_argument("args", nargs="*")
    p.add_argument("--rows", type=int)
    p.add_argument("--ray", action="store_true")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    if a.what == "synthetic":
        synthetic(int(a.args[0]), Path(a.args[1]))
        return
    if a.what == "catalog":
        print(json.dumps({"rows": catalog(Path(a.args[0]))}))
        return
    data = Path(a.args[0])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        extra = [*(["--max-rows", str(a.rows)] if a.rows else []), *(["--ray", "--workers", str(a.workers)] if a.ray else [])]
        first = embed(data, tmp / "features", tmp / "cache", *extra)
        report = {"first": first}
        if a.what == "changed":
            frame = pd.read_csv(data, dtype=str)
            frame.loc[len(frame) // 2, "title"] = "One title changed for the benchmark"
            frame.to_csv(tmp / "changed.csv", index=False)
            report["one_title_changed"] = embed(tmp / "changed.csv", tmp / "features", tmp / "cache", *extra)
        print(json.dumps(report))


if __name__ == "__main__":
    main()
