"""Import another categorizer's predictions: a table of true labels and ranked answers (optionally
scores), or a probability matrix with its class list, turned into the predictions schema and the
metrics a trained run has, so every page and command works on it unchanged.

Nothing is made up: a metric the input cannot support (top5 from a top-1 file, ece without scores,
label issues without a full probability matrix) is None, printed `n/a`. Rows that cannot be used
(unknown label, duplicate id, no prediction) are counted and dropped with the reason, never silently."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.tables import DataError, DropReport, compose_texts, require_columns
from core.evaluation.metrics import evaluate, jsonable
from core.evaluation.registry import TOP_K
from core.taxonomy.formats import taxonomy_from_labels
from core.taxonomy.tree import Taxonomy

SPLIT_SEED = 0  # the random halves a threshold is fitted on and measured on (no validation split here)
SUM_TOLERANCE = 0.01  # how far a probability row's sum may be from 1 and still be renormalised
SCORE_TOLERANCE = 1e-4  # how far a score may exceed 1 and be clipped to 1 (fastText adds 1e-5 to every probability)


@dataclass
class ImportSpec:
    """Which columns of the predictions file play which role."""

    true_column: str
    pred_columns: list[str] = field(default_factory=list)
    score_columns: list[str] = field(default_factory=list)
    id_column: str | None = None
    text_columns: list[str] = field(default_factory=list)

    def check(self, frame: pd.DataFrame, matrix: bool) -> None:
        require_columns(frame, [self.true_column], "true label")
        require_columns(frame, self.pred_columns, "prediction")
        require_columns(frame, self.score_columns, "score")
        require_columns(frame, self.text_columns, "text")
        if self.id_column:
            require_columns(frame, [self.id_column], "id")
        if matrix == bool(self.pred_columns):
            raise DataError("give either prediction columns or a probability matrix with its class list, not both or neither")
        if self.score_columns and len(self.score_columns) != len(self.pred_columns):
            raise DataError(f"{len(self.score_columns)} score columns for {len(self.pred_columns)} prediction columns: "
                            "give one score column per prediction column, in the same order")


_ROLE_PATTERNS = {
    "true_column": r"^(true|gold|actual|label|category|category_path|path|target|y)([_ ]?(label|path|category))?$",
    "pred_columns": r"^(pred|prediction|predicted|guess|top)[_ ]?(label|category|class)?[_ ]?\d*$",
    "score_columns": r"^(prob|score|confidence|p)[_ ]?\d*$",
    "id_column": r"^(id|sku|uniq[_ ]?id|item[_ ]?id|product[_ ]?id)$",
    "text_columns": r"^(title|name|text|description|product[_ ]?name)$",
}


def guess_spec(columns: Sequence[str]) -> dict:
    """A first guess at each role from the column names (the app shows it for the user to correct);
    a role no name fits stays empty rather than taking the first column; numbered columns keep their
    number order (pred_1, pred_2, ...). The Training and Import pages share it."""

    def number(c: str) -> int:
        m = re.search(r"(\d+)$", c)
        return int(m.group(1)) if m else 0

    out: dict = {}
    for role, pattern in _ROLE_PATTERNS.items():
        hits = [c for c in columns if re.match(pattern, c.strip().lower())]
        if role in ("pred_columns", "score_columns", "text_columns"):
            out[role] = sorted(hits, key=number)
        else:
            out[role] = hits[0] if hits else None
    return out


def read_class_list(path: str) -> list[str]:
    """One class per line (a path or an id); blank lines ignored."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.strip() for line in fh if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"the class list {path} could not be read: {exc}") from None


@dataclass
class Imported:
    predictions: pd.DataFrame  # the predictions schema, without the embedding-based columns
    taxonomy: Taxonomy
    classes: np.ndarray  # taxonomy node of each class index
    labels: np.ndarray  # true class index per row
    ranking: np.ndarray  # (N, k) class indices, best first
    scores: np.ndarray | None  # (N, k) scores of the ranked answers
    matrix: np.ndarray | None  # (N, C) probabilities over `classes` when a matrix was given
    report: DropReport


