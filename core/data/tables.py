"""Product tables: reading (whole or in chunks), label normalisation against a taxonomy, a report of
what was dropped and why, and the stratified split. The feature matrix is built in features.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import DataError, SettingError
from core.taxonomy.formats import detect_separator, taxonomy_from_labels
from core.taxonomy.tree import PATH_SEP, Taxonomy, TaxonomyError

MAX_TABLE_BYTES = 4 * 1024**3
READERS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}


def read_table(path: str | Path, column_names: Sequence[str] | None = None, nrows: int | None = None) -> pd.DataFrame:
    """CSV, TSV, Parquet or JSON Lines, chosen by extension. `column_names` reads a header-less CSV/TSV."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.stat().st_size > MAX_TABLE_BYTES:
        raise DataError(f"{path.name} is {path.stat().st_size / 1e9:.1f} GB; split it or convert it to Parquet (limit {MAX_TABLE_BYTES / 1e9:.0f} GB)")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unsupported data file type {path.suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    header = None if column_names else "infer"
    try:
        if kind in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False, nrows=nrows,
                                header=header, names=list(column_names) if column_names else None, on_bad_lines="error")
        elif kind == "parquet":
            frame = pd.read_parquet(path)
            frame = frame.head(nrows) if nrows else frame
        else:
            frame = pd.read_json(path, lines=True, dtype=False, nrows=nrows)
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise DataError(f"{path.name} could not be read as {kind.upper()}: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"{path.name} holds no rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _is_nested(value: object) -> bool:
    return isinstance(value, list | tuple | dict | np.ndarray | set)


def scalar_column(frame: pd.DataFrame, column: str, role: str, segments: bool = False) -> pd.Series:
    """A column as strings. Parquet and JSON Lines can hold lists and structs, which `astype(str)` would
    turn into "['A' 'B']": with `segments`, a list of strings is a category path (its segments joined
    with ' > '); anything else that is not a single value is refused, naming the row."""
    values = frame[column]
    if values.dtype == object:
        nested = values.map(_is_nested)
        if nested.any():
            row = int(np.flatnonzero(nested.to_numpy())[0])
            cell = values.iloc[row]
            flat = segments and all(not isinstance(c, dict) and not any(_is_nested(v) for v in c) for c in values[nested])
            if not flat:
                what = "structs (key: value records)" if isinstance(cell, dict) else "lists"
                accepts = "a path string, a list of path segments or a taxonomy id" if segments else "one value per row"
                raise DataError(f"{role} column {column!r} holds {what} (row {row + 1}: {str(cell)[:80]}); it needs {accepts}")
            values = values.map(lambda v: PATH_SEP.join(str(x).strip() for x in v if str(x).strip()) if _is_nested(v) else v)
    return values.fillna("").astype(str)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], role: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{role} column {', '.join(map(repr, missing))} is not in the data; available columns: {', '.join(frame.columns)}")


@dataclass
class DropReport:
    rows_in: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, values: Sequence[str]) -> None:
        if len(values):
            self.dropped[reason] = self.dropped.get(reason, 0) + len(values)
            examples = self.examples.setdefault(reason, [])
            for v in dict.fromkeys(map(str, values)):  # distinct examples: one label repeated 9,000 times shows once
                if len(examples) >= 5:
                    break
                if v not in examples:
                    examples.append(v)

    @property
    def kept(self) -> int:
        return self.rows_in - sum(self.dropped.values())

    def lines(self) -> list[str]:
        out = [f"{self.rows_in} rows read, {self.kept} kept"]
        out += [f"dropped {n}: {reason} (e.g. {', '.join(self.examples[reason][:3])})" for reason, n in self.dropped.items()]
        return out + self.notes

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "kept": self.kept, "dropped": self.dropped, "notes": self.notes}


