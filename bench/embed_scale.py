"""Catalog-scale embedding: the figures of BENCHMARKS.md's "Embedding at catalog scale" section.

    .venv/bin/python bench/embed_scale.py synthetic 1000000 /tmp/titles-1m.csv   # 1M synthetic titles
    .venv/bin/python bench/embed_scale.py catalog /tmp/catalog-28k.csv           # Flipkart 20k + sample + fashion
    .venv/bin/python bench/embed_scale.py changed /tmp/catalog-28k.csv           # embed, change one title, embed again
    .venv/bin/python bench/embed_scale.py throughput /tmp/titles-1m.csv --rows 20000 [--ray --workers 2]
    .venv/bin/python bench/embed_scale.py resume /tmp/titles-1m.csv --rows 40000   # SIGKILL half-way, then resume

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


def embed_command(data: Path, out: Path, cache: Path, *extra: str) -> tuple[list[str], dict]:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TAXOLENS_CACHE": str(cache)}
    return [sys.executable, "-m", "core", "embed", "--data", str(data), "--text-column", "title", "--id-column", "id",
            "--encoder", "minilm", "--out", str(out), "--json", "--quiet", *extra], env


def embed(data: Path, out: Path, cache: Path, *extra: str) -> dict:
    command, env = embed_command(data, out, cache, *extra)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": round(seconds, 1), "embedded": result["embedded"], "cached": result["cached"],
            "rows": result["rows"], "items_per_s": round(result["rows"] / seconds, 1), "peak_rss_mb_so_far": round(peak)}


def killed_half_way(data: Path, out: Path, cache: Path, *extra: str) -> dict:
    """Start `embed`, SIGKILL it once half of its chunks are marked done (progress.json), and report
    when; the caller then runs the same command again, which resumes."""
    import signal

    rows = sum(1 for _ in open(data)) - 1
    chunk_rows = int(extra[extra.index("--chunk-rows") + 1])
    half = -(-rows // chunk_rows) // 2
    command, env = embed_command(data, out, cache, *extra)
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done: list = []
    while proc.poll() is None and len(done) < half:
        time.sleep(0.2)
        try:
            done = json.loads((out / "progress.json").read_text())["done"]
        except (OSError, ValueError, KeyError):
            continue
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {"killed_after_s": round(time.perf_counter() - started, 1), "chunks_done_at_kill": len(done),
            "chunks": -(-rows // chunk_rows)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["synthetic", "catalog", "changed", "throughput", "resume"])
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
        if a.what == "resume":  # the rows as their own file, so the chunks count is exact
            pd.read_csv(data, dtype=str, nrows=a.rows).to_csv(tmp / "rows.csv", index=False)
            data, extra = tmp / "rows.csv", ["--chunk-rows", str(max((a.rows or 40_000) // 8, 1))]
            cold = embed(data, tmp / "cold", tmp / "cold-cache", *extra)
            kill = killed_half_way(data, tmp / "features", tmp / "cache", *extra)
            print(json.dumps({"cold": cold, "kill": kill, "resumed": embed(data, tmp / "features", tmp / "cache", *extra)}))
            return
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