def build(frame: pd.DataFrame, spec: ImportSpec, taxonomy: Taxonomy | None = None,
          probabilities: np.ndarray | None = None, class_list: Sequence[str] | None = None) -> Imported:
    """Resolve every label against the taxonomy (derived from the labels when None), drop unusable rows
    with their reason, and return the ranked answers as class indices."""
    spec.check(frame, matrix=probabilities is not None)
    frame = frame.reset_index(drop=True)
    report = DropReport(rows_in=len(frame))
    ids = frame[spec.id_column].astype(str).str.strip() if spec.id_column else pd.Series([str(i) for i in range(len(frame))])
    true = frame[spec.true_column].fillna("").astype(str).str.strip()
    if probabilities is not None:
        probabilities = _check_matrix(probabilities, class_list, len(frame), report.notes)
        preds = None
        labels_seen = list(true) + list(class_list)
    else:
        preds = frame[spec.pred_columns].fillna("").astype(str).apply(lambda c: c.str.strip())
        labels_seen = list(true) + [v for c in preds for v in preds[c] if v]
    if taxonomy is None:
        taxonomy = taxonomy_from_labels([v for v in labels_seen if v])
        report.notes.append(f"taxonomy derived from the labels: {len(taxonomy)} nodes")
    lookup = {v: taxonomy.resolve(v) for v in set(labels_seen) if v}
    keep = np.ones(len(frame), dtype=bool)

    def drop(reason: str, mask: np.ndarray) -> None:
        nonlocal keep
        report.drop(reason, ids[mask & keep].tolist())
        keep &= ~mask

    drop("empty true label", (true == "").to_numpy())
    drop("true label not in the taxonomy", np.array([lookup.get(v) is None for v in true]))
    if preds is not None:
        drop("no prediction", (preds.iloc[:, 0] == "").to_numpy())
        drop("predicted label not in the taxonomy",
             np.array([any(v and lookup.get(v) is None for v in row) for row in preds.itertuples(index=False)]))
    drop("duplicate id", ids.duplicated().to_numpy())
    if not keep.any():
        raise DataError("no usable rows: " + "; ".join(report.lines()[1:]))
    if probabilities is not None:
        class_nodes = np.array([lookup[c] if lookup.get(c) is not None else -1 for c in class_list], dtype=np.int64)
        if (class_nodes < 0).any():
            bad = [c for c, n in zip(class_list, class_nodes, strict=True) if n < 0][:3]
            raise DataError(f"{(class_nodes < 0).sum()} classes in the class list are not in the taxonomy (e.g. {', '.join(bad)})")
        if len(set(class_nodes.tolist())) != len(class_nodes):
            raise DataError("the class list names a class twice")
        order = np.argsort(class_nodes)
        classes, matrix = class_nodes[order], probabilities[keep][:, order]
        y_nodes = np.array([lookup[v] for v in true[keep]], dtype=np.int64)
        missing = ~np.isin(y_nodes, classes)
        if missing.any():
            raise DataError(f"{missing.sum()} true labels are not in the class list (e.g. {true[keep][missing].iloc[0]!r}): "
                            "the matrix cannot score them")
        labels = np.searchsorted(classes, y_nodes)
        k = min(TOP_K, len(classes))
        from core.evaluation.metrics import ranked_predictions

        ranking = ranked_predictions(matrix, k)
        scores = np.take_along_axis(matrix, ranking, axis=1)
    else:
        rows = preds[keep]
        filled = (rows != "").all(axis=0).to_numpy()
        k = int(filled.argmin()) if not filled.all() else len(filled)  # the leading columns filled on every row
        if k < rows.shape[1]:
            report.notes.append(f"only the first {k} prediction columns are filled on every row; the rest are ignored")
        rows = rows.iloc[:, :k]
        nodes = np.array([[lookup[v] for v in row] for row in rows.itertuples(index=False)], dtype=np.int64)
        y_nodes = np.array([lookup[v] for v in true[keep]], dtype=np.int64)
        classes = np.unique(np.concatenate([y_nodes, nodes.ravel()]))
        labels, ranking = np.searchsorted(classes, y_nodes), np.searchsorted(classes, nodes)
        matrix = None
        scores = None
        if spec.score_columns:
            scores = checked_scores(frame.loc[keep, spec.score_columns[:k]], ids[keep], report.notes)
    names = np.array([taxonomy.path_str(int(c)) for c in classes], dtype=object)
    table = pd.DataFrame({"id": ids[keep].to_numpy(), "true_label": names[labels]})
    if spec.text_columns:
        table["text"] = compose_texts(frame.loc[keep], spec.text_columns).to_numpy()
    for r in range(ranking.shape[1]):
        table[f"pred_{r + 1}"] = names[ranking[:, r]]
        if scores is not None:
            table[f"prob_{r + 1}"] = scores[:, r]
    table["true_index"] = labels
    table["pred_index"] = ranking[:, 0]
    table["correct"] = ranking[:, 0] == labels
    table["tree_distance"] = taxonomy.distance(ranking[:, 0], labels, classes=classes).astype(int)
    return Imported(table, taxonomy, classes, labels, ranking, scores, matrix, report)


