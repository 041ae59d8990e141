"""Taxonomy files: decoding, format detection, and one reader per format catalogs come in
(paths, Google, CSV paths, id/parent tables, nested JSON, Best Buy), each reporting problems by line or id."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.taxonomy.tree import (
    MAX_DEPTH,
    PATH_SEP,
    PATH_SEPARATORS,
    NodeRecord,
    Problem,
    Taxonomy,
    TaxonomyError,
)

FORMATS = ("paths", "google", "csv", "idparent", "json", "bestbuy")
MAX_TAXONOMY_BYTES = 200 * 1024 * 1024
_GOOGLE_LINE = re.compile(r"^\s*(\d+)\s+-\s+(.+?)\s*$")


def read_text(source: str | Path | bytes, max_bytes: int = MAX_TAXONOMY_BYTES) -> str:
    """Decode a taxonomy file, refusing binary content and oversized files with a plain message."""
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.exists():
            raise TaxonomyError(f"file not found: {path}")
        if path.is_dir():
            raise TaxonomyError(f"{path} is a folder, not a taxonomy file")
        if path.stat().st_size > max_bytes:
            raise TaxonomyError(f"{path} is {path.stat().st_size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
        data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise TaxonomyError("this is a binary file, not a taxonomy (expected text: paths, CSV/TSV or JSON)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TaxonomyError(f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def detect_separator(lines: Iterable[str]) -> str | None:
    counts = Counter()
    for line in lines:
        for sep in PATH_SEPARATORS:
            if sep in line:
                counts[sep] += 1
    return counts.most_common(1)[0][0] if counts else None


def detect_format(text: str, filename: str = "") -> str:
    """Guess the format from the content (the file name only breaks ties)."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            data = parse_json(stripped)
        except json.JSONDecodeError as exc:
            raise TaxonomyError(f"the file looks like JSON but does not parse: {exc.msg} at line {exc.lineno}") from None
        if isinstance(data, list) and data and isinstance(data[0], dict) and "path" in data[0]:
            return "bestbuy"
        return "json"
    scalar = _json_scalar(stripped)
    if scalar is not None:
        raise TaxonomyError(f"the file holds a single JSON value ({scalar}), not a taxonomy; "
                            "if it really is a one-line path list, choose the format paths (--format paths)")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise TaxonomyError("the file holds no categories")
    if sum(bool(_GOOGLE_LINE.match(ln)) for ln in lines[:50]) >= 0.8 * min(len(lines), 50):
        return "google"
    header = lines[0]
    delim = "\t" if "\t" in header else ("," if "," in header or filename.lower().endswith(".csv") else None)
    if delim:
        cols = {c.strip().strip('"').lower() for c in header.split(delim)}
        if {"id", "parent_id"} <= cols or {"id", "parent"} <= cols:
            return "idparent"
        if cols & set(PATH_COLUMNS):
            return "csv"
        if _is_table(lines[:50], delim):
            raise TableNotTaxonomy([c.strip().strip('"') for c in header.split(delim)])
    return "paths"


PATH_COLUMNS = ("path", "category_path", "category", "categories")  # the columns a path table is read from


class TableNotTaxonomy(TaxonomyError):
    """A table with a header but no path column (a product table, say): which column holds the
    categories is the user's choice, so the file is not read as paths ('id,title,brand' as a branch)."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        super().__init__(f"this is a table with a header ({', '.join(columns[:8])}{', ...' if len(columns) > 8 else ''}), "
                         f"not a list of category paths: choose the column that holds each product's category path "
                         f"(or name it {' or '.join(PATH_COLUMNS)}); if it really is a list of paths, choose the format paths")


def _is_table(lines: Sequence[str], delim: str) -> bool:
    """Rows of two or more fields, as many on every line as in the header, and a header without a path
    separator (a path list's first line is a category, 'A > B')."""
    rows = list(csv.reader(lines, delimiter=delim))
    width = len(rows[0])
    return (width >= 2 and len(rows) >= 2 and all(len(r) == width for r in rows)
            and not any(sep in lines[0] for sep in PATH_SEPARATORS) and all(c.strip() for c in rows[0]))


def paths_from_table(source: str | Path | bytes, column: str) -> bytes:
    """The distinct non-empty values of one column of a table, one per line: a paths file the chosen
    column of a product table becomes."""
    header, rows = _read_table(read_text(source))
    key = column.strip().lower()
    if key not in header:
        raise TaxonomyError(f"the table has no column {column!r}; it has {', '.join(header)}")
    values = dict.fromkeys(v for r in rows if (v := (r.get(key) or "").strip()))
    if not values:
        raise TaxonomyError(f"the column {column!r} is empty on every row")
    return "\n".join(values).encode()


def parse_json(text: str) -> object:
    """json.loads, with nesting too deep for the parser as a TaxonomyError instead of a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise TaxonomyError("the JSON is nested too deeply to read (hundreds of levels); "
                            f"a taxonomy may be at most {MAX_DEPTH} levels deep") from None


def _json_scalar(text: str) -> str | None:
    """The text's JSON value when the whole text is one string, number, true/false or null (else None):
    such a file would otherwise load as a one-node path list."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return None if isinstance(value, list | dict) else json.dumps(value)[:60]


def load_taxonomy(source: str | Path | bytes, format: str | None = None, filename: str = "") -> Taxonomy:
    """Load any supported taxonomy file; `format` overrides detection (one of FORMATS)."""
    text = read_text(source)
    filename = filename or (str(source) if not isinstance(source, bytes) else "")
    fmt = format or detect_format(text, filename)
    if fmt not in FORMATS:
        raise TaxonomyError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    loader = {"paths": _load_paths, "google": _load_google, "csv": _load_csv_paths,
              "idparent": _load_idparent, "json": _load_nested_json, "bestbuy": _load_bestbuy}[fmt]
    try:
        return loader(text)
    except TaxonomyError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, csv.Error) as exc:
        raise TaxonomyError(f"the file does not read as format {fmt!r}: {exc}") from None