@dataclass
class Dataset:
    ids: np.ndarray
    texts: list[str]
    labels: np.ndarray  # index into `classes`
    classes: np.ndarray  # taxonomy node index of each class
    taxonomy: Taxonomy
    image_paths: list[str] | None
    report: DropReport

    @property
    def class_names(self) -> list[str]:
        return [self.taxonomy.path_str(int(c)) for c in self.classes]


_JSON_LIST = re.compile(r'^\s*\[\s*"')


def normalise_label(raw: str, title: str = "") -> tuple[list[str], bool]:
    """Split a category path; unwrap Flipkart's JSON list and drop a tail segment that is the product's
    own name (or a truncation of it ending in '...'). Returns (segments, tail_was_stripped)."""
    text = str(raw).strip()
    if _JSON_LIST.match(text):
        try:
            items = json.loads(text)
            text = str(items[0]) if items else ""
        except (json.JSONDecodeError, IndexError):
            pass
    sep = detect_separator([text])
    parts = [p.strip() for p in text.split(sep)] if sep else [text]
    parts = [p for p in parts if p]
    if len(parts) > 1 and str(title).strip():
        name = str(title).strip().casefold()
        tail = parts[-1].casefold()
        truncated = tail.endswith("...") and name.startswith(tail.removesuffix("...").strip())
        extended = tail.startswith((name + " ", name + "("))  # the name plus a variant, e.g. "(500 ml)"
        # an exact match counts only for a product-like name: a short one ("Boots") may be the category
        if truncated or extended or (tail == name and len(name.split()) >= 3):
            return parts[:-1], True
    return parts, False


def prepare_dataset(frame: pd.DataFrame, *, label_columns: Sequence[str], text_columns: Sequence[str],
                    id_column: str | None = None, image_column: str | None = None, image_dir: str | Path | None = None,
                    image_pattern: str = "{}", taxonomy: Taxonomy | None = None, max_depth: int | None = None) -> Dataset:
    """Resolve labels (a path in one column, a path spread over several columns, or a taxonomy id),
    drop unusable rows with the reason recorded, and derive the taxonomy when none is given."""
    require_columns(frame, label_columns, "label")
    require_columns(frame, text_columns, "text")
    if id_column:
        require_columns(frame, [id_column], "id")
    if image_column:
        require_columns(frame, [image_column], "image")
        if image_dir is not None and not Path(image_dir).is_dir():
            raise DataError(f"image folder not found: {image_dir}")
    report = DropReport(rows_in=len(frame))
    frame = frame.reset_index(drop=True)
    ids = item_ids(frame, id_column)
    texts = compose_texts(frame, text_columns)
    titles = scalar_column(frame, text_columns[0], "text")
    raw = pd.DataFrame({c: scalar_column(frame, c, "label", segments=len(label_columns) == 1) for c in label_columns})
    stripped = 0
    paths = []
    for n in range(len(frame)):
        if len(label_columns) > 1:
            parts = [v.strip() for v in raw.iloc[n] if v.strip()]
        else:
            parts, cut = normalise_label(raw.iloc[n, 0], titles.iloc[n])
            stripped += cut
        paths.append(parts[:max_depth] if max_depth else parts)
    if stripped:
        report.notes.append(f"{stripped} labels ended in the product's own name; that segment was removed")
    if max_depth:
        report.notes.append(f"labels truncated to at most {max_depth} levels")
    keep = np.ones(len(frame), dtype=bool)
    empty_label = np.array([not p for p in paths])
    report.drop("empty label", ids[empty_label & keep].tolist())
    keep &= ~empty_label
    empty_text = (texts.str.strip() == "").to_numpy()
    report.drop("empty text", ids[empty_text & keep].tolist())
    keep &= ~empty_text
    dup = ids.duplicated().to_numpy()
    report.drop("duplicate id", ids[dup & keep].tolist())
    keep &= ~dup
    label_strings = [PATH_SEP.join(p) for p in paths]
    _require_rows(keep, report)
    if taxonomy is None:
        taxonomy = taxonomy_from_labels([s for s, k in zip(label_strings, keep, strict=True) if k], sep=PATH_SEP)
        report.notes.append(f"taxonomy derived from the labels: {len(taxonomy)} nodes")
    nodes = np.array([taxonomy.resolve(s) if k else None for s, k in zip(label_strings, keep, strict=True)], dtype=object)
    unknown = keep & np.array([n is None for n in nodes])
    report.drop("label not in the taxonomy", [label_strings[i] for i in np.flatnonzero(unknown)])
    keep &= ~unknown
    if not keep.any() and unknown.any():
        tops = ", ".join(taxonomy.path_str(r) for r in taxonomy.roots[:3])
        raise DataError(f"no usable rows: {'; '.join(report.lines()[1:])}. None of the labels is a category of the "
                        f"given taxonomy (its top level: {tops}{', ...' if len(taxonomy.roots) > 3 else ''}): choose the "
                        "label column that holds its paths or ids, or train without it so the taxonomy is derived from "
                        "the labels (on the Training page untick 'Check the labels against the taxonomy'; on the command "
                        "line leave out --taxonomy)")
    _require_rows(keep, report)
    node_ids = nodes[keep].astype(np.int64)
    classes, labels = np.unique(node_ids, return_inverse=True)
    image_paths = None
    if image_column:
        image_paths = resolve_image_paths(scalar_column(frame, image_column, "image")[keep], image_dir, image_pattern)
        missing = sum(not Path(p).is_file() for p in image_paths)
        if missing == len(image_paths):
            raise DataError(f"none of the {len(image_paths)} images exist (first looked for {image_paths[0]}); check the image folder and pattern")
        if missing:
            report.notes.append(f"{missing} images are missing; those items are kept with the text only")
    return Dataset(ids=ids[keep].to_numpy(), texts=texts[keep].tolist(), labels=labels.astype(np.int64), classes=classes,
                   taxonomy=taxonomy, image_paths=image_paths, report=report)


