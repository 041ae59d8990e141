"""Label-error detection measured against known noise: the sample catalog's recorded noise
(sample_data/label_noise.csv) and three real catalogs (fashion-small on its CLIP image embeddings,
Flipkart titles, BigBasket titles and brands) with 4% of their labels changed on purpose to another
category (drawn uniformly, a fixed seed), the labels a model then trains on.

Per catalog: trains the default arm once (test-split flags, as a trained run computes them) and runs
a K-fold audit (flags on every product), then reports precision and recall of `label_issue` for the
stated rule and, to show why it was chosen, for the rules it replaced. The probabilities are kept in
--keep (one .npz per catalog) so `--from-kept` re-scores the rules without training again.
Usage: .venv/bin/python bench/label_errors.py [--folds 5] [--encoder minilm] [--catalogs sample fashion-image ...]"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from label_representations import BIGBASKET, DATASETS

from core.data.tables import Dataset
from core.evaluation import label_issues
from core.settings import ExperimentConfig
from core.training.audit import out_of_fold
from core.training.calibration import calibrated_probabilities, fit_temperature
from core.training.experiment import load_dataset, make_targets, prepare
from core.training.train import predict_logits, train_config, train_model

ROOT = Path(__file__).resolve().parents[1]
PLANTED = 0.04  # share of labels changed on purpose
NOISE_SEED = 7
MAX_ITEMS = 10_000  # a random subset of the larger catalogs, so the 5-fold audit fits the 2-vCPU machine

def cleanlab_default(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's `find_label_issues` on the classes that occur (what the flag was before any bound)."""
    import warnings

    from cleanlab.filter import find_label_issues

    present = np.unique(labels)
    sub = probs[:, present] / probs[:, present].sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(find_label_issues(np.searchsorted(present, labels), sub, filter_by="prune_by_noise_rate",
                                            n_jobs=1), dtype=bool)


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A rule tried and rejected: confident learning's membership test (the given label below its class's
    threshold, the best other class above its own) AND quality under the stated bound, no share cap."""
    from cleanlab.count import get_confident_thresholds

    present = np.unique(labels)
    sub = probs[:, present] / probs[:, present].sum(axis=1, keepdims=True)
    y = np.searchsorted(present, labels)
    t = np.asarray(get_confident_thresholds(y, sub), dtype=np.float64)
    rows = np.arange(len(y))
    given, others = sub[rows, y], sub.copy()
    others[rows, y] = -1.0
    best = others.argmax(axis=1)
    return (given < t[y]) & (others[rows, best] >= t[best]) & (given < label_issues.MAX_QUALITY)


RULES = {
    "cleanlab find_label_issues (default)": cleanlab_default,
    "cleanlab & quality < 0.01, no cap": lambda p, y: label_issues.find_issues(p, y, max_share=1.0),
    "tried: confident joint & quality < 0.01, no cap": confident_joint,
    "previous rule: cleanlab & quality < 0.05, at most 3%": lambda p, y: label_issues.find_issues(p, y, max_quality=0.05),
    "stated rule: cleanlab & quality < 0.01, at most 3%": label_issues.find_issues,
}

CATALOGS = {
    "fashion-image": DATASETS["fashion-image"],
    "flipkart-text": DATASETS["flipkart-text"],
    "bigbasket-text": BIGBASKET,
}


def subset(ds: Dataset, rows: np.ndarray) -> Dataset:
    """The dataset restricted to `rows`, its classes renumbered to those still present."""
    classes, labels = np.unique(ds.classes[ds.labels[rows]], return_inverse=True)
    return dataclasses.replace(ds, ids=ds.ids[rows], texts=[ds.texts[i] for i in rows], labels=labels.astype(np.int64),
                               classes=classes, image_paths=None if ds.image_paths is None else [ds.image_paths[i] for i in rows])


def planted(config: ExperimentConfig) -> tuple[Dataset, pd.Series]:
    """The catalog (at most MAX_ITEMS, drawn at random) with PLANTED of its labels moved to another class."""
    ds = load_dataset(config)
    rng = np.random.default_rng(NOISE_SEED)
    if len(ds.labels) > MAX_ITEMS:
        ds = subset(ds, np.sort(rng.choice(len(ds.labels), MAX_ITEMS, replace=False)))
    noisy = rng.choice(len(ds.labels), size=int(round(PLANTED * len(ds.labels))), replace=False)
    labels = ds.labels.copy()
    c = len(ds.classes)
    labels[noisy] = (labels[noisy] + rng.integers(1, c, size=len(noisy))) % c  # any class but the given one
    return dataclasses.replace(ds, labels=labels), pd.Series(ds.ids[noisy]).astype(str)


def sample_catalog() -> tuple[ExperimentConfig, Dataset, pd.Series]:
    config = ExperimentConfig(data=str(ROOT / "sample_data/products.csv"), label_columns=["category_path"],
                              text_columns=["title", "description"], id_column="id",
                              taxonomy=str(ROOT / "sample_data/taxonomy.txt"))
    return config, load_dataset(config), pd.read_csv(ROOT / "sample_data/label_noise.csv")["id"].astype(str)


def probabilities(config: ExperimentConfig, dataset: Dataset, folds: int) -> dict:
    """Calibrated test-split probabilities of one trained model and K-fold out-of-fold ones."""
    prepared = prepare(config, dataset=dataset)
    ds, s, f = prepared.dataset, prepared.split, prepared.features
    targets, _ = make_targets(config, prepared)
    result = train_model(f.matrix, f.mask, f.slices, ds.labels, s.train, s.val, targets, train_config(config),
                         label_embeddings=prepared.label_emb, lexical=f.lexical)
    tau = fit_temperature(predict_logits(result.model, f.matrix, f.mask, s.val, lexical=f.lexical), ds.labels[s.val])
    test = calibrated_probabilities(predict_logits(result.model, f.matrix, f.mask, s.test, lexical=f.lexical), tau)
    oof, _ = out_of_fold(config, prepared, folds)
    return {"ids": ds.ids.astype(str), "labels": ds.labels, "test": s.test, "test_probs": test, "oof_probs": oof}


def score(name: str, kept: dict, noisy: pd.Series, folds: int) -> list[dict]:
    rows = []
    ids, labels = kept["ids"], kept["labels"]
    for what, probs, rows_of in (("test split", kept["test_probs"], kept["test"]),
                                 (f"audit, {folds} folds", kept["oof_probs"], np.arange(len(ids)))):
        top1 = float((probs.argmax(1) == labels[rows_of]).mean())
        for rule, find in RULES.items():
            flagged = find(probs, labels[rows_of])
            pr = label_issues.precision_recall(pd.Series(ids[rows_of][flagged]), noisy, pd.Series(ids[rows_of]))
            rows.append({"catalog": name, "items": f"{what} (top1 {top1:.2f})", "rule": rule} | pr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--catalogs", nargs="+", default=["sample", *CATALOGS], choices=["sample", *CATALOGS])
    parser.add_argument("--keep", default="/tmp/taxolens-label-errors", help="folder for the probabilities (.npz)")
    parser.add_argument("--from-kept", action="store_true", help="re-score the kept probabilities, train nothing")
    args = parser.parse_args()
    keep = Path(args.keep)
    keep.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.catalogs:
        if name == "sample":
            config, dataset, noisy = sample_catalog()
        else:
            config = ExperimentConfig(**CATALOGS[name])
            dataset, noisy = planted(config)
        config = dataclasses.replace(config, encoder=args.encoder)
        path = keep / f"{name}.npz"
        if not args.from_kept:
            np.savez(path, noisy=noisy.to_numpy(dtype=str), **probabilities(config, dataset, args.folds))
        kept = dict(np.load(path, allow_pickle=False))
        rows += score(name, kept, pd.Series(kept["noisy"]), args.folds)
    table = pd.DataFrame(rows)
    out = ROOT / "bench/results/label_errors.json"
    out.write_text(json.dumps({"encoder": args.encoder, "targets": ExperimentConfig().targets, "planted": PLANTED,
                               "rows": rows}, indent=2))
    print(table.to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