def split_paths(rows: Sequence[tuple[str, str]], problems: list[Problem]) -> list[tuple[list[str], str]]:
    """Split 'A > B > C' strings on the file's dominant separator, reporting lines that use another."""
    sep = detect_separator(text for text, _ in rows) or PATH_SEP
    out = []
    for text, where in rows:
        use = sep
        if sep not in text:
            other = detect_separator([text])
            if other:
                problems.append(Problem("warning", "mixed-separators", f"uses {other.strip()!r} where the file uses {sep.strip()!r}", where))
                use = other
        out.append((text.split(use), where))
    return out


def _load_paths(text: str) -> Taxonomy:
    problems: list[Problem] = []
    rows = [(ln.strip(), f"line {n}") for n, ln in enumerate(text.splitlines(), 1)
            if ln.strip() and not ln.lstrip().startswith("#")]
    return Taxonomy.from_paths(split_paths(rows, problems), problems, "paths")


def _load_google(text: str) -> Taxonomy:
    problems: list[Problem] = []
    rows, ids = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _GOOGLE_LINE.match(line)
        if not m:
            problems.append(Problem("warning", "bad-line", "not of the form 'ID - A > B'; skipped", f"line {n}"))
            continue
        ids.append(m.group(1))
        rows.append((m.group(2), f"line {n}"))
    return _with_given_ids(split_paths(rows, problems), ids, problems, "google")


def _with_given_ids(paths: list[tuple[list[str], str]], ids: list[str], problems: list[Problem], fmt: str) -> Taxonomy:
    seen: dict[str, str] = {}
    for node_id, (_, where) in zip(ids, paths, strict=True):
        if node_id in seen:
            problems.append(Problem("error", "duplicate-id", f"id {node_id!r} is used again (first at {seen[node_id]})", where))
        seen.setdefault(node_id, where)
    return Taxonomy.from_paths(paths, problems, fmt, ids=ids)


def _read_table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """(lower-cased header, rows); a table with a header but no rows is refused."""
    first = text.splitlines()[0] if text else ""
    delim = "\t" if "\t" in first else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delim)
    if reader.fieldnames is None:
        raise TaxonomyError("the table has no header row")
    reader.fieldnames = [f.strip().lower() for f in reader.fieldnames]
    rows = list(reader)
    if not rows:
        raise TaxonomyError(f"the table has a header ({', '.join(reader.fieldnames)}) but no categories below it")
    return reader.fieldnames, rows


def _load_csv_paths(text: str) -> Taxonomy:
    problems: list[Problem] = []
    header, rows = _read_table(text)
    col = next((c for c in PATH_COLUMNS if c in header), None)
    if col is None:
        raise TaxonomyError(f"a path table needs one of the columns {', '.join(PATH_COLUMNS)}; it has {', '.join(header)}")
    id_col = "id" if "id" in header else None
    paths = [((r.get(col) or "").strip(), f"line {n}") for n, r in enumerate(rows, 2)]
    split = split_paths(paths, problems)
    if id_col:
        return _with_given_ids(split, [(r[id_col] or "").strip() for r in rows], problems, "csv")
    return Taxonomy.from_paths(split, problems, "csv")


