"""Which category prompt should be the default? (issue 18, part 3)

`name` gives two categories that share a leaf name ("Toys" under two parents) one label embedding, so
semantic smoothing pours mass into unrelated branches. This trains the product's defaults (semantic
targets) under each template on catalogs with repeated leaf names, same split and seed per catalog,
and reports the tree metrics (semsim@5 is left out: it is measured with each template's own embeddings,
so it cannot compare templates). Results: bench/results/label_templates.csv and BENCHMARKS.md.

    python bench/label_templates.py                      # fashion and BigBasket, seed 0
    python bench/label_templates.py --seeds 0 1 2 --datasets bigbasket-text
    python bench/label_templates.py --agreement-only     # no training: shared prompts, agreement with the tree
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import pandas as pd
from label_representations import BIGBASKET, SHARED, replace_section, save_results
from label_representations import DATASETS as LABEL_DATASETS

from core.data.encoders import colliding_prompts, label_embeddings, load_encoder, render_prompts
from core.labels.similarity import tree_agreement
from core.training.experiment import ExperimentConfig, load_dataset, prepare, train_and_evaluate

DATASETS = {
    "fashion-text": LABEL_DATASETS["fashion-text"],
    "flipkart-text": LABEL_DATASETS["flipkart-text"],
    "bigbasket-text": BIGBASKET,
}
TEMPLATES = ["name", "path", "distinct"]
METRICS = ["top1", "top5", "mistake_severity", "hdist@5", "ece"]  # declared-once: ok (the table's columns)


def run(datasets: list[str], seeds: list[int], templates: list[str]) -> pd.DataFrame:
    rows = []
    for name in datasets:
        base = ExperimentConfig(**DATASETS[name])
        dataset = load_dataset(base)
        for seed in seeds:
            for template in templates:
                config = dataclasses.replace(base, seed=seed, template=template)
                prepared = prepare(config, dataset=dataset)
                shared = colliding_prompts(render_prompts(dataset.taxonomy, dataset.classes, template))
                started = time.perf_counter()
                summary = train_and_evaluate(config, prepared)
                rows.append({"dataset": name, "template": template, "seed": seed, "classes": summary["n_classes"],
                             "classes sharing a prompt": shared, "seconds": round(time.perf_counter() - started, 1),
                             "encoder": prepared.encoder_identity, **{m: summary["plain"][m] for m in METRICS}})
                print(f"{name:16s} seed {seed} {template:9s} top1 {summary['plain']['top1']:.3f} "
                      f"severity {summary['plain']['mistake_severity']:.3f} hdist@5 {summary['plain']['hdist@5']:.3f}",
                      flush=True)
    return pd.DataFrame(rows)


def agreement(datasets: list[str], templates: list[str]) -> str:
    """Without training: per template, the classes that share a prompt and the Spearman agreement of the
    label embeddings' similarity with closeness in the tree (MiniLM)."""
    encoder = load_encoder("minilm").encoder
    lines = ["| catalog | template | classes sharing a prompt | Spearman with the tree |", "|---|---|---|---|"]
    for name in datasets:
        ds = load_dataset(ExperimentConfig(**DATASETS[name]))
        for template in templates:
            emb = label_embeddings(ds.taxonomy, ds.classes, encoder, template)
            shared = colliding_prompts(render_prompts(ds.taxonomy, ds.classes, template))
            lines.append(f"| {name} ({len(ds.classes)} classes) | `{template}` | {shared} | "
                         f"{tree_agreement(emb, ds.taxonomy, ds.classes)['spearman']:.3f} |")
    return "\n".join(lines) + "\n"


def markdown_table(results: pd.DataFrame) -> str:
    lines = ["| catalog | template | classes sharing a prompt | seeds | " + " | ".join(METRICS) + " |",
             "|---|---|---|---|" + "---|" * len(METRICS)]
    for (name, template), g in results.groupby(["dataset", "template"], sort=False):
        cells = [f"{g[m].mean():.3f}" for m in METRICS]
        lines.append(f"| {name} ({int(g.classes.iloc[0])} classes) | `{template}` | {int(g['classes sharing a prompt'].iloc[0])} "
                     f"| {g.seed.nunique()} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fashion-text", "bigbasket-text"], choices=list(DATASETS))
    parser.add_argument("--templates", nargs="+", default=TEMPLATES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--agreement-only", action="store_true", help="no training: collisions and tree agreement")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"real data not found at {SHARED}; this benchmark needs ../shared/data")
    if args.agreement_only:
        print(agreement(args.datasets, args.templates))
        return
    results = run(args.datasets, args.seeds, args.templates)
    table = markdown_table(results)
    save_results(results, "label_templates.csv", table)
    if not args.no_write:
        start, end = "<!-- label-templates:start -->", "<!-- label-templates:end -->"
        replace_section(start, end, f"{start}\nGenerated by `python bench/label_templates.py {' '.join(sys.argv[1:])}` "
                                    f"(encoder `{', '.join(sorted(results.encoder.unique()))}`; the box was shared with "
                                    f"other engineers).\n\n{table}{end}")


if __name__ == "__main__":
    main()
