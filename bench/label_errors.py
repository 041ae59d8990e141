"""Label-error detection measured against the sample catalog's recorded noise (sample_data/label_noise.csv).

Trains the default arm on the sample once (test-split flags, as a trained run computes them) and runs
a K-fold audit (flags on every product), then reports precision and recall of `label_issue` for the
stated rule and, to show why it was chosen, for cleanlab's default selection and other quality bounds.
Usage: .venv/bin/python bench/label_errors.py [--folds 5] [--encoder minilm]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import label_issues  # noqa: E402
from core.audit import out_of_fold  # noqa: E402
from core.experiment import make_targets, prepare  # noqa: E402
from core.settings import ExperimentConfig  # noqa: E402
from core.train import predict_proba, train_model  # noqa: E402

BOUNDS = (1.0, 0.2, 0.1, 0.05, 0.02)


def rows_for(ids: np.ndarray, probs: np.ndarray, labels: np.ndarray, noisy: pd.Series, what: str) -> list[dict]:
    quality = label_issues.label_quality(probs, labels)
    out = []
    for bound in BOUNDS:
        flagged = label_issues.find_issues(probs, labels, max_quality=bound)
        pr = label_issues.precision_recall(pd.Series(ids[flagged]), noisy, pd.Series(ids))
        rule = "cleanlab default" if bound == 1.0 else f"cleanlab & quality < {bound:g}"
        out.append({"items": what, "rule": rule + (" (stated rule)" if bound == label_issues.MAX_QUALITY else "")} | pr)
    order = np.argsort(quality)[: int(round(0.03 * len(ids)))]
    pr = label_issues.precision_recall(pd.Series(ids[order]), noisy, pd.Series(ids))
    out.append({"items": what, "rule": "lowest 3% quality (ranking only)"} | pr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--encoder", default="minilm")
    args = parser.parse_args()
    config = ExperimentConfig(data=str(ROOT / "sample_data/products.csv"), label_columns=["category_path"],
                              text_columns=["title", "description"], id_column="id",
                              taxonomy=str(ROOT / "sample_data/taxonomy.txt"), encoder=args.encoder)
    noisy = pd.read_csv(ROOT / "sample_data/label_noise.csv")["id"]
    prepared = prepare(config)
    ds, s, f = prepared.dataset, prepared.split, prepared.features
    targets, _ = make_targets(config, prepared)
    result = train_model(f.matrix, f.mask, f.slices, ds.labels, s.train, s.val, targets, config.train_config(),
                         label_embeddings=prepared.label_emb)
    test_probs = predict_proba(result.model, f.matrix, f.mask, s.test)
    rows = rows_for(ds.ids[s.test], test_probs, ds.labels[s.test], noisy, "test split")
    oof, _ = out_of_fold(config, prepared, args.folds)
    rows += rows_for(ds.ids, oof, ds.labels, noisy, f"audit ({args.folds} folds)")
    table = pd.DataFrame(rows)
    out = ROOT / "bench/results/label_errors.json"
    out.write_text(json.dumps({"encoder": prepared.encoder_identity, "targets": config.targets, "rows": rows}, indent=2))
    print(table.to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