def _load_idparent(text: str) -> Taxonomy:
    header, rows = _read_table(text)
    pcol = "parent_id" if "parent_id" in header else "parent"
    missing = [c for c in ("id", pcol, "name") if c not in header]
    if missing:
        raise TaxonomyError(f"an id/parent table needs the columns id, parent_id (or parent) and name; missing: {', '.join(missing)}")
    records = [NodeRecord((r["id"] or "").strip(), (r["name"] or "").strip(), (r[pcol] or "").strip() or None, f"line {n}")
               for n, r in enumerate(rows, 2)]
    problems = [Problem("error", "empty-id", "a row has no id", r.where) for r in records if not r.id]
    return Taxonomy.from_records([r for r in records if r.id], problems, "idparent")


def _load_nested_json(text: str) -> Taxonomy:
    data = parse_json(text)
    if not isinstance(data, list | dict):
        raise TaxonomyError(f"nested JSON must be an object ({{name, children}}) or a list of them, not {json.dumps(data)[:60]}")
    top = data if isinstance(data, list) else data.get("children", [data]) if "name" not in data else [data]
    if not isinstance(top, list):
        raise TaxonomyError("'children' must be a list of {name, children} objects")
    records: list[NodeRecord] = []
    # an explicit stack, not recursion: the nesting depth is the file's choice
    stack: list[tuple[object, str | None, str]] = [(node, None, "") for node in reversed(top)]
    while stack:
        node, parent, trail = stack.pop()
        if not isinstance(node, dict) or "name" not in node:
            raise TaxonomyError(f"a JSON node without a 'name' under {trail or 'the top level'}")
        name = str(node["name"])
        node_id = str(node.get("id", f"{trail} > {name}" if trail else name))
        records.append(NodeRecord(node_id, name, parent, f"id {node_id}"))
        children = node.get("children", []) or []
        if not isinstance(children, list):
            raise TaxonomyError(f"'children' of {node_id!r} must be a list")
        here = f"{trail} > {name}" if trail else name
        stack.extend((child, node_id, here) for child in reversed(children))
    return Taxonomy.from_records(records, (), "json")


def _load_bestbuy(text: str) -> Taxonomy:
    """Rebuild the Best Buy tree from each entry's own `path`; report (not fail on) what disagrees."""
    entries = parse_json(text)
    if not isinstance(entries, list):
        raise TaxonomyError("the Best Buy layout is a JSON list of {id, name, path} entries")
    problems: list[Problem] = []
    records: dict[str, NodeRecord] = {}
    own = {str(e["id"]) for e in entries}
    for e in entries:
        path = e.get("path") or []
        if not path or str(path[-1].get("id")) != str(e["id"]):
            problems.append(Problem("warning", "bad-path", "its path does not end at itself", f"id {e['id']}"))
            path = list(path) + [{"id": e["id"], "name": e.get("name", "")}]
        parent = None
        for step in path:
            sid, name = str(step["id"]), str(step.get("name", ""))
            rec = records.get(sid)
            if rec is None:
                records[sid] = NodeRecord(sid, name, parent, f"id {sid}")
            elif rec.parent != parent and sid == str(e["id"]):
                problems.append(Problem("warning", "two-parents", f"placed under {rec.parent!r} elsewhere; its own path says {parent!r}, which wins", f"id {sid}"))
                rec.parent = parent
            parent = sid
    for sid in records:
        if sid not in own:
            problems.append(Problem("warning", "created-ancestor", f"ancestor {records[sid].name!r} has no entry of its own; it was created", f"id {sid}"))
    for e in entries:
        for child in e.get("subCategories") or []:
            cid = str(child["id"])
            if cid not in records:
                problems.append(Problem("warning", "unknown-child", f"lists sub-category {cid!r}, which appears nowhere else; ignored", f"id {e['id']}"))
            elif records[cid].parent != str(e["id"]):
                problems.append(Problem("warning", "child-mismatch", f"lists {cid!r} as a child, but that entry's path puts it under {records[cid].parent!r}", f"id {e['id']}"))
    return Taxonomy.from_records(records.values(), problems, "bestbuy")


def taxonomy_from_labels(labels: Iterable[str], sep: str | None = None) -> Taxonomy:
    """Derive a taxonomy from a product table's category-path column."""
    uniq = sorted({str(v).strip() for v in labels if str(v).strip() and str(v) != "nan"})
    if not uniq:
        raise TaxonomyError("the label column holds no category paths")
    sep = sep or detect_separator(uniq) or PATH_SEP
    return Taxonomy.from_paths(((u.split(sep), f"label {u!r}") for u in uniq), (), "products")
