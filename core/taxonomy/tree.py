"""Taxonomies: a rooted forest of (id, name, parent) nodes, validation that names the offending
line or id, and vectorised tree distances (METHOD.md: d(i, j) = max(depth i, depth j) - depth(lca)).
Reading the file formats catalogs come in is core/taxonomy/formats.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from core.errors import TaxolensError

PATH_SEP = " > "  # how Taxolens writes a path: tables, run files, pages
PATH_SEPARATORS = (" >> ", PATH_SEP, " / ")  # what a path may be written with, tried in this order
MAX_DEPTH = 255  # tree distances are stored as uint8
DENSE_DISTANCE_LIMIT = 12_000  # classes; beyond this distances are computed per pair, not stored C x C


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


class TaxonomyError(TaxolensError, ValueError):
    """Raised when a taxonomy cannot be used; carries every fatal problem at once."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("error", "unreadable", problems)]
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"The taxonomy cannot be loaded:\n{shown}{more}")


@dataclass
class NodeRecord:
    """One node as a format reader finds it, before the tree is validated and built."""

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
        return self._path_index.get(PATH_SEP.join(split_path(label)).casefold())

    def search(self, query: str, limit: int = 50) -> list[int]:
        """Nodes whose name contains `query`, or, when `query` is a path ("shoes > bo", any supported
        separator), whose path contains it; case-insensitive, shallowest first."""
        parts = split_path(query.casefold())
        if not parts[0]:
            return []
        if len(parts) > 1:
            q = PATH_SEP.join(parts)
            hits = [i for i in range(len(self)) if q in self.path_str(i).casefold()]
        else:
            hits = [i for i in range(len(self)) if parts[0] in self.names[i].casefold()]
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
    def from_records(cls, records: Iterable[NodeRecord], problems: Sequence[Problem] = (),
                     source_format: str = "") -> Taxonomy:
        """Validate (id, name, parent) records and build the tree; fatal problems raise TaxonomyError."""
        problems = list(problems)
        nodes: dict[str, NodeRecord] = {}
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
        records: dict[tuple[str, ...], NodeRecord] = {}
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
                    records[prefix] = NodeRecord(PATH_SEP.join(prefix), prefix[-1],
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


def _find_cycles(nodes: dict[str, NodeRecord]) -> list[Problem]:
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


def split_path(label: str) -> list[str]:
    """A path written with any supported separator as its stripped parts ("A >> B" -> ["A", "B"])."""
    sep = next((s for s in PATH_SEPARATORS if s in label), None)
    return [part.strip() for part in label.split(sep)] if sep else [label.strip()]


def top_level(path: str) -> str:
    """The top-level category of a path as Taxolens writes it (`Taxonomy.path_str`)."""
    return str(path).split(PATH_SEP)[0]


def leaf_name(path: str) -> str:
    """The last segment of a path as Taxolens writes it (the category's own name)."""
    return str(path).split(PATH_SEP)[-1]
