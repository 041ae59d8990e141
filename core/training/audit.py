"""Catalog audit: out-of-fold probabilities for every product, so every label can be doubted.

K-fold, stratified: each product is scored by the one model that never saw it (confident learning
needs out-of-sample probabilities). Each fold's model trains on the other folds, minus a stratified
validation slice for early stopping and its own temperature (METHOD.md, 'Calibration'), so the
out-of-fold probabilities are calibrated like a trained run's test probabilities. The data is loaded
and embedded once (`experiment.prepare`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.tables import Dataset, _try_stratified
from core.errors import SettingError
from core.evaluation.crm import crm_rerank
from core.evaluation.label_issues import audit_priority
from core.evaluation.metrics import evaluate, jsonable
from core.runs.status import cancel_requested, executing, set_status
from core.runs.store import Run
from core.settings import ExperimentConfig
from core.training import finetune
from core.training.calibration import calibrated_probabilities, fit_temperature
from core.training.experiment import (
    AUDIT_FOLDS,
    TRAIN_EPOCH,
    Event,
    Prepared,
    make_codes,
    make_targets,
    make_tuning,
    predictions_frame,
    preparation_report,
    prepare,
)
from core.training.train import predict_logits, train_config, train_model

REVIEW_FILE = "review.json"  # the keep / relabel decisions of an audit, saved beside its predictions
DECISIONS = ("keep", "relabel")


@dataclass(frozen=True)
class Fold:
    train: np.ndarray
    val: np.ndarray
    score: np.ndarray  # the items this fold's model scores; never in train or val


def fold_plan(labels: np.ndarray, folds: int, val_fraction: float, seed: int) -> list[Fold]:
    """K stratified folds over all items; classes with fewer items than folds are spread as they can."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if not 2 <= folds <= len(labels):
        raise SettingError(f"folds must be between 2 and the number of items ({len(labels)}); got {folds}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    plan = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has only n members": expected on catalogs
        for rest, score in splitter.split(np.zeros(len(labels)), labels):
            train, val = _try_stratified(rest, labels[rest], val_fraction, seed)
            plan.append(Fold(np.sort(train), np.sort(val), np.sort(score)))
    return plan


def out_of_fold(config: ExperimentConfig, prepared: Prepared, folds: int, on_event: Event | None = None,
                should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(N, C) calibrated out-of-fold probabilities and the fold of each item; None when cancelled."""
    targets, _ = make_targets(config, prepared)
    codes = make_codes(config, prepared)
    tuning = make_tuning(config, prepared)  # with fine-tuning, each fold tunes its own copy of the encoder
    f, y = prepared.features, prepared.dataset.labels
    probs = np.zeros((len(y), len(prepared.dataset.classes)), dtype=np.float32)
    fold_of = np.full(len(y), -1, dtype=np.int64)
    plan = fold_plan(y, folds, config.val_fraction, config.seed)
    for k, fold in enumerate(plan):
        if on_event is not None:
            on_event(AUDIT_FOLDS, k, len(plan))
        result = train_model(f.matrix, f.mask, f.slices, y, fold.train, fold.val, targets, train_config(config),
                             label_embeddings=prepared.label_emb, codes=codes, should_stop=should_stop,
                             step_progress=(lambda d, t: on_event(TRAIN_EPOCH, d, t)) if on_event else None,
                             lexical=f.lexical, tuning=tuning)
        if result.cancelled:
            return None
        tuned = finetune.tuned_features(f, result.encoder, prepared.dataset.texts)
        tau = fit_temperature(predict_logits(result.model, tuned.matrix, tuned.mask, fold.val, lexical=f.lexical), y[fold.val])
        probs[fold.score] = calibrated_probabilities(predict_logits(result.model, tuned.matrix, tuned.mask, fold.score,
                                                                   lexical=f.lexical), tau)
        fold_of[fold.score] = k
    if on_event is not None:
        on_event(AUDIT_FOLDS, len(plan), len(plan))
    return probs, fold_of


def run_audit(config: ExperimentConfig, folds: int, run_dir: Path, on_event: Event | None = None,
              dataset: Dataset | None = None) -> dict:
    """Out-of-fold predictions for every product written to the queued run `run_dir` as a run the app
    opens: the predictions table (with `fold` and `audit_priority`, highest first = review first) and
    metrics in a trained run's shape, computed on the out-of-fold probabilities. Claimed and finished
    like a trained run: never re-executed, a failure (a full disk included) recorded as `failed`."""
    with executing(run_dir):
        prepared = prepare(config, on_event, dataset)
        result = out_of_fold(config, prepared, folds, on_event, should_stop=lambda: cancel_requested(run_dir))
        if result is None:
            set_status(run_dir, "cancelled")
            return {"cancelled": True}
        probs, fold_of = result
        ds = prepared.dataset
        rows = np.arange(len(ds.labels))
        common = {"distance": prepared.distance, "embeddings": prepared.label_emb,
                  "ancestors": ds.taxonomy.ancestor_sets(ds.classes)}
        plain = evaluate(probs, ds.labels, **common)
        crm_order, crm = None, {}
        if isinstance(prepared.distance, np.ndarray):
            crm_order = crm_rerank(probs, prepared.distance)
            crm = evaluate(probs, ds.labels, ranking=crm_order, **common)
        frame = predictions_frame(prepared, rows, probs, crm_order)
        frame["fold"] = fold_of
        frame["audit_priority"] = audit_priority(frame["label_quality"].to_numpy(),
                                                 frame["tree_distance"].where(~frame["correct"], 0).to_numpy())
        summary = {"plain": jsonable(plain), "crm": jsonable(crm), "encoder": prepared.encoder_note,
                   "encoder_identity": prepared.encoder_identity, "n_classes": int(len(ds.classes)), "n_train": 0,
                   "n_val": 0, "n_test": int(len(rows)), "folds": folds, "label_issues": int(frame["label_issue"].sum()),
                   "modalities": prepared.features.modalities, "notes": prepared.notes}
        Run(run_dir).finish(frame, summary, taxonomy=ds.taxonomy, classes=ds.class_names, nodes=ds.classes,
                            report=preparation_report(prepared))
        return summary


def corrections(issues: pd.DataFrame, decisions: pd.Series) -> pd.DataFrame:
    """The relabel decisions (a 'keep'/'relabel' Series indexed by id) as a CSV-ready table:
    id, current label, corrected label (the model's answer), one row per product to change."""
    chosen = decisions[decisions == "relabel"].index
    rows = issues[issues["id"].isin(chosen)]
    return pd.DataFrame({"id": rows["id"].to_numpy(), "current_label": rows["true_label"].to_numpy(),
                         "corrected_label": rows["pred_1"].to_numpy()})


def fold_progress(on_event: Event) -> Event:
    """The events a progress.json shows for an audit: embedding, then fold k of K (a fold's epochs,
    which restart K times, would make the bar run back and forth)."""
    def event(stage: str, done: int, total: int) -> None:
        if stage != TRAIN_EPOCH:
            on_event(stage, done, total)
    return event


def load_decisions(run_dir: str | Path) -> dict[str, str]:
    """The saved keep / relabel decision per product id (empty before the first review)."""
    from core.files import read_json

    data = read_json(Path(run_dir) / REVIEW_FILE)
    return {str(k): v for k, v in data.items() if v in DECISIONS} if isinstance(data, dict) else {}


def save_decisions(run_dir: str | Path, decisions: dict[str, str]) -> None:
    """Saved atomically after every change, so a reload or another browser tab loses nothing."""
    from core.files import write_json

    bad = sorted({v for v in decisions.values() if v not in DECISIONS})
    if bad:
        raise SettingError(f"a review decision must be one of {', '.join(DECISIONS)}; got {', '.join(bad)}")
    write_json(Path(run_dir) / REVIEW_FILE, {str(k): v for k, v in decisions.items()})
