"""Where TF-IDF + LinearSVC's top1 lead over Taxolens comes from (issue 18; BENCHMARKS.md, "Batch size"):
probes on the saved splits of bench/baselines.py, each a top1 on the test items.

  svc               LinearSVC(C=0.5) on the baseline's TF-IDF, trained on the training items only (70%, what
                    Taxolens trains on; the baseline arm trains on 80%)
  svc-hashed        the same SVC on Taxolens's own hashed TF-IDF rows (core.data.lexical, the default spec)
  logistic          LogisticRegression(C=20) on the baseline's TF-IDF: the same features, a softmax loss
  svc+embeddings    the SVC with the run's dense vectors (MiniLM, and CLIP images where the catalog has them)
                    as extra columns
  taxolens          the default categorizer (train_model on the saved split)
  average           mean of the SVC's and Taxolens's probabilities (each temperature-scaled on validation)

    python bench/linear_probes.py --datasets fashion-text,fashion-text+image --seeds 0,1,2
"""

from __future__ import annotations

import argparse

import numpy as np
from baselines import (
    DATASETS,
    fit_svc,
    image_block,
    load_catalog,
    prepare_on_split,
    svc_logits,
    tfidf_features,
)
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from core.data.lexical import LexicalSpec, encode, fit_idf
from core.training.calibration import calibrated_probabilities, fit_temperature
from core.training.experiment import make_targets, train_config
from core.training.train import predict_logits, train_model


def hashed_tfidf(train: list[str], test: list[str]) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Taxolens's lexical rows with the training items' idf, l2-normalised (what the model's bag sums)."""
    spec = LexicalSpec()
    rows, held = encode(train, spec), encode(test, spec)
    idf = fit_idf(rows)
    return normalize(sparse.csr_matrix(rows.multiply(idf))), normalize(sparse.csr_matrix(held.multiply(idf)))


def probes(name: str, seed: int) -> dict[str, float]:
    catalog = load_catalog(name, seed)
    split, y = catalog.split, catalog.dataset.labels
    truth = y[split.test]
    images = image_block(catalog)
    train_x, union = tfidf_features(catalog.texts(split.train), None)
    test_x, _ = tfidf_features(catalog.texts(split.test), None, union)
    prepared = prepare_on_split(catalog, catalog.config)
    dense = np.asarray(prepared.features.matrix)
    hashed_train, hashed_test = hashed_tfidf(catalog.texts(split.train), catalog.texts(split.test))

    def top1(pred: np.ndarray) -> float:
        return float((pred == truth).mean())

    text_svc = fit_svc(catalog, split.train, None)
    out = {"svc": top1(svc_logits(text_svc, catalog, split.test, None).argmax(1)),
           "svc-hashed": top1(LinearSVC(C=0.5).fit(hashed_train, y[split.train]).predict(hashed_test)),
           "logistic": top1(LogisticRegression(C=20, max_iter=300).fit(train_x, y[split.train]).predict(test_x))}
    with_dense = [sparse.hstack([x, sparse.csr_matrix(dense[rows])]).tocsr() for x, rows in ((train_x, split.train), (test_x, split.test))]
    out["svc+embeddings"] = top1(LinearSVC(C=0.5).fit(with_dense[0], y[split.train]).predict(with_dense[1]))
    targets, _ = make_targets(catalog.config, prepared)
    f = prepared.features
    model = train_model(f.matrix, f.mask, f.slices, y, split.train, split.val, targets, train_config(catalog.config),
                        label_embeddings=prepared.label_emb, lexical=f.lexical).model
    ours = calibrated_probabilities(predict_logits(model, f.matrix, f.mask, split.test, lexical=f.lexical),
                                    fit_temperature(predict_logits(model, f.matrix, f.mask, split.val, lexical=f.lexical), y[split.val]))
    svc = text_svc if images is None else fit_svc(catalog, split.train, images)  # the baseline arm's features
    theirs = calibrated_probabilities(svc_logits(svc, catalog, split.test, images),
                                      fit_temperature(svc_logits(svc, catalog, split.val, images), y[split.val]))
    out["taxolens"] = top1(ours.argmax(1))
    out["average"] = top1((ours + theirs).argmax(1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="fashion-text", help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        rows = [probes(name, int(seed)) for seed in args.seeds.split(",")]
        print(f"{name} (seeds {args.seeds}): " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in rows[0]), flush=True)


if __name__ == "__main__":
    main()