def checked_scores(columns: pd.DataFrame, ids: pd.Series, notes: list[str]) -> np.ndarray:
    """The score columns as floats in [0, 1]. Scores above 1 by at most SCORE_TOLERANCE are rounding
    (fastText reports up to 1.00001) and are clipped to 1, with a note of how many rows; anything else
    (text, NaN, negative, further above 1) is refused, naming the first such row, column and value."""
    raw = columns.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(raw) | (raw < 0) | (raw > 1 + SCORE_TOLERANCE)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"score columns must hold numbers between 0 and 1 (probabilities or confidences; up to "
                        f"{1 + SCORE_TOLERANCE:g} is taken as 1): {int(bad.any(axis=1).sum())} rows do not, the first "
                        f"is id {ids.iloc[row]!r}, whose {columns.columns[col]} is {str(columns.iloc[row, col])!r}")
    over = raw > 1
    if over.any():
        notes.append(f"{int(over.any(axis=1).sum())} rows had scores above 1 by at most {raw.max() - 1:.2g} "
                     f"(within {SCORE_TOLERANCE:g}: rounding, e.g. fastText's +1e-5): clipped to 1")
    return np.minimum(raw, 1.0)


def _check_matrix(probabilities: np.ndarray, class_list: Sequence[str] | None, rows: int, notes: list[str]) -> np.ndarray:
    """The matrix as float32 rows of probabilities. Rows must sum to 1 within SUM_TOLERANCE (rounding,
    half precision); they are then renormalised exactly, and a note says so. Anything further off is
    not a probability distribution (raw scores, a top-k slice) and is refused rather than guessed at."""
    probabilities = np.asarray(probabilities)
    if probabilities.dtype.kind not in "iuf":
        raise DataError(f"the probability matrix must hold real numbers; it is {probabilities.dtype}")
    p = probabilities.astype(np.float32)
    if class_list is None:
        raise DataError("a probability matrix needs its class list (--classes)")
    if p.ndim != 2:
        raise DataError(f"the probability matrix must be 2-D (items x classes); got shape {p.shape}")
    if p.shape[1] != len(class_list):
        raise DataError(f"the probability matrix has {p.shape[1]} columns but the class list names {len(class_list)} classes")
    if p.shape[0] != rows:
        raise DataError(f"the probability matrix has {p.shape[0]} rows but the predictions file has {rows}: rows must match, in file order")
    if not np.isfinite(p).all() or (p < 0).any():
        raise DataError("the probability matrix holds negative, NaN or infinite values")
    sums = p.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1)
    if len(p) and off.max() > SUM_TOLERANCE:
        worst = int(off.argmax())
        raise DataError(f"rows of the probability matrix must sum to 1: {int((off > SUM_TOLERANCE).sum())} rows do not "
                        f"(row {worst} sums to {sums[worst]:.4g}); pass probabilities (e.g. a softmax), not raw scores")
    if len(p) and off.max() > 1e-6:
        notes.append(f"probability rows renormalised to sum to 1 (the largest deviation was {off.max():.2g})")
    return (p / sums[:, None]).astype(np.float32) if len(p) else p


