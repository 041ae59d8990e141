"""What the reliability checks cost, on the real fashion-small catalog: the Errors page's 100
thumbnails through `core.data.images.read_thumbnail`, the precomputed-embedding checks of
`load_precomputed`, the formula-safe Google-taxonomy export, and how fast `train` refuses a
single-class table (before: a run folder and, with semantic targets, ~29 s of work).

    .venv/bin/python bench/reliability.py     # raw numbers: bench/results/reliability.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DATA = ROOT.parent / "shared" / "data"

from core import settings  # noqa: E402
from core.data.encoders import load_precomputed  # noqa: E402
from core.data.export import write_csv  # noqa: E402
from core.data.images import read_thumbnail  # noqa: E402
from core.labels.targets import build_targets, targets_frame  # noqa: E402
from core.taxonomy.formats import load_taxonomy  # noqa: E402


def median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    images = DATA / "fashion-small" / "images"
    paths = sorted(images.glob("*.jpg"))[:100]
    results = {"thumbnails_100_s": median_time(lambda: [read_thumbnail(p, images) for p in paths])}
    npy, ids = DATA / "fashion-small" / "clip-vit-b32-image-embeddings.npy", DATA / "fashion-small" / "clip-vit-b32-image-embeddings.ids.csv"
    results["load_precomputed_2000x512_s"] = median_time(lambda: load_precomputed(npy, ids))
    tax = load_taxonomy(DATA / "taxonomies" / "google-product-taxonomy-with-ids.en-US.txt")
    classes = np.array(tax.leaves)
    frame = targets_frame(build_targets("tree", distance=tax.distance_matrix(classes), beta=settings.get("beta").default),
                          [tax.path_str(int(c)) for c in classes], min_weight=1e-6, max_per_row=50)
    results["google_export_rows"] = len(frame)
    results["google_export_plain_to_csv_s"] = median_time(lambda: frame.to_csv(index=False).encode(), repeats=3)
    results["google_export_write_csv_s"] = median_time(lambda: write_csv(frame), repeats=3)
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.read_csv(DATA / "fashion-small" / "styles.csv", dtype=str).assign(masterCategory="Apparel")
        table.to_csv(Path(tmp) / "one.csv", index=False)
        cmd = [sys.executable, "-m", "core", "train", "--data", str(Path(tmp) / "one.csv"), "--label-column", "masterCategory",
               "--text-column", "productDisplayName", "--targets", "semantic", "--encoder", "minilm", "--out", str(Path(tmp) / "runs")]
        start = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        results["single_class_refusal_s"] = time.perf_counter() - start
        results["single_class_exit"] = r.returncode
        results["single_class_run_folder_created"] = (Path(tmp) / "runs").exists()
    out = ROOT / "bench" / "results" / "reliability.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
