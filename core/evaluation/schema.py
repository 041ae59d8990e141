"""The predictions table: one written schema shared by trained runs and imported predictions.

One row per evaluated item. Paths are full category paths joined with " > ". Ranked columns come
in families numbered from 1 (`pred_1..pred_k`, `prob_1..prob_k`, `sim_1..sim_k`); `k` may be 1 (an
imported file with the top answer only). Optional columns are absent when their source is (no
probabilities, no label embeddings, no dense tree distances), never filled with made-up values.
Every page, the CLI and the exports read a predictions table through `validate`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from core.errors import TaxolensError


@dataclass(frozen=True)
class Column:
    kind: str  # "str", "int", "float", "bool"
    required: bool
    meaning: str


COLUMNS: dict[str, Column] = {
    "id": Column("str", True, "the item's id (row number when the source had none)"),
    "text": Column("str", False, "the item's text as the model saw it"),
    "image_path": Column("str", False, "the item's image file"),
    "true_label": Column("str", True, "the given category path"),
    "true_index": Column("int", False, "index of the true class in the run's class list"),
    "pred_index": Column("int", False, "index of pred_1 in the run's class list"),
    "correct": Column("bool", True, "pred_1 == true_label"),
    "tree_distance": Column("int", True, "tree distance d(pred_1, true) (METHOD.md, LCA height)"),
    "semantic_distance": Column("float", False, "1 - cosine similarity of pred_1 and the truth's label embeddings"),
    "risk": Column("float", False, "expected tree distance of pred_1 under the calibrated probabilities (R_k)"),
    "crm_pred_1": Column("str", False, "the answer with the lowest expected tree distance (CRM re-ranking)"),
    "crm_tree_distance": Column("int", False, "tree distance of crm_pred_1 to the truth"),
    "triage": Column("str", False, "what kind of mistake pred_1 is (METHOD.md, 'Triage'); 'correct' when right"),
    "label_issue": Column("bool", False, "the given label is likely wrong (confident learning)"),
    "label_quality": Column("float", False, "label quality score in [0, 1]; low means likely mislabelled"),
}
RANKED = {
    "pred": Column("str", True, "the r-th answer, a category path"),
    "prob": Column("float", False, "calibrated probability of the r-th answer"),
    "sim": Column("float", False, "cosine similarity of the r-th answer's label embedding to the truth's"),
}
_RANKED = re.compile(r"^(pred|prob|sim)_(\d+)$")
_CASTS = {"str": "object", "int": "int64", "float": "float64", "bool": "bool"}


class PredictionsError(TaxolensError, ValueError):
    """A predictions table does not follow the schema; the message names the column."""


def top_k(frame: pd.DataFrame) -> int:
    """How many ranked answers the table holds (pred_1..pred_k without gaps)."""
    k = 0
    while f"pred_{k + 1}" in frame.columns:
        k += 1
    return k


def ranked(frame: pd.DataFrame, family: str) -> list[str]:
    """The columns of one ranked family in rank order, e.g. ranked(frame, 'prob') -> ['prob_1', ...]."""
    return [f"{family}_{r}" for r in range(1, top_k(frame) + 1) if f"{family}_{r}" in frame.columns]


def validate(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with schema dtypes, or PredictionsError saying what is missing or malformed."""
    missing = [name for name, col in COLUMNS.items() if col.required and name not in frame.columns]
    k = top_k(frame)
    if k == 0:
        missing.append("pred_1")
    if missing:
        raise PredictionsError(f"predictions table lacks the column(s) {', '.join(missing)}")
    for name in frame.columns:
        m = _RANKED.match(name)
        if m and int(m.group(2)) > k:
            raise PredictionsError(f"column {name} has no pred_{m.group(2)} (ranked columns must run 1..k without gaps)")
        if m and m.group(1) != "pred" and f"{m.group(1)}_1" not in frame.columns:
            raise PredictionsError(f"column {name} without {m.group(1)}_1")
    out = frame.copy()
    for name in out.columns:
        m = _RANKED.match(name)
        col = RANKED[m.group(1)] if m else COLUMNS.get(name)
        if col is None:
            continue  # extra columns (the source's own) are kept as they are
        try:
            if col.kind == "str":
                out[name] = out[name].astype(str)
            elif col.kind == "bool" and out[name].dtype != bool:
                out[name] = out[name].astype(str).str.lower().map({"true": True, "false": False, "1": True, "0": False})
                if out[name].isna().any():
                    raise ValueError("values other than true/false")
            else:
                out[name] = out[name].astype(_CASTS[col.kind])
        except (TypeError, ValueError) as exc:
            raise PredictionsError(f"column {name} must hold {col.kind} values: {exc}") from None
    if out["id"].duplicated().any():
        raise PredictionsError(f"ids repeat in the predictions table (e.g. {out['id'][out['id'].duplicated()].iloc[0]!r})")
    return out


def read(path: str) -> pd.DataFrame:
    return validate(pd.read_parquet(path))