def metrics(imported: Imported, label_emb: np.ndarray) -> dict:
    """The metric keys of a trained run, None where the input cannot support them (e.g. top5 and
    hdist@5 from fewer than 5 answers, ece without scores)."""
    n, k = imported.ranking.shape
    c = len(imported.classes)
    probs = imported.matrix
    if probs is None:  # answers only: place the scores (or zeros) at the ranked classes
        probs = np.zeros((n, c), dtype=np.float32)
        if imported.scores is not None:
            np.put_along_axis(probs, imported.ranking, imported.scores.astype(np.float32), axis=1)
    distance = imported.taxonomy.distance_matrix(imported.classes)
    ancestors = imported.taxonomy.ancestor_sets(imported.classes)
    out = evaluate(probs, imported.labels, distance=distance, embeddings=label_emb, ancestors=ancestors, k=min(TOP_K, k),
                   ranking=imported.ranking)
    if k < TOP_K:
        for key in (f"top{TOP_K}", f"hdist@{TOP_K}", f"semsim@{TOP_K}", f"neighbor_hits@{TOP_K}"):
            out[key] = None
        for key in (f"top{k}", f"hdist@{k}", f"semsim@{k}", f"neighbor_hits@{k}"):
            if key != "top1":
                out.pop(key, None)
    if imported.matrix is None and imported.scores is None:
        out["ece"] = None
    return jsonable(out)


def guaranteed_accuracy(imported: Imported) -> tuple[dict, list[dict], list[str]]:
    """hacc@a, coverage@a, leaf_rate@a and hAURC of the climbing answers, the thresholds and notes.
    There is no validation split, so each threshold is fitted on a random half of the items and measured
    on the other half; hAURC needs no fit and covers every item. Without a full probability matrix no
    subtree probability can be summed: the notes say so and the metrics are None."""
    from core.evaluation import selective
    from core.settings import get

    if imported.matrix is None:
        return dict.fromkeys(selective.METRIC_KEYS), [], [
            f"{', '.join(selective.METRIC_KEYS)} not computed: backing off up the tree needs every class's probability "
            f"(--probabilities with --classes) to sum P(v) over a subtree; the top-{imported.ranking.shape[1]} "
            "answers and their scores leave the rest of each subtree unknown"]
    total = imported.matrix.sum(axis=1, keepdims=True)
    probs = imported.matrix / np.where(total > 0, total, 1.0)
    tree = selective.class_tree(imported.taxonomy, imported.classes)
    halves = np.array_split(np.random.default_rng(SPLIT_SEED).permutation(len(probs)), 2)
    fit, report = (selective.climbs(probs[h], tree, imported.labels[h]) for h in halves)
    out, _, thresholds, notes = selective.guaranteed_accuracy(fit, report, selective.report_targets(),
                                                              get("confidence").default)
    out["hAURC"] = selective.haurc(selective.risk_coverage(selective.climbs(probs, tree, imported.labels)))
    note = (f"no validation split: the guaranteed-accuracy thresholds were fitted on a random half of the items "
            f"({len(halves[0])}) and hacc@a, coverage@a and leaf_rate@a measured on the other half ({len(halves[1])})")
    return out, thresholds, [note, *notes]


def embedding_columns(table: pd.DataFrame, imported: Imported, label_emb: np.ndarray) -> pd.DataFrame:
    """sim_1..k (each answer's label-embedding similarity to the truth) and semantic_distance."""
    sims = np.einsum("nkd,nd->nk", label_emb[imported.ranking], label_emb[imported.labels])
    out = table.copy()
    for r in range(sims.shape[1]):
        out.insert(out.columns.get_loc(f"pred_{r + 1}") + 1 + (f"prob_{r + 1}" in out.columns), f"sim_{r + 1}", sims[:, r])
    out["semantic_distance"] = 1.0 - sims[:, 0]
    return out


