"""How many ensemble members (BENCHMARKS.md, "Ensemble members"): the default categorizer trained once with
--members K on the saved split of bench/baselines.py, then scored on the test items with its first 1, 2, ..., K
members (each prefix's mean probability, temperature-scaled on the validation items as a run is).

    python bench/ensemble_members.py --datasets fashion-text,flipkart-text --seeds 0 --members 8
"""

from __future__ import annotations

import argparse
import json

from baselines import DATASETS, RESULTS, load_catalog, prepare_on_split

from core import files
from core.evaluation.metrics import evaluate
from core.training.calibration import calibrated_probabilities, fit_temperature
from core.training.experiment import make_targets, train_config
from core.training.model import Ensemble
from core.training.train import predict_logits, train_model

SHOWN = ("top1", "mistake_severity", "hdist@5", "ece")  # declared-once: ok (the columns this probe reports)


def prefix_scores(name: str, seed: int, members: int) -> list[dict]:
    catalog = load_catalog(name, seed)
    config = catalog.config.replace(members=members)
    prepared = prepare_on_split(catalog, config)
    split, y, f = catalog.split, catalog.dataset.labels, prepared.features
    targets, _ = make_targets(config, prepared)
    model = train_model(f.matrix, f.mask, f.slices, y, split.train, split.val, targets, train_config(config),
                        label_embeddings=prepared.label_emb, lexical=f.lexical).model
    parts = list(model.members) if isinstance(model, Ensemble) else [model]
    ancestors = catalog.dataset.taxonomy.ancestor_sets(catalog.dataset.classes)
    rows = []
    for k in range(1, len(parts) + 1):
        scorer = parts[0] if k == 1 else Ensemble(parts[:k])
        tau = fit_temperature(predict_logits(scorer, f.matrix, f.mask, split.val, lexical=f.lexical), y[split.val])
        probs = calibrated_probabilities(predict_logits(scorer, f.matrix, f.mask, split.test, lexical=f.lexical), tau)
        metrics = evaluate(probs, y[split.test], distance=prepared.distance, embeddings=prepared.label_emb, ancestors=ancestors)
        rows.append({"dataset": name, "seed": seed, "members": k} | {m: float(metrics[m]) for m in SHOWN})
        print(name, seed, k, " ".join(f"{m} {rows[-1][m]:.4f}" for m in SHOWN), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--members", type=int, default=5)
    args = parser.parse_args()
    out = RESULTS / "ensemble_members.json"
    kept = json.loads(out.read_text()) if out.exists() else []
    for name in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            kept = [r for r in kept if (r["dataset"], r["seed"]) != (name, seed)] + prefix_scores(name, seed, args.members)
            files.write_json(out, kept)


if __name__ == "__main__":
    main()
