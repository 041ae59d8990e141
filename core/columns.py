"""First guesses at which columns of a product table hold the label, the text and the id. A guess is
made only when a column fits the role by its values, not just its name: a wrong guess (an id column
taken for the label) costs the user a failed launch with a puzzling message, no guess costs a click."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from core.taxonomy import PATH_SEPARATORS

LABEL_NAMES = ("category_path", "category", "label", "path", "product_category_tree", "categories", "breadcrumb")
TEXT_NAMES = ("title", "name", "product_name", "productdisplayname", "text", "description")
ID_NAMES = ("id", "sku", "uniq_id", "product_id", "item_id")
LABEL_HELP = ("A label column holds each product's category as a path such as `Footwear > Boots > Snow Boots` "
              "(or `A >> B`, `A / B`), as a taxonomy id, or one level per column (choose them top level first).")
MIN_TEXT_LENGTH = 12  # mean characters: shorter values (a colour, a size) are attributes, not descriptions


def _strings(series: pd.Series) -> pd.Series:
    values = series.dropna().astype(str).str.strip()
    return values[values != ""]


def _numeric(values: pd.Series) -> bool:
    return len(values) > 0 and pd.to_numeric(values, errors="coerce").notna().mean() > 0.9


def looks_like_paths(values: pd.Series) -> bool:
    """Most values are category paths: they contain a path separator or are a JSON list of levels."""
    if values.empty:
        return False
    has_sep = values.map(lambda v: any(s in v for s in PATH_SEPARATORS) or v.startswith('["'))
    return bool(has_sep.mean() >= 0.5)


def label_fit(values: pd.Series, name: str, known: Callable[[str], bool] | None) -> bool:
    """A label: paths; or values the taxonomy resolves; or, by name, repeated non-numeric values."""
    if values.empty:
        return False
    if known is not None:
        return bool(values.head(200).map(known).mean() >= 0.5)
    if looks_like_paths(values):
        return True
    return name.lower() in LABEL_NAMES and not _numeric(values) and values.nunique() < len(values)


def guess_columns(frame: pd.DataFrame, known: Callable[[str], bool] | None = None) -> dict:
    """{"label": [..], "text": [..], "id": str | None}, each empty/None when nothing fits.

    `known(value)` says whether the active taxonomy resolves a value (an id, a path or a unique name);
    without it, a label must look like a path (or be a named category column of repeated words)."""
    values = {c: _strings(frame[c]) for c in frame.columns}
    by_name = {c: c.strip().lower() for c in frame.columns}

    def ranked(columns: list[str], names: tuple[str, ...]) -> list[str]:
        return sorted(columns, key=lambda c: names.index(by_name[c]) if by_name[c] in names else len(names))

    labels = ranked([c for c in frame.columns if label_fit(values[c], by_name[c], known)], LABEL_NAMES)
    label = labels[:1]
    ids = [c for c in frame.columns if c not in label and len(values[c]) == len(frame) and values[c].is_unique
           and (by_name[c] in ID_NAMES or by_name[c].endswith("_id"))]
    id_col = ranked(ids, ID_NAMES)[0] if ids else None
    texts = [c for c in frame.columns if c not in label and c != id_col and not values[c].empty and not _numeric(values[c])
             and values[c].str.len().mean() >= MIN_TEXT_LENGTH]
    texts = ranked(texts, TEXT_NAMES)
    named = [c for c in texts if by_name[c] in TEXT_NAMES]
    return {"label": label, "text": named or texts[:1], "id": id_col}
