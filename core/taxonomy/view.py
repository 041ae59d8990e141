"""What a tree chart can draw of a taxonomy: the nodes down to a chosen level, each sized by the leaf
categories under it, capped in node count so a 200,000-node taxonomy does not become a 25 MB chart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MAX_DRAWN = 4000  # a sunburst of a few thousand sectors stays quick to send and draw


def leaves_under(tax: object) -> np.ndarray:
    """Number of leaf categories under each node (1 for a leaf), summed bottom-up level by level."""
    counts = np.array([not tax.children(i) for i in range(len(tax))], dtype=np.int64)
    for d in range(tax.max_depth, 1, -1):
        nodes = np.flatnonzero(tax.depth == d)
        np.add.at(counts, tax.parent[nodes], counts[nodes])
    return counts


@dataclass
class TreeDrawing:
    """The rows to draw (id, name, parent, path, leaves) and what was left out, to say so on the page."""

    frame: pd.DataFrame
    levels: int
    requested: int
    total: int

    @property
    def cut(self) -> bool:
        return len(self.frame) < self.total

    def note(self) -> str:
        """One sentence on what is drawn, or '' when everything is."""
        if not self.cut:
            return ""
        if self.levels < self.requested:
            return (f"Showing {len(self.frame):,} of {self.total:,} categories: the top {self.levels} level(s) only, "
                    f"since {self.requested} levels would draw more than {MAX_DRAWN:,} segments. Click a segment to zoom "
                    "into it, or search a category below.")
        return (f"Showing {len(self.frame):,} of {self.total:,} categories (the top {self.levels} level(s)). "
                "Raise 'Levels shown' to see deeper.")


def drawable_tree(tax: object, levels: int, max_nodes: int = MAX_DRAWN) -> TreeDrawing:
    """Nodes down to depth `levels`, or fewer levels when that would exceed `max_nodes`; when even the
    top level is too wide, its `max_nodes` largest branches. Sizes are exact leaf counts (branchvalues
    'total'), so a branch cut off below still has its true size."""
    per_level = np.bincount(tax.depth, minlength=tax.max_depth + 1)[1:].cumsum()
    fits = [d + 1 for d, n in enumerate(per_level) if n <= max_nodes and d + 1 <= levels]
    shown_levels = fits[-1] if fits else 1
    sizes = leaves_under(tax)
    keep = np.flatnonzero(tax.depth <= shown_levels)
    if len(keep) > max_nodes:  # a flat taxonomy wider than the cap: its largest top-level categories
        keep = np.sort(keep[np.argsort(-sizes[keep], kind="stable")[:max_nodes]])
    frame = pd.DataFrame({
        "id": [tax.ids[i] for i in keep],
        "name": [tax.names[i] for i in keep],
        "parent": [tax.ids[p] if p >= 0 else "" for p in tax.parent[keep]],
        "path": [tax.path_str(int(i)) for i in keep],
        "leaves": sizes[keep],
    })
    return TreeDrawing(frame, shown_levels, levels, len(tax))
