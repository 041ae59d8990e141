"""Categorizing at a guaranteed accuracy on the benchmark catalogs (METHOD.md, 'Categorizing at a
guaranteed accuracy'): for targets 0.8, 0.9, 0.95 and 0.99 (confidence 0.9), the threshold fitted on
the validation split and the measured test hierarchical accuracy beside the target, with leaf rate,
coverage and hAURC, for one-hot, the default (semantic), tree and hybrid representations.
Writes bench/results/selective.csv and the section between the markers in BENCHMARKS.md.

    .venv/bin/python bench/selective.py                          # every catalog, one seed
    .venv/bin/python bench/selective.py --datasets fashion-text  # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import pandas as pd
from label_representations import DATASETS, ROOT, SHARED, replace_section

from core.data.export import write_csv
from core.evaluation.selective import metric_names
from core.training.experiment import ExperimentConfig, load_dataset, prepare, train_and_evaluate

TARGETS = (0.8, 0.9, 0.95, 0.99)
CATALOGS = {k: v for k, v in DATASETS.items() if k != "fashion-image"} | {
    "bigbasket-text": dict(data=str(SHARED / "bigbasket" / "bigbasket-products.csv"),
                           label_columns=["category", "sub_category", "type"], text_columns=["product", "brand"],
                           id_column="index"),
}
REPRESENTATIONS = {"one-hot": dict(targets="onehot"), "default (semantic)": {}, "tree": dict(targets="tree"),  # declared-once: ok (the arms compared)
                   "hybrid": dict(targets="hybrid")}


def run(catalogs: list[str], seed: int) -> pd.DataFrame:
    rows = []
    for name in catalogs:
        base = ExperimentConfig(**CATALOGS[name], seed=seed)
        prepared = prepare(base, dataset=load_dataset(base))
        for rep, changes in REPRESENTATIONS.items():
            started = time.perf_counter()
            summary = train_and_evaluate(dataclasses.replace(base, **changes), prepared, accuracy_targets=TARGETS)
            test = summary["plain"]
            fitted = {t["target_accuracy"]: t for t in summary["selective"]}
            for target in TARGETS:
                hacc, coverage, leaf = metric_names(target)
                rows.append({"catalog": name, "representation": rep, "classes": summary["n_classes"],  # declared-once: ok (table columns)
                             "n_val": summary["n_val"], "n_test": summary["n_test"], "top1": test["top1"], "target": target,
                             "threshold": fitted.get(target, {}).get("threshold"), "hacc": test[hacc],
                             "coverage": test[coverage], "leaf_rate": test[leaf], "hAURC": test["hAURC"],
                             "encoder": prepared.encoder_identity, "seconds": time.perf_counter() - started})
            print(f"{name:20s} {rep:20s} top1 {test['top1']:.3f} hAURC {test['hAURC']:.4f} "
                  f"hacc@0.95 {test['hacc@0.95']} leaf_rate@0.95 {test['leaf_rate@0.95']}", flush=True)
    return pd.DataFrame(rows)


def cell(value: object, fmt: str = ".3f") -> str:
    return "n/a" if value is None or value != value else format(value, fmt)


def markdown(results: pd.DataFrame) -> str:
    lines = []
    for name, block in results.groupby("catalog", sort=False):
        first = block.iloc[0]
        lines.append(f"\n**{name}** ({int(first.classes)} classes; thresholds fitted on the calibration half of the "
                     f"{int(first.n_val)} validation items, measured on {int(first.n_test)} test items; n/a: too few validation items for the bound)\n")
        lines.append("| representation | top1 | hAURC | " + " | ".join(f"hacc / leaf / cov @{t:g}" for t in TARGETS) + " |")
        lines.append("|---|---|---|" + "---|" * len(TARGETS))
        for rep, g in block.groupby("representation", sort=False):
            cells = [f"{cell(r.hacc)} / {cell(r.leaf_rate)} / {cell(r.coverage)}" for r in g.itertuples()]
            lines.append(f"| {rep} | {g.top1.iloc[0]:.3f} | {g.hAURC.iloc[0]:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(CATALOGS), choices=list(CATALOGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"real data not found at {SHARED}; this benchmark needs ../shared/data")
    results = run(args.datasets, args.seed)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(results, out / "selective.csv")
    table = markdown(results)
    print(table)
    if not args.no_write:
        start, end = "<!-- selective:start -->", "<!-- selective:end -->"
        replace_section(start, end, f"{start}\n## Categorizing at a guaranteed accuracy\n\nGenerated by `python bench/selective.py "
                        f"{' '.join(sys.argv[1:])}` (one seed, {args.seed}, on a shared 2-core box; confidence 0.9). "
                        f"Label embeddings: `{', '.join(sorted(results.encoder.unique()))}`. Each cell: test hierarchical "
                        f"accuracy / leaf rate / coverage at the threshold fitted for the target.\n{table}{end}")


if __name__ == "__main__":
    main()
