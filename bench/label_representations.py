"""The experiment behind the product: do taxonomy-aware label representations make mistakes milder?

Arms (all through core.training.experiment, as the CLI runs them):
  onehot, uniform (a=0.1), knn-uniform (top-20), semantic (top-20), semantic + curriculum,
  tree soft labels, semantic + auxiliary taxonomy codes, and onehot + CRM re-ranking (post hoc).
Datasets: fashion-small as text, as its real CLIP image embeddings, and both; Flipkart titles.
Writes bench/results/label_representations.csv and the table between the markers in BENCHMARKS.md.

    .venv/bin/python bench/label_representations.py            # full run, 3 seeds (~15 min on 2 cores)
    .venv/bin/python bench/label_representations.py --seeds 0 --datasets fashion-text   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.data.export import write_csv  # noqa: E402
from core.evaluation import registry  # noqa: E402
from core.training.experiment import ExperimentConfig, load_dataset, prepare, train_and_evaluate  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
FASHION = SHARED / "fashion-small"
METRICS = [k for k in registry.shown_keys() if registry.METRICS[k].direction]  # the scores a run reports

DATASETS = {
    "fashion-text": dict(data=str(FASHION / "styles.csv"), label_columns=["masterCategory", "subCategory", "articleType"],
                         text_columns=["productDisplayName"], id_column="id"),
    "fashion-image": dict(data=str(FASHION / "styles.csv"), label_columns=["masterCategory", "subCategory", "articleType"],
                          text_columns=["productDisplayName"], id_column="id", use_text=False,
                          embeddings=str(FASHION / "clip-vit-b32-image-embeddings.npy"),
                          embedding_ids=str(FASHION / "clip-vit-b32-image-embeddings.ids.csv")),
    "fashion-text+image": dict(data=str(FASHION / "styles.csv"), label_columns=["masterCategory", "subCategory", "articleType"],
                               text_columns=["productDisplayName"], id_column="id",
                               embeddings=str(FASHION / "clip-vit-b32-image-embeddings.npy"),
                               embedding_ids=str(FASHION / "clip-vit-b32-image-embeddings.ids.csv")),
    "flipkart-text": dict(data=str(SHARED / "flipkart" / "flipkart_com-ecommerce_sample.csv"),
                          column_names=["uniq_id", "product_name", "product_category_tree"],
                          label_columns=["product_category_tree"], text_columns=["product_name"], id_column="uniq_id", max_depth=3),
}
# BigBasket's titles and brands under its 3 levels: a catalog whose leaf names often repeat (the benches
# beyond label representations use it; this one keeps its datasets as published)
BIGBASKET = dict(data=str(SHARED / "bigbasket" / "bigbasket-products.csv"), label_columns=["category", "sub_category", "type"],
                 text_columns=["product", "brand"], id_column="index")

ARMS = {
    "1 onehot": dict(targets="onehot"),
    "2 uniform a=0.1": dict(targets="uniform", alpha=0.1),
    "3 knn-uniform k=20": dict(targets="knn-uniform", alpha=0.1, k=20),
    "4 semantic k=20": dict(targets="semantic", alpha=0.1, k=20, temperature=0.1),
    "5 semantic + curriculum": dict(targets="semantic", alpha=0.1, k=20, temperature=0.1, curriculum_epochs=10),
    "6 tree soft labels b=10": dict(targets="tree", beta=10.0),
    "7 semantic + aux codes": dict(targets="semantic", alpha=0.1, k=20, temperature=0.1, aux_codes="taxonomy", aux_weight=0.5),
}
CRM_ARM = "8 onehot + CRM"


def run(datasets: list[str], seeds: list[int], epochs: int, arms: list[str]) -> pd.DataFrame:
    rows = []
    for name in datasets:
        base = ExperimentConfig(**DATASETS[name], epochs=epochs)
        dataset = load_dataset(base)
        for seed in seeds:
            prepared = prepare(dataclasses.replace(base, seed=seed), dataset=dataset)
            for arm in arms:
                config = dataclasses.replace(base, seed=seed, **ARMS[arm])
                started = time.perf_counter()
                summary = train_and_evaluate(config, prepared)
                took = time.perf_counter() - started
                rows.append({"dataset": name, "arm": arm, "seed": seed, "seconds": took, "classes": summary["n_classes"],
                             "encoder": prepared.encoder_identity, **{m: summary["plain"][m] for m in METRICS}})
                if arm == "1 onehot" and summary["crm"]:
                    rows.append({"dataset": name, "arm": CRM_ARM, "seed": seed, "seconds": took, "classes": summary["n_classes"],
                                 "encoder": prepared.encoder_identity, **{m: summary["crm"].get(m, summary["plain"][m]) for m in METRICS}})
                print(f"{name:20s} seed {seed} {arm:26s} top1 {summary['plain']['top1']:.3f} "
                      f"severity {summary['plain']['mistake_severity']:.3f} ({took:.1f} s)", flush=True)
    return pd.DataFrame(rows)


def markdown_table(results: pd.DataFrame) -> str:
    """mean ± std over seeds, one block per dataset."""
    lines = []
    for name, block in results.groupby("dataset", sort=False):
        n_seeds = block.seed.nunique()
        lines.append(f"\n**{name}** ({int(block.classes.iloc[0])} classes, {n_seeds} seeds, mean ± std)\n")
        lines.append("| arm | " + " | ".join(METRICS) + " |")
        lines.append("|---|" + "---|" * len(METRICS))
        for arm, g in block.groupby("arm", sort=True):
            cells = [f"{g[m].mean():.3f} ± {g[m].std(ddof=0):.3f}" for m in METRICS]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_section(start: str, end: str, block: str) -> None:
    """Put `block` (which begins with `start` and ends with `end`) into BENCHMARKS.md, replacing the
    section between those markers, or appended when the markers are not there yet."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    path.write_text(text)


def save_results(results: pd.DataFrame, csv_name: str, table: str) -> None:
    """A bench's rows as bench/results/CSV_NAME, and its markdown table on stdout."""
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(results, out / csv_name)
    print(table)


def write_into_benchmarks(table: str, command: str, encoder: str) -> None:
    start, end = "<!-- label-representations:start -->", "<!-- label-representations:end -->"
    replace_section(start, end, f"{start}\nGenerated by `{command}`. Label embeddings: `{encoder}`.\n{table}{end}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"real data not found at {SHARED}; this benchmark needs ../shared/data")
    results = run(args.datasets, args.seeds, args.epochs, args.arms)
    table = markdown_table(results)
    save_results(results, "label_representations.csv", table)
    if not args.no_write:
        write_into_benchmarks(table, "python bench/label_representations.py " + " ".join(sys.argv[1:]),
                              ", ".join(sorted(results.encoder.unique())))


if __name__ == "__main__":
    main()
