"""Label-error detection measured against known noise: the sample catalog's recorded noise
(sample_data/label_noise.csv), and a real catalog (fashion-small, image embeddings only: a weaker
model) with 4% of its labels changed on purpose to another category.

Per catalog: trains the default arm once (test-split flags, as a trained run computes them) and runs
a K-fold audit (flags on every product), then reports precision and recall of `label_issue` for the
stated rule and, to show why it was chosen, for cleanlab's default selection and other quality bounds.
Usage: .venv/bin/python bench/label_errors.py [--folds 5] [--encoder minilm] [--catalogs sample fashion-image]"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from core.evaluation import label_issues
from core.settings import ExperimentConfig
from core.taxonomy.tree import PATH_SEP
from core.training.audit import out_of_fold
from core.training.calibration import calibrated_probabilities, fit_temperature
from core.training.experiment import make_targets, prepare
from core.training.train import predict_logits, train_config, train_model

ROOT = Path(__file__).resolve().parents[1]

RULES = {  # (max_quality, max_share)
    "cleanlab default": (1.0, 1.0),
    "cleanlab & quality < 0.1": (0.1, 1.0),
    "cleanlab & quality < 0.05": (0.05, 1.0),
    "cleanlab & quality < 0.05, at most 2%": (0.05, 0.02),
    "cleanlab & quality < 0.05, at most 3% (stated rule)": (label_issues.MAX_QUALITY, label_issues.MAX_SHARE),
    "cleanlab & quality < 0.05, at most 5%": (0.05, 0.05),
}


def rows_for(ids: np.ndarray, probs: np.ndarray, labels: np.ndarray, noisy: pd.Series, what: str) -> list[dict]:
    out = []
    for rule, (max_quality, max_share) in RULES.items():
        flagged = label_issues.find_issues(probs, labels, max_quality=max_quality, max_share=max_share)
        pr = label_issues.precision_recall(pd.Series(ids[flagged]), noisy, pd.Series(ids))
        out.append({"items": what, "rule": rule} | pr)
    return out


SHARED = ROOT.parent / "shared" / "data"
PLANTED = 0.04


def sample(encoder: str, _: Path) -> tuple[ExperimentConfig, pd.Series]:
    config = ExperimentConfig(data=str(ROOT / "sample_data/products.csv"), label_columns=["category_path"],
                              text_columns=["title", "description"], id_column="id",
                              taxonomy=str(ROOT / "sample_data/taxonomy.txt"), encoder=encoder)
    return config, pd.read_csv(ROOT / "sample_data/label_noise.csv")["id"].astype(str)


def fashion_image(encoder: str, tmp: Path) -> tuple[ExperimentConfig, pd.Series]:
    """fashion-small with 4% of the items moved to another (random) category, image modality only."""
    frame = pd.read_csv(SHARED / "fashion-small/styles.csv", dtype=str, keep_default_na=False)
    frame["path"] = frame[["masterCategory", "subCategory", "articleType"]].agg(PATH_SEP.join, axis=1)
    rng = np.random.default_rng(7)
    paths = np.array(sorted(frame["path"].unique()), dtype=object)
    noisy = rng.choice(len(frame), size=int(round(PLANTED * len(frame))), replace=False)
    for i in noisy:
        frame.loc[i, "path"] = rng.choice(paths[paths != frame.loc[i, "path"]])
    frame.drop(columns=["masterCategory", "subCategory", "articleType"]).to_csv(tmp / "styles-noisy.csv", index=False)
    config = ExperimentConfig(data=str(tmp / "styles-noisy.csv"), label_columns=["path"],
                              text_columns=["productDisplayName"], id_column="id", encoder=encoder, use_text=False,
                              embeddings=str(SHARED / "fashion-small/clip-vit-b32-image-embeddings.npy"),
                              embedding_ids=str(SHARED / "fashion-small/clip-vit-b32-image-embeddings.ids.csv"))
    return config, frame.loc[noisy, "id"].astype(str)


CATALOGS = {"sample": sample, "fashion-image": fashion_image}


def measure(name: str, config: ExperimentConfig, noisy: pd.Series, folds: int) -> list[dict]:
    prepared = prepare(config)
    ds, s, f = prepared.dataset, prepared.split, prepared.features
    targets, _ = make_targets(config, prepared)
    result = train_model(f.matrix, f.mask, f.slices, ds.labels, s.train, s.val, targets, train_config(config),
                         label_embeddings=prepared.label_emb)
    tau = fit_temperature(predict_logits(result.model, f.matrix, f.mask, s.val), ds.labels[s.val])  # as a trained run
    test_probs = calibrated_probabilities(predict_logits(result.model, f.matrix, f.mask, s.test), tau)
    top1 = float((test_probs.argmax(1) == ds.labels[s.test]).mean())
    rows = rows_for(ds.ids[s.test], test_probs, ds.labels[s.test], noisy, f"{name}: test split (top1 {top1:.2f})")
    oof, _ = out_of_fold(config, prepared, folds)
    top1 = float((oof.argmax(1) == ds.labels).mean())  # out-of-fold probabilities are calibrated per fold
    rows += rows_for(ds.ids, oof, ds.labels, noisy, f"{name}: audit, {folds} folds (top1 {top1:.2f})")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--catalogs", nargs="+", default=list(CATALOGS), choices=list(CATALOGS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.catalogs:
            config, noisy = CATALOGS[name](args.encoder, Path(tmp))
            rows += measure(name, config, noisy, args.folds)
    table = pd.DataFrame(rows)
    out = ROOT / "bench/results/label_errors.json"
    out.write_text(json.dumps({"encoder": args.encoder, "targets": ExperimentConfig().targets, "rows": rows}, indent=2))
    print(table.to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
