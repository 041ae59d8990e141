"""Taxonomies: a rooted forest of (id, name, parent) nodes, loaders for the formats catalogs
come in, validation that names the offending line or id, and vectorised tree distances
(METHOD.md: d(i, j) = max(depth i, depth j) - depth(lca))."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

PATH_SEP = " > "  # how a category path is written everywhere (labels, run files, exports, pages)
PATH_SEPARATORS = (" >> ", PATH_SEP, " / ")
FORMATS = ("paths", "google", "csv", "idparent", "json", "bestbuy")
MAX_TAXONOMY_BYTES = 200 * 1024 * 1024
MAX_DEPTH = 255  # tree distances are stored as uint8
_GOOGLE_LINE = re.compile(r"^\s*(\d+)\s+-\s+(.+?)\s*$")


@dataclass(frozen=True)
class Problem:
    """One validation finding. `where` is a line number or a node id, for the user to look up."""

    severity: Literal["error", "warning"]
    code: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        loc = f" ({self.where})" if self.where else ""
        return f"{self.severity}: {self.message}{loc}"

    def to_dict(self) -> dict:
        return {"severity": self.severity, "code": self.code, "message": self.message, "where": self.where}


class TaxonomyError(ValueError):
    """Raised when a taxonomy cannot be used; carries every fatal problem at once."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("error", "unreadable", problems)]
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"The taxonomy cannot be loaded:\n{shown}{more}")


@dataclass
class _Record:
    id: str
    name: str
    parent: str | None
    where: str


