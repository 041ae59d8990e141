"""Per-trial overhead of a local-Ray sweep against calling the training function in-process, and
sweep throughput (trials per hour) on the sample catalog. Writes bench/results/sweep_overhead.json.

    .venv/bin/python bench/sweep_overhead.py [--trials 6] [--epochs 4]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from core.scale import sweep
from core.settings import ExperimentConfig
from core.training.experiment import prepare, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    base = ExperimentConfig(data=str(ROOT / "sample_data/products.csv"), label_columns=["category_path"], text_columns=["title"],
                            id_column="id", taxonomy=str(ROOT / "sample_data/taxonomy.txt"), encoder="minilm",
                            epochs=args.epochs, patience=0)
    prepared = prepare(base)  # also warms the embedding cache for the sweep below
    import torch

    torch.set_num_threads(1)  # as a trial does
    started = time.perf_counter()
    train_and_evaluate(base, prepared)
    in_process = time.perf_counter() - started
    fixed = sweep.parse_space({"targets": "semantic"})
    with tempfile.TemporaryDirectory() as store:
        started = time.perf_counter()
        sweep.sweep(base, fixed, [(sweep.ACCURACY, "max")], trials=1, store=store, search="grid")
        one_trial = time.perf_counter() - started
        started = time.perf_counter()
        record = sweep.sweep(base, sweep.parse_space(sweep.DEFAULT_SPACE), sweep.parse_objectives(sweep.DEFAULT_OBJECTIVES),
                             trials=args.trials, store=store)
        many = time.perf_counter() - started
    out = {"epochs": args.epochs, "rows": len(prepared.dataset.labels), "in_process_s": round(in_process, 2),
           "one_trial_sweep_s": round(one_trial, 2), "overhead_ratio": round(one_trial / in_process, 2),
           "trials": len(record["trials"]), "sweep_s": round(many, 2),
           "trials_per_hour": round(len(record["trials"]) * 3600 / many, 1)}
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/sweep_overhead.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