def item_ids(frame: pd.DataFrame, id_column: str | None, offset: int = 0) -> pd.Series:
    """The id column as stripped strings, or row numbers (from `offset`) when there is none."""
    if id_column:
        return scalar_column(frame, id_column, "id").str.strip().reset_index(drop=True)
    return pd.Series([str(i) for i in range(offset, offset + len(frame))])


def join_texts(fields: Iterable[str]) -> str:
    """One product's text: its non-empty fields, stripped, joined with ' . ' (what the encoder is given)."""
    return " . ".join(x.strip() for x in fields if x.strip())


def compose_texts(frame: pd.DataFrame, text_columns: Sequence[str]) -> pd.Series:
    """One text per row from the text columns (`join_texts`), as training, prediction and import see it."""
    texts = pd.DataFrame({c: scalar_column(frame, c, "text") for c in text_columns})
    return texts.agg(join_texts, axis=1).reset_index(drop=True)


def resolve_image_paths(values: pd.Series, image_dir: str | Path | None, image_pattern: str = "{}") -> list[str]:
    base = Path(image_dir) if image_dir else Path(".")
    return [str(base / image_pattern.format(v.strip())) for v in values.astype(str)]


@dataclass
class Items:
    """Products to featurise without labels (what `build_features` needs of a Dataset)."""

    ids: np.ndarray
    texts: list[str]
    image_paths: list[str] | None = None