class Taxonomy:
    """Nodes indexed 0..n-1; `parent[i] == -1` marks a top-level node (depth 1)."""

    def __init__(self, ids: Sequence[str], names: Sequence[str], parent: Sequence[int],
                 problems: Sequence[Problem] = (), source_format: str = "") -> None:
        self.ids = list(ids)
        self.names = list(names)
        self.parent = np.asarray(parent, dtype=np.int64)
        self.problems = list(problems)
        self.source_format = source_format
        self.index = {node_id: i for i, node_id in enumerate(self.ids)}
        self._children: list[list[int]] = [[] for _ in self.ids]
        for i, p in enumerate(self.parent):
            if p >= 0:
                self._children[p].append(i)
        self.depth = self._compute_depths()
        self._path_index: dict[str, int] | None = None

    # ----- structure -------------------------------------------------------------------------
    def _compute_depths(self) -> np.ndarray:
        depth = np.zeros(len(self.ids), dtype=np.int64)
        stack = [(r, 1) for r in self.roots]
        while stack:
            node, d = stack.pop()
            depth[node] = d
            stack.extend((c, d + 1) for c in self._children[node])
        return depth

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def roots(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.parent < 0)]

    @property
    def leaves(self) -> list[int]:
        return [i for i, ch in enumerate(self._children) if not ch]

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if len(self) else 0

    def children(self, i: int) -> list[int]:
        return list(self._children[i])

    def ancestors(self, i: int, include_self: bool = False) -> list[int]:
        """Ancestors from the top level down (virtual root excluded)."""
        chain = [i] if include_self else []
        p = int(self.parent[i])
        while p >= 0:
            chain.append(p)
            p = int(self.parent[p])
        return chain[::-1]

    def path(self, i: int) -> list[str]:
        return [self.names[a] for a in self.ancestors(i, include_self=True)]

    def path_str(self, i: int, sep: str = PATH_SEP) -> str:
        return sep.join(self.path(i))

    def ancestor_at_depth(self, classes: Sequence[int], depth: int) -> np.ndarray:
        """Ancestor of each class at `depth` (the class itself when shallower)."""
        table = self.ancestor_table(classes)
        col = table[:, min(depth, table.shape[1]) - 1]
        return np.where(col >= 0, col, np.asarray(classes))

    def ancestor_table(self, classes: Sequence[int] | None = None) -> np.ndarray:
        """(C, max_depth) array: column d holds the ancestor at depth d+1, or -1 below the node's depth."""
        classes = np.arange(len(self)) if classes is None else np.asarray(classes, dtype=np.int64)
        width = max(int(self.depth[classes].max()) if len(classes) else 0, 1)
        table = np.full((len(classes), width), -1, dtype=np.int64)
        node = classes.copy()
        depth = self.depth[classes].copy()
        while (active := node >= 0).any():
            rows = np.flatnonzero(active)
            table[rows, depth[rows] - 1] = node[rows]
            node[rows] = self.parent[node[rows]]
            depth[rows] -= 1
        return table

    def ancestor_sets(self, classes: Sequence[int]) -> list[set[str]]:
        """Per class: the ids of itself and its ancestors (virtual root excluded), for hierarchical F1."""
        return [{self.ids[a] for a in self.ancestors(int(c), include_self=True)} for c in classes]

    # ----- distances -------------------------------------------------------------------------
    def lca_depth(self, a: Sequence[int], b: Sequence[int], classes: Sequence[int] | None = None) -> np.ndarray:
        """Depth of the deepest common ancestor for each pair (a[n], b[n]); 0 is the virtual root.
        With `classes`, a and b index into that class list instead of the node list."""
        nodes = np.arange(len(self)) if classes is None else np.asarray(classes)
        table = self.ancestor_table(nodes)
        ta, tb = table[np.asarray(a)], table[np.asarray(b)]
        return ((ta == tb) & (ta >= 0)).sum(axis=1)

    def distance(self, a: Sequence[int], b: Sequence[int], classes: Sequence[int] | None = None,
                 metric: Literal["lca", "path"] = "lca") -> np.ndarray:
        """Pairwise tree distance for aligned index arrays (see METHOD.md)."""
        nodes = np.arange(len(self)) if classes is None else np.asarray(classes)
        a, b = np.asarray(a), np.asarray(b)
        da, db = self.depth[nodes[a]], self.depth[nodes[b]]
        lca = self.lca_depth(a, b, classes=nodes)
        return _distance_from_lca(da, db, lca, metric)

    def distance_matrix(self, classes: Sequence[int] | None = None, metric: Literal["lca", "path"] = "lca",
                        block: int = 2048) -> np.ndarray:
        """Dense (C, C) uint8 distances over a class set, built in row blocks (20,000 classes: 400 MB)."""
        nodes = np.arange(len(self)) if classes is None else np.asarray(classes, dtype=np.int64)
        table = self.ancestor_table(nodes)
        depth = self.depth[nodes]
        out = np.empty((len(nodes), len(nodes)), dtype=np.uint8)
        for start in range(0, len(nodes), block):
            rows = table[start:start + block]
            lca = np.zeros((len(rows), len(nodes)), dtype=np.int16)
            for d in range(table.shape[1]):
                col = rows[:, d]
                lca += (col[:, None] == table[None, :, d]) & (col[:, None] >= 0)
            dist = _distance_from_lca(depth[start:start + block, None], depth[None, :], lca, metric)
            out[start:start + block] = dist
        return out

    # ----- lookup ----------------------------------------------------------------------------
    def resolve(self, label: str) -> int | None:
        """Node index for a label given as an id, a path in any supported separator, or a unique name."""
        label = str(label).strip()
        if label in self.index:
            return self.index[label]
        if self._path_index is None:
            self._path_index = {self.path_str(i).casefold(): i for i in range(len(self))}
            unique_names = Counter(n.casefold() for n in self.names)
            for i, n in enumerate(self.names):
                if unique_names[n.casefold()] == 1:
                    self._path_index.setdefault(n.casefold(), i)
        sep = detect_separator([label]) or PATH_SEP
        key = PATH_SEP.join(part.strip() for part in label.split(sep)).casefold()
        return self._path_index.get(key)

    def search(self, query: str, limit: int = 50) -> list[int]:
        """Nodes whose name or path contains `query` (case-insensitive), shallowest first."""
        q = query.casefold().strip()
        if not q:
            return []
        hits = [i for i in range(len(self)) if q in self.names[i].casefold()]
        hits.sort(key=lambda i: (self.depth[i], self.names[i]))
        return hits[:limit]

    def summary(self) -> dict:
        fanout = [len(c) for c in self._children if c]
        return {
            "nodes": len(self),
            "leaves": len(self.leaves),
            "roots": len(self.roots),
            "max_depth": self.max_depth,
            "depth_counts": {int(d): int(n) for d, n in zip(*np.unique(self.depth, return_counts=True), strict=True)},
            "mean_fanout": float(np.mean(fanout)) if fanout else 0.0,
            "max_fanout": int(max(fanout)) if fanout else 0,
            "format": self.source_format,
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per node: id, name, parent id, depth, path (what the tree plots and exports need)."""

        return pd.DataFrame({
            "id": self.ids,
            "name": self.names,
            "parent": [self.ids[p] if p >= 0 else "" for p in self.parent],
            "depth": self.depth,
            "path": [self.path_str(i) for i in range(len(self))],
            "is_leaf": [not c for c in self._children],
        })

    # ----- construction ----------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[_Record], problems: Sequence[Problem] = (),
                     source_format: str = "") -> Taxonomy:
        """Validate (id, name, parent) records and build the tree; fatal problems raise TaxonomyError."""
        problems = list(problems)
        nodes: dict[str, _Record] = {}
        for rec in records:
            if not rec.name.strip():
                problems.append(Problem("warning", "empty-name", f"node {rec.id!r} has an empty name; its id is shown instead", rec.where))
                rec.name = rec.id
            if rec.id in nodes:
                first = nodes[rec.id]
                if first.parent != rec.parent:
                    problems.append(Problem("error", "two-parents",
                                            f"node {rec.id!r} is given two parents: {first.parent!r} ({first.where}) and {rec.parent!r}", rec.where))
                else:
                    problems.append(Problem("warning", "duplicate-id", f"node {rec.id!r} is listed twice; the repeat is ignored", rec.where))
                continue
            nodes[rec.id] = rec
        for rec in nodes.values():
            if rec.parent is not None and rec.parent not in nodes:
                problems.append(Problem("warning", "unknown-parent",
                                        f"node {rec.id!r} names parent {rec.parent!r}, which does not exist; it is placed at the top level", rec.where))
                rec.parent = None
        problems.extend(_find_cycles(nodes))
        if not nodes:
            problems.append(Problem("error", "empty", "no categories were found"))
        fatal = [p for p in problems if p.severity == "error"]
        if fatal:
            raise TaxonomyError(fatal)
        ids = list(nodes)
        index = {node_id: i for i, node_id in enumerate(ids)}
        parent = [index[r.parent] if r.parent is not None else -1 for r in nodes.values()]
        tax = cls(ids, [r.name for r in nodes.values()], parent, problems, source_format)
        if tax.max_depth > MAX_DEPTH:
            deepest = tax.names[int(np.argmax(tax.depth))]
            raise TaxonomyError([Problem("error", "too-deep",
                                         f"the tree is {tax.max_depth} levels deep (down to {deepest!r}); the limit is {MAX_DEPTH}")])
        return tax

    @classmethod
    def from_paths(cls, paths: Iterable[tuple[Sequence[str], str]], problems: Sequence[Problem] = (),
                   source_format: str = "paths", ids: Sequence[str | None] | None = None) -> Taxonomy:
        """Build from (path segments, where) pairs; each node's id is its ' > '-joined path unless `ids` gives one.
        Ancestors named only inside a path are created and reported."""
        problems = list(problems)
        records: dict[tuple[str, ...], _Record] = {}
        explicit: set[tuple[str, ...]] = set()
        id_list = list(ids) if ids is not None else None
        for n, (segments, where) in enumerate(paths):
            parts = tuple(s.strip() for s in segments)
            if any(not s for s in parts):
                problems.append(Problem("warning", "empty-name", "a path has an empty segment; it is skipped", where))
                parts = tuple(s for s in parts if s)
            if not parts:
                continue
            given_id = id_list[n] if id_list is not None else None
            if parts in explicit:
                problems.append(Problem("warning", "duplicate-id", f"path {PATH_SEP.join(parts)!r} is listed twice; the repeat is ignored", where))
                continue
            explicit.add(parts)
            for depth in range(1, len(parts) + 1):
                prefix = parts[:depth]
                if prefix not in records:
                    records[prefix] = _Record(PATH_SEP.join(prefix), prefix[-1],
                                              records[prefix[:-1]].id if depth > 1 else None, where)
            if given_id is not None:
                records[parts].id = str(given_id)
        for prefix, rec in records.items():
            if len(prefix) > 1:
                rec.parent = records[prefix[:-1]].id
        if source_format != "products":  # product labels name leaves only; their ancestors are expected
            problems.extend(Problem("warning", "created-ancestor", f"ancestor {r.id!r} has no line of its own; it was created",
                                    r.where) for p, r in records.items() if p not in explicit)
        return cls.from_records(records.values(), problems, source_format)


def _distance_from_lca(da: np.ndarray, db: np.ndarray, lca: np.ndarray, metric: str) -> np.ndarray:
    if metric == "lca":
        return np.maximum(da, db) - lca
    if metric == "path":
        return da + db - 2 * lca
    raise ValueError(f"metric must be 'lca' or 'path', not {metric!r}")


def _find_cycles(nodes: dict[str, _Record]) -> list[Problem]:
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = known to reach the top level
    problems = []
    for start in nodes:
        walk = []
        node: str | None = start
        while node is not None and state.get(node) is None:
            state[node] = 1
            walk.append(node)
            node = nodes[node].parent
        if node is not None and state[node] == 1:
            cycle = walk[walk.index(node):]
            problems.append(Problem("error", "cycle", "cycle: " + " -> ".join(cycle + [node]), nodes[node].where))
        for w in walk:
            state[w] = 2
    return problems


# ----- loading ---------------------------------------------------------------------------------
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
        if cols & {"path", "category_path", "category", "categories"}:
            return "csv"
    return "paths"


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
    names = ("path", "category_path", "category", "categories")
    col = next((c for c in names if c in header), None)
    if col is None:
        raise TaxonomyError(f"a path table needs one of the columns {', '.join(names)}; it has {', '.join(header)}")
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
    records = [_Record((r["id"] or "").strip(), (r["name"] or "").strip(), (r[pcol] or "").strip() or None, f"line {n}")
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
    records: list[_Record] = []
    # an explicit stack, not recursion: the nesting depth is the file's choice
    stack: list[tuple[object, str | None, str]] = [(node, None, "") for node in reversed(top)]
    while stack:
        node, parent, trail = stack.pop()
        if not isinstance(node, dict) or "name" not in node:
            raise TaxonomyError(f"a JSON node without a 'name' under {trail or 'the top level'}")
        name = str(node["name"])
        node_id = str(node.get("id", f"{trail} > {name}" if trail else name))
        records.append(_Record(node_id, name, parent, f"id {node_id}"))
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
    records: dict[str, _Record] = {}
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
                records[sid] = _Record(sid, name, parent, f"id {sid}")
            elif rec.parent != parent and sid == str(e["id"]):
                problems.append(Problem("warning", "two-parents", f"placed under {rec.parent!r} elsewhere; its own path says {parent!r}, which wins", f"id {sid}"))
                rec.parent = parent
            parent = sid
    for sid in records:
        if sid not in own:
            problems.append(Problem("warning", "created-ancestor", f"ancestor {records[sid].name!r} has no entry of its own; it was created", f"id {sid}"))
    by_parent = defaultdict(set)
    for rec in records.values():
        by_parent[rec.parent].add(rec.id)
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
