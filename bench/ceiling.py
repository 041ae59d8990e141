"""How high any mix of Taxolens and TF-IDF + LinearSVC could go (issue 18): on the saved splits of
bench/baselines.py, the test items that the default categorizer or the LinearSVC arm answers right.

Per catalog and seed, the two arms exactly as bench/baselines.py trains them (the default through
`execute_run`, its answers read back from the run's predictions.parquet; LinearSVC(C=0.5) on the baseline's
TF-IDF, plus the image columns where the catalog has them, trained on every non-test item):
  taxolens, svc   each one's top1
  either          the share of test items at least one of them answers right: no way of choosing between
                  or averaging the two answers can score above it
  bar             issue 18's top1 bar, the LinearSVC's top1 plus 1 point
  both wrong      items both get wrong; "same answer": of those, the ones where both give the same wrong
                  category (two unrelated models agreeing on another label than the catalog's); "flagged":
                  of those, the ones the run's own label check (`label_issue`, cleanlab) marks as likely mislabelled
  same leaf       of Taxolens's mistakes, the ones whose answer is another category with the label's own leaf
                  name (the same name under another parent: "Men's Deodorants" under "Men's Grooming" for the
                  one under "Fragrances & Deos")
A sample of the items both get wrong (title, catalog label, the two answers) is kept in each result file,
to be read: they say whether what is left is the models or the labels.

    python bench/ceiling.py --datasets fashion-text,fashion-text+image,flipkart-text,bigbasket-text --seeds 0,1,2
    python bench/ceiling.py --report          # the table from the result files present
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from baselines import (
    DATASETS,
    RESULTS,
    TOP1_MARGIN,
    WORK,
    fit_svc,
    image_block,
    load_catalog,
    svc_logits,
    taxolens_arm,
)

from core import files
from core.taxonomy.tree import PATH_SEP

OUT = RESULTS / "ceiling"
SAMPLE = 40  # joint mistakes kept per catalog and seed


def leaf_names(paths: pd.Series) -> pd.Series:
    return paths.astype(str).str.rsplit(PATH_SEP, n=1).str[-1]


def same_leaf_mistakes(frame: pd.DataFrame) -> int:
    """Mistakes of a predictions table whose answer's leaf name is the label's (another path, the same name)."""
    wrong = frame[~frame["correct"]]
    return int((leaf_names(wrong["pred_1"]) == leaf_names(wrong["true_label"])).sum())


def answers(name: str, seed: int) -> dict:
    """Both arms' test answers on one catalog and seed, and what their union scores."""
    catalog = load_catalog(name, seed)
    truth = catalog.dataset.labels[catalog.split.test]
    run = taxolens_arm(catalog, "taxolens-default", {})
    frame = pd.read_parquet(f"{run['run_dir']}/predictions.parquet")
    ids = np.asarray(catalog.dataset.ids).astype(str)[catalog.split.test]
    if frame["id"].astype(str).tolist() != ids.tolist():
        raise SystemExit(f"{name} seed {seed}: the run's predictions are not the saved split's test items in order")
    ours = frame["pred_index"].to_numpy()
    images = image_block(catalog)
    svc = svc_logits(fit_svc(catalog, catalog.fit_rows, images), catalog, catalog.split.test, images).argmax(1)
    right_ours, right_svc = ours == truth, svc == truth
    both = np.flatnonzero(~right_ours & ~right_svc)
    names = catalog.dataset.class_names
    texts = catalog.texts(catalog.split.test)
    return {"dataset": name, "seed": seed, "n_test": len(truth), "taxolens": float(right_ours.mean()),
            "svc": float(right_svc.mean()), "either": float((right_ours | right_svc).mean()),
            "bar": float(right_svc.mean()) + TOP1_MARGIN, "both_wrong": len(both),
            "same_answer": int((ours[both] == svc[both]).sum()), "flagged": int(frame["label_issue"].to_numpy()[both].sum()),
            "mistakes": int((~right_ours).sum()), "same_leaf": same_leaf_mistakes(frame), "run_dir": run["run_dir"],
            "sample": [{"text": texts[i], "label": names[truth[i]], "taxolens": names[ours[i]], "svc": names[svc[i]]}
                       for i in both[:SAMPLE]]}


# the table's columns: result key -> heading; the first four are shares of the test items, the rest counts
TABLE = {"taxolens": "taxolens", "svc": "svc", "either": "either (ceiling)", "bar": "bar (svc + 1 pt)",
         "both_wrong": "both wrong", "same_answer": "same answer", "flagged": "flagged",
         "mistakes": "Taxolens's mistakes", "same_leaf": "same leaf"}
SHARES = ("taxolens", "svc", "either", "bar")


def report() -> str:
    """The mean over seeds of every column, a row per catalog, from the result files present."""
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    lines = ["| catalog (test items; seeds) | " + " | ".join(TABLE.values()) + " |", "|---" * (len(TABLE) + 1) + "|"]
    for name in DATASETS:
        block = sorted((r for r in rows if r["dataset"] == name), key=lambda r: r["seed"])
        if block:
            cells = [f"{np.mean([r[k] for r in block]):{'.3f' if k in SHARES else '.1f'}}" for k in TABLE]
            seeds = ", ".join(str(r["seed"]) for r in block)
            lines.append(f"| {name} ({block[0]['n_test']}; {seeds}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="fashion-text", help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--report", action="store_true", help="print the table of the result files present, train nothing")
    args = parser.parse_args()
    if not args.report:
        WORK.mkdir(parents=True, exist_ok=True)
        for name in args.datasets.split(","):
            if name not in DATASETS:
                raise SystemExit(f"unknown catalog {name!r}; choose from {', '.join(DATASETS)}")
            for seed in (int(s) for s in args.seeds.split(",")):
                row = answers(name, seed)
                files.write_json(OUT / f"{name}-seed{seed}.json", row)
                print(f"{name} seed {seed}: taxolens {row['taxolens']:.3f} svc {row['svc']:.3f} either {row['either']:.3f} "
                      f"bar {row['bar']:.3f} both wrong {row['both_wrong']} (same answer {row['same_answer']}, flagged {row['flagged']})", flush=True)
    print(report())


if __name__ == "__main__":
    main()