def iter_table(path: str | Path, column_names: Sequence[str] | None = None, chunk_rows: int = 50_000,
               max_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """A product table in chunks of `chunk_rows` (memory stays flat on any size); same readers and
    messages as `read_table`. An empty table raises DataError before the first chunk."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unsupported data file type {path.suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            chunks: Iterator[pd.DataFrame] = (b.to_pandas() for b in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows))
        elif kind == "jsonl":
            chunks = iter(pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows))
        else:
            chunks = iter(pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False,
                                      header=None if column_names else "infer",
                                      names=list(column_names) if column_names else None, chunksize=chunk_rows))
        seen = 0
        for chunk in chunks:
            if max_rows is not None and seen >= max_rows:
                break
            chunk = chunk.head(max_rows - seen) if max_rows is not None else chunk
            if chunk.empty:
                continue
            chunk.columns = [str(c).strip() for c in chunk.columns]
            chunk.index = range(seen, seen + len(chunk))
            seen += len(chunk)
            yield chunk
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise DataError(f"{path.name} could not be read as {kind.upper()}: {str(exc).splitlines()[0]}") from None
    if seen == 0:
        raise DataError(f"{path.name} holds no rows")


def count_rows(path: str | Path, column_names: Sequence[str] | None = None) -> int:
    """Rows of a product table, read in chunks so memory stays flat (same readers and messages as `iter_table`)."""
    return sum(len(chunk) for chunk in iter_table(path, column_names))


def _require_rows(keep: np.ndarray, report: DropReport) -> None:
    if not keep.any():
        raise DataError("no usable rows: " + "; ".join(report.lines()[1:]))


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_only_classes: np.ndarray  # classes too small to appear in every split


def holdout_halves(idx: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of held-out items: one picks the training epoch (early stopping), the
    other fits what must not be chosen on the same items (a guaranteed-accuracy threshold): an epoch
    chosen for its validation accuracy makes that accuracy optimistic. Fewer than 2 items: both halves
    are all of them."""
    idx = np.asarray(idx)
    if len(idx) < 2:
        return idx, idx
    order = np.random.default_rng(seed).permutation(len(idx))
    half = len(idx) // 2
    return np.sort(idx[order[:half]]), np.sort(idx[order[half:]])


def stratified_split(labels: np.ndarray, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Per-class stratified split. Classes with fewer than 3 items cannot reach all three parts; they
    stay in training only, and the run says so."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise SettingError("val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    small = np.flatnonzero((counts > 0) & (counts < 3))
    eligible = np.flatnonzero(~np.isin(labels, small))
    forced = np.flatnonzero(np.isin(labels, small))
    rest_fraction = val_fraction + test_fraction
    needed = min_split_items(val_fraction, test_fraction)
    if len(eligible) < needed:
        raise DataError(f"too few items to split: {len(eligible)} items are in classes of at least 3, and holding out "
                        f"{val_fraction:g} for validation and {test_fraction:g} for test needs at least {needed}; "
                        "add items to the catalog")
    train, rest = _try_stratified(eligible, labels[eligible], rest_fraction, seed)
    val, test = _try_stratified(rest, labels[rest], test_fraction / rest_fraction, seed)
    return Split(np.sort(np.concatenate([train, forced])), np.sort(val), np.sort(test), small)


def _split_sizes(n: int, fraction: float) -> tuple[int, int]:
    """(kept, held out) of n items, rounded as scikit-learn's train_test_split rounds them."""
    held = int(np.ceil(fraction * n))
    return min(int(np.floor((1 - fraction) * n)), n - held), held


def min_split_items(val_fraction: float, test_fraction: float) -> int:
    """The fewest items whose split leaves training, validation and test at least one item each."""
    rest = val_fraction + test_fraction
    for n in range(3, 100_000):
        train, held = _split_sizes(n, rest)
        val, test = _split_sizes(held, test_fraction / rest)
        if min(train, val, test) >= 1:
            return n
    raise SettingError("val_fraction and test_fraction leave no item for training")


def _try_stratified(idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified when every class can be represented on both sides, plain random otherwise."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(idx, test_size=fraction, random_state=seed, stratify=y)
    except ValueError:
        return train_test_split(idx, test_size=fraction, random_state=seed)


# ----- features ---------------------------------------------------------------------------------
def load_catalog_taxonomy(path: str | Path | None, format: str | None = None) -> Taxonomy | None:
    if path is None:
        return None
    try:
        from core.taxonomy.formats import load_taxonomy

        return load_taxonomy(path, format=format)
    except TaxonomyError as exc:
        raise DataError(str(exc)) from None
