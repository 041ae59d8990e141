"""One experiment end to end: data -> features -> label embeddings -> targets -> training -> test
metrics (plain and CRM re-ranked) -> run store. The CLI, the app's background runs and the
benchmark all go through here, so they cannot drift apart."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core import files
from core.data.encoders import (
    EMBED_CATEGORIES,
    EMBED_PRODUCTS,
    EncoderUnavailable,
    cached_encoder,
    check_checkpoint,
    label_embeddings,
)
from core.data.features import Features, build_features, precomputed_block
from core.data.lexical import LexicalSpec
from core.data.tables import (
    DataError,
    Dataset,
    Split,
    holdout_halves,
    load_catalog_taxonomy,
    prepare_dataset,
    read_table,
    stratified_split,
)
from core.errors import SettingError
from core.evaluation import selective
from core.evaluation.crm import answer_risk, crm_rerank
from core.evaluation.label_issues import with_label_issues
from core.evaluation.metrics import (
    evaluate,
    expected_calibration_error,
    jsonable,
    pairwise,
    ranked_predictions,
)
from core.evaluation.registry import TOP_K
from core.evaluation.triage import with_triage
from core.labels.codes import feature_codes
from core.labels.kinds import kind as target_kind
from core.labels.targets import SoftTargets, build_targets
from core.runs.status import append_epoch, cancel_requested, executing, set_status
from core.runs.store import Run, save_weights, write_parquet
from core.settings import ExperimentConfig
from core.taxonomy.tree import DENSE_DISTANCE_LIMIT
from core.training import finetune
from core.training.calibration import calibrated_probabilities, fit_temperature
from core.training.model import Ensemble
from core.training.train import EpochLog, TrainResult, predict_logits, train_config, train_model

TRAIN_EPOCH, AUDIT_FOLDS = "train epoch", "audit folds"
# every stage a run reports to on_event (and so to progress.json and the CLI's bars), in the words the app shows
STAGES = {EMBED_PRODUCTS: "embedding products", EMBED_CATEGORIES: "embedding category names", TRAIN_EPOCH: "training",
          AUDIT_FOLDS: "audit folds"}

Event = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Prepared:
    """Everything a training run needs that does not depend on the target settings."""

    dataset: Dataset
    split: Split
    features: Features
    label_emb: np.ndarray
    encoder_note: str
    encoder_identity: str
    distance: np.ndarray | Callable
    notes: list[str] = field(default_factory=list)


def load_dataset(config: ExperimentConfig) -> Dataset:
    frame = read_table(config.data, config.column_names, nrows=config.max_rows)
    taxonomy = load_catalog_taxonomy(config.taxonomy, config.taxonomy_format)
    return prepare_dataset(frame, label_columns=config.label_columns, text_columns=config.text_columns,
                           id_column=config.id_column, image_column=config.image_column, image_dir=config.image_dir,
                           image_pattern=config.image_pattern, taxonomy=taxonomy, max_depth=config.max_depth)


def prepare(config: ExperimentConfig, on_event: Event | None = None, dataset: Dataset | None = None) -> Prepared:
    """Load, split and featurise the data and embed the class names (all cached on disk)."""
    config.validate()
    dataset = dataset or load_dataset(config)
    split = stratified_split(dataset.labels, config.val_fraction, config.test_fraction, config.seed)
    choice = cached_encoder(config.encoder, config.clip_checkpoint, config.device)
    image_encoder = choice.encoder if choice.encoder.supports_images else None
    features = build_features(dataset, choice.encoder, image_encoder=image_encoder, use_text=config.use_text,
                              precomputed=(config.embeddings, config.embedding_ids) if config.embeddings else None,
                              features_dir=config.features, lexical=LexicalSpec.from_config(config), progress=(lambda d, t: on_event(EMBED_PRODUCTS, d, t)) if on_event else None)
    emb = label_embeddings(dataset.taxonomy, dataset.classes, choice.encoder, config.template,
                           progress=(lambda d, t: on_event(EMBED_CATEGORIES, d, t)) if on_event else None)
    c = len(dataset.classes)
    if c <= DENSE_DISTANCE_LIMIT:
        distance: np.ndarray | Callable = dataset.taxonomy.distance_matrix(dataset.classes)
    else:
        distance = functools.partial(dataset.taxonomy.distance, classes=dataset.classes)
    notes = list(dataset.report.lines()) + features.notes
    if len(split.train_only_classes):
        notes.append(f"{len(split.train_only_classes)} classes have fewer than 3 items: kept in training only")
    return Prepared(dataset, split, features, emb, choice.note, choice.encoder.identity, distance, notes)


def make_targets(config: ExperimentConfig, prepared: Prepared) -> tuple[SoftTargets, list[str]]:
    c = len(prepared.dataset.classes)
    notes = []
    kind = target_kind(config.targets)
    k = config.k
    if kind.neighbours and k >= c:
        k = c - 1
        notes.append(f"k lowered from {config.k} to {k}: there are only {c} classes")
    distance = prepared.distance if isinstance(prepared.distance, np.ndarray) else None
    if kind.tree and distance is None:
        raise SettingError(f"{config.targets} targets need a dense distance matrix; {c} classes is above {DENSE_DISTANCE_LIMIT}")
    targets = build_targets(config.targets, embeddings=prepared.label_emb, distance=distance, alpha=config.alpha,
                            temperature=config.temperature, k=k, beta=config.beta, mix=config.mix, n_classes=c)
    return targets, notes


def make_tuning(config: ExperimentConfig, prepared: Prepared) -> finetune.Tuning | None:
    """What fine-tuning the text encoder starts from (the run's frozen encoder and every item's text);
    None unless the run asks for it."""
    if not config.finetune_encoder:
        return None
    choice = cached_encoder(config.encoder, config.clip_checkpoint, config.device)
    return finetune.Tuning(choice.encoder, np.asarray(prepared.dataset.texts, dtype=object))


def make_codes(config: ExperimentConfig, prepared: Prepared) -> np.ndarray | None:
    if config.aux_codes == "none":
        return None
    if config.aux_codes == "taxonomy":
        return feature_codes("taxonomy", taxonomy=prepared.dataset.taxonomy, classes=prepared.dataset.classes).codes
    return feature_codes("clusters", embeddings=prepared.label_emb, seed=config.seed).codes


def predictions_frame(prepared: Prepared, rows: np.ndarray, probs: np.ndarray, crm_order: np.ndarray | None, k: int = TOP_K) -> pd.DataFrame:
    """What the errors page reads (schema: core/evaluation/schema.py): per test item the truth, the top-k
    with calibrated probabilities, the severity and risk of the top answer, each answer's similarity
    to the truth, the mistake's triage class and whether the label itself looks wrong (`probs` are
    out-of-sample: the test split, or out-of-fold)."""
    ds = prepared.dataset
    names = np.array(ds.class_names, dtype=object)
    y = ds.labels[rows]
    order = ranked_predictions(probs, min(k, probs.shape[1]))  # a catalog of fewer than k classes ranks them all
    sims = np.einsum("nkd,nd->nk", prepared.label_emb[order], prepared.label_emb[y])
    frame = pd.DataFrame({"id": ds.ids[rows], "text": np.array(ds.texts, dtype=object)[rows], "true_label": names[y],
                          "true_index": y})
    if ds.image_paths is not None:
        frame["image_path"] = np.array(ds.image_paths, dtype=object)[rows]
    for r in range(order.shape[1]):
        frame[f"pred_{r + 1}"] = names[order[:, r]]
        frame[f"prob_{r + 1}"] = probs[np.arange(len(rows)), order[:, r]]
        frame[f"sim_{r + 1}"] = sims[:, r]
    frame["pred_index"] = order[:, 0]
    frame["correct"] = order[:, 0] == y
    frame["tree_distance"] = pairwise(prepared.distance, order[:, 0], y).astype(int)
    frame["semantic_distance"] = 1.0 - sims[:, 0]
    if isinstance(prepared.distance, np.ndarray):
        frame["risk"] = answer_risk(probs, order[:, 0], prepared.distance)
    if crm_order is not None:
        frame["crm_pred_1"] = names[crm_order[:, 0]]
        frame["crm_tree_distance"] = pairwise(prepared.distance, crm_order[:, 0], y).astype(int)
    return with_label_issues(with_triage(frame, ds.taxonomy), probs, y)


def train_and_evaluate(config: ExperimentConfig, prepared: Prepared, run_dir: Path | None = None,
                       on_epoch: Callable[[EpochLog], None] | None = None, on_event: Event | None = None,
                       accuracy_targets: Sequence[float] | None = None) -> dict:
    """Train one arm on prepared inputs and evaluate it on the test split. With `run_dir`, every
    artefact is written to the run store and cancellation is read from it. `accuracy_targets`: the target
    accuracies to report (default: 0.95 and the config's)."""
    started = time.perf_counter()
    targets, notes = make_targets(config, prepared)
    codes = make_codes(config, prepared)
    f, s, y = prepared.features, prepared.split, prepared.dataset.labels

    def epoch_done(log: EpochLog) -> None:
        if run_dir is not None:
            append_epoch(run_dir, dataclasses.asdict(log))
        if on_epoch is not None:
            on_epoch(log)

    stopping, held = holdout_halves(s.val, config.seed)  # the threshold is fitted on items early stopping never saw
    result = train_model(f.matrix, f.mask, f.slices, y, s.train, stopping, targets, train_config(config),
                         label_embeddings=prepared.label_emb, codes=codes, progress=epoch_done,
                         should_stop=(lambda: cancel_requested(run_dir)) if run_dir is not None else None,
                         step_progress=(lambda d, t: on_event(TRAIN_EPOCH, d, t)) if on_event else None,
                         lexical=f.lexical, tuning=make_tuning(config, prepared))
    if result.cancelled:
        if run_dir is not None:
            set_status(run_dir, "cancelled", epochs_completed=len(result.history))
        return {"cancelled": True}
    ds = prepared.dataset
    f = finetune.tuned_features(f, result.encoder, ds.texts)  # the test items embedded as Predictor will embed them
    val_logits = predict_logits(result.model, f.matrix, f.mask, s.val, lexical=f.lexical)
    tau = fit_temperature(val_logits, y[s.val])
    test_logits = predict_logits(result.model, f.matrix, f.mask, s.test, lexical=f.lexical)
    probs = calibrated_probabilities(test_logits, tau)
    raw = calibrated_probabilities(test_logits, 1.0)
    ancestors = ds.taxonomy.ancestor_sets(ds.classes)
    common = {"distance": prepared.distance, "embeddings": prepared.label_emb, "ancestors": ancestors}
    plain = evaluate(probs, y[s.test], **common)
    plain["ece_raw"] = expected_calibration_error(raw.max(axis=1), raw.argmax(axis=1) == y[s.test])
    plain["temperature"] = tau
    val_probs = calibrated_probabilities(val_logits, tau)
    val = evaluate(val_probs, y[s.val], **common) if len(s.val) else {}
    tree = selective.class_tree(ds.taxonomy, ds.classes)
    held_rows = np.searchsorted(s.val, held)
    calibration = selective.climbs(val_probs[held_rows], tree, y[held])
    test_climbs = selective.climbs(probs, tree, y[s.test])
    test_sel, val_sel, thresholds, sel_notes = selective.guaranteed_accuracy(
        calibration, test_climbs, accuracy_targets or selective.report_targets(config.target_accuracy),
        config.confidence)
    plain |= test_sel
    val |= val_sel if len(s.val) else {}
    crm_order = None
    crm: dict = {}
    if isinstance(prepared.distance, np.ndarray):
        crm_order = crm_rerank(probs, prepared.distance)
        crm = evaluate(probs, y[s.test], ranking=crm_order, **common)
    summary = {
        "plain": jsonable(plain), "crm": jsonable(crm), "val": jsonable(val),
        "encoder": prepared.encoder_note + (finetune.NOTE if result.encoder is not None else ""),
        "encoder_identity": prepared.encoder_identity, "n_classes": int(len(ds.classes)),
        "n_train": int(len(s.train)), "n_val": int(len(s.val)), "n_calibration": int(len(held)), "n_test": int(len(s.test)),
        "best_epoch": result.best_epoch, "best_epochs": result.best_epochs, "stopped_early": result.stopped_early,
        "members": len(result.best_epochs),
        "modalities": f.modalities, "notes": prepared.notes + notes + sel_notes + member_notes(config, result),
        "selective": thresholds,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    if run_dir is not None:
        save_run(Run(run_dir), config, prepared, result.model, tau, predictions_frame(prepared, s.test, probs, crm_order),
                 summary, pd.concat([selective.climbs_frame(calibration, "val"), selective.climbs_frame(test_climbs, "test")]),
                 result.encoder)
    return summary


def member_notes(config: ExperimentConfig, result: TrainResult) -> list[str]:
    """Why a run has fewer members than it asked for (fine-tuning trains one model)."""
    if result.encoder is not None and config.members > 1:
        return [f"fine-tuning the encoder trains one model, not {config.members} ensemble members (each would need "
                "its own tuned encoder)"]
    return []


def image_source(config: ExperimentConfig, features: Features) -> str | None:
    """Where the image modality came from: 'precomputed' embeddings, 'clip' on image files, or None."""
    if not any(name == "image" for name, _, _ in features.slices):
        return None
    return "precomputed" if config.embeddings else "clip"


def save_run(run: Run, config: ExperimentConfig, prepared: Prepared, model: torch.nn.Module, tau: float,
             predictions: pd.DataFrame, summary: dict, climbs: pd.DataFrame | None = None,
             encoder: finetune.TunedEncoder | None = None) -> None:
    """Everything a Predictor needs to score new items (with the validation climbs a guaranteed-accuracy
    threshold is refitted from, and the test climbs, and a fine-tuned `encoder` beside the head), then the
    results; `done` is written last."""
    ds, f = prepared.dataset, prepared.features
    if climbs is not None:
        write_parquet(run.path / selective.CLIMBS_FILE, climbs)
    save_weights(run.path / "model.safetensors", model.state_dict())
    if encoder is not None:
        finetune.save_encoder(run.path, encoder)
    files.write_json(run.path / "model.json", {
        "slices": f.slices, "n_classes": int(len(ds.classes)), "hidden": config.hidden, "fusion": config.fusion,
        "dropout": config.dropout, "aux_dim": int(model.aux_head.out_features) if model.aux_head is not None else 0,
        "members": len(model.members) if isinstance(model, Ensemble) else 1,
        "temperature": tau, "encoder_identity": prepared.encoder_identity, "encoder_note": prepared.encoder_note,
        "template": config.template, "image_source": image_source(config, f),
        "lexical": f.lexical.spec.to_dict() if f.lexical is not None else None,
    } | ({"finetuned_encoder": finetune.ENCODER_FILE} if encoder is not None else {}))
    run.finish(predictions, summary, taxonomy=ds.taxonomy, classes=ds.class_names, nodes=ds.classes, slices=f.slices)


def execute_run(run_dir: Path, on_epoch: Callable[[EpochLog], None] | None = None, on_event: Event | None = None,
                dataset: Dataset | None = None, prepared: Prepared | None = None) -> dict:
    """Run a queued run folder to completion; any failure is recorded as 'failed' with its message.
    `prepared` skips the data preparation (a sweep prepares once and shares it with every trial)."""
    run_dir = Path(run_dir)
    config = Run.open(run_dir).experiment_config()
    with executing(run_dir):
        prepared = prepared or prepare(config, on_event, dataset)
        files.write_json(run_dir / "report.json", preparation_report(prepared))
        return train_and_evaluate(config, prepared, run_dir, on_epoch, on_event)


def preparation_report(prepared: Prepared) -> dict:
    """report.json: what the data preparation dropped and noted, and the encoder it used."""
    return {"notes": prepared.notes, "encoder": prepared.encoder_note}


def check_inputs(config: ExperimentConfig) -> Dataset:
    """Validate everything that can be checked without training, before a run folder exists, so a typo
    or a bad file never leaves a failed or empty run behind: the settings, the CLIP checkpoint file,
    the data and labels (at least two classes, enough items to split), the precomputed embeddings
    (shape, finite values, unique ids, ids that match the data)."""
    config.validate()
    if config.clip_checkpoint and config.encoder in ("auto", "clip"):
        try:
            check_checkpoint(config.clip_checkpoint)
        except EncoderUnavailable as exc:
            raise DataError(str(exc)) from None
    for path, what in ((config.embeddings, "embeddings"), (config.embedding_ids, "embedding ids")):
        if path is not None and not Path(path).is_file():
            raise DataError(f"{what} file not found: {path}")
    dataset = load_dataset(config)
    if len(dataset.classes) < 2:
        only = dataset.taxonomy.path_str(int(dataset.classes[0]))
        raise DataError(f"every usable row has the same label ({only!r}); a categorizer needs at least two classes "
                        f"(check the label column{' and --max-depth' if config.max_depth else ''})")
    stratified_split(dataset.labels, config.val_fraction, config.test_fraction, config.seed)
    if config.embeddings:
        precomputed_block(dataset.ids, config.embeddings, config.embedding_ids)
    return dataset
