"""Load: N processes at once against one run store and one embedding cache, half `train`, half
`predict` (the 'Under load' rows of BENCHMARKS.md).

    .venv/bin/python bench/load.py            # N = 2, 4, 8; ~15 min on 2 busy cores

A finished run and a warm cache are made first (not timed). Then for each N, N/2 trainings (600 rows of
the sample catalog, 2 epochs, each its own seed) and N/2 predicts (2,000 rows, the finished run) start
together into the same store and cache. Reported: how many succeeded, the wall time until the last
one ended, and peak RSS (the largest process, and the sum of every process's peak: an upper bound of
the total), each child's read with wait4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
TRAIN = ["train", "--data", SAMPLE / "products.csv", "--label-column", "category_path", "--text-column", "title",
         "--id-column", "id", "--taxonomy", SAMPLE / "taxonomy.txt", "--encoder", "minilm", "--max-rows", "600",
         "--epochs", "2", "--quiet", "--json"]


def spawn(args: list, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wait_all(processes: list[subprocess.Popen]) -> list[tuple[int, float]]:
    """(exit status, peak RSS MB) per process, read with wait4 as each ends."""
    results = {}
    while len(results) < len(processes):
        pid, status, usage = os.wait4(-1, 0)
        results[pid] = (os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024)
    for p in processes:
        p.returncode = results[p.pid][0]
    return [results[p.pid] for p in processes]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="taxolens-load-"))
    env = os.environ | {"TAXOLENS_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    store = work / "runs"
    first = spawn([*TRAIN, "--out", store], env)
    out = first.communicate()[0]
    assert first.returncode == 0, "the first training failed"
    run_dir = json.loads(out.strip().splitlines()[-1])["run_dir"]
    rows = []
    for n in (2, 4, 8):
        started = time.perf_counter()
        processes = [spawn([*TRAIN, "--seed", i, "--out", store], env) if i % 2 == 0 else
                     spawn(["predict", run_dir, "--data", SAMPLE / "products.csv", "--max-rows", "2000",
                            "--out", work / f"answers-{n}-{i}.parquet", "--quiet"], env) for i in range(n)]
        results = wait_all(processes)
        wall = time.perf_counter() - started
        for p in processes:
            p.communicate()
        rows.append({"n": n, "trainings": n // 2, "predicts": n - n // 2, "succeeded": sum(code == 0 for code, _ in results),
                     "wall_s": round(wall, 1), "peak_rss_max_mb": round(max(r for _, r in results)),
                     "peak_rss_sum_mb": round(sum(r for _, r in results))})
        print(rows[-1], flush=True)
    runs = [p for p in store.iterdir() if (p / "status.json").is_file()]
    states = [json.loads((p / "status.json").read_text())["state"] for p in runs]
    summary = {"cpus": os.cpu_count(), "rows": rows, "runs_in_store": len(runs), "runs_done": states.count("done")}
    (ROOT / "bench" / "results" / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