def finish(imported: Imported, label_emb: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """The full predictions table (similarities, triage, label issues where a matrix allows) and the
    metrics in a trained run's shape: plain and CRM (CRM only with a probability matrix, else None)."""
    from core.evaluation.crm import crm_rerank
    from core.evaluation.label_issues import with_label_issues
    from core.evaluation.schema import validate
    from core.evaluation.triage import with_triage

    table = with_triage(embedding_columns(imported.predictions, imported, label_emb), imported.taxonomy)
    plain = metrics(imported, label_emb)
    crm = {key: None for key in plain}
    if imported.matrix is not None:
        table = with_label_issues(table, imported.matrix, imported.labels)
        distance = imported.taxonomy.distance_matrix(imported.classes)
        order = crm_rerank(imported.matrix, distance)
        crm_ranked = Imported(**(vars(imported) | {"ranking": order[:, :imported.ranking.shape[1]]}))
        crm = metrics(crm_ranked, label_emb)
        names = np.array([imported.taxonomy.path_str(int(c)) for c in imported.classes], dtype=object)
        table["crm_pred_1"] = names[order[:, 0]]
        table["crm_tree_distance"] = distance[order[:, 0], imported.labels].astype(int)
    return validate(table), {"plain": plain, "crm": crm}


def import_run(store_root: str, frame: pd.DataFrame, spec: ImportSpec, *, source: str, taxonomy_path: str | None = None,
               taxonomy_format: str | None = None, probabilities: np.ndarray | None = None,
               class_list: Sequence[str] | None = None, encoder: str = "auto", template: str = "name",
               clip_checkpoint: str | None = None, name: str | None = None,
               on_event: Callable[[str, int, int], None] | None = None) -> tuple[Path, dict]:
    """Everything `evaluate` and the app's import do: check, build, embed the class names, compute the
    metrics, then create the imported run (only once all of that succeeded, so a bad file leaves the
    run store untouched). Returns (run folder, summary as a trained run's metrics.json)."""
    from core.data.encoders import EMBED_CATEGORIES, cached_encoder, label_embeddings
    from core.data.tables import load_catalog_taxonomy
    from core.runs.store import RunStore

    taxonomy = load_catalog_taxonomy(taxonomy_path, taxonomy_format)
    imported = build(frame, spec, taxonomy, probabilities, class_list)
    choice = cached_encoder(encoder, clip_checkpoint)
    emb = label_embeddings(imported.taxonomy, imported.classes, choice.encoder, template,
                           progress=(lambda d, t: on_event(EMBED_CATEGORIES, d, t)) if on_event else None)
    table, result = finish(imported, emb)
    guaranteed, thresholds, guarantee_notes = guaranteed_accuracy(imported)
    result["plain"] |= jsonable(guaranteed)
    summary = result | {
        "encoder": choice.note, "encoder_identity": choice.encoder.identity, "n_classes": int(len(imported.classes)),
        "n_train": 0, "n_val": 0, "n_test": int(len(table)), "modalities": ["imported"],
        "notes": imported.report.lines() + ([] if imported.matrix is not None else
                                            ["label issues need a full probability matrix (--probabilities)"])
                 + guarantee_notes,
        "selective": thresholds,
    }
    config = {"kind": "imported", "data": source, "name": name, "true_column": spec.true_column,
              "pred_columns": spec.pred_columns, "score_columns": spec.score_columns, "id_column": spec.id_column,
              "text_columns": spec.text_columns, "taxonomy": taxonomy_path, "taxonomy_format": taxonomy_format,
              "probabilities": probabilities is not None, "encoder": encoder, "template": template}
    run = RunStore(store_root).create(config, name=name or "imported")
    run.finish(table, summary, taxonomy=imported.taxonomy, classes=[imported.taxonomy.path_str(int(c)) for c in imported.classes],
               nodes=imported.classes, report={"notes": summary["notes"], "encoder": choice.note} | imported.report.to_dict())
    return run.path, summary

