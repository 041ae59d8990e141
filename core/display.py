"""Text as people read it in the app: user-derived text that must not be read as markdown, and short,
unique category names for chart axes (full paths are too wide)."""

from __future__ import annotations

import re
from collections.abc import Sequence

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def plain(text: object) -> str:
    """`text` with every markdown and HTML special character backslash-escaped, so st.error/st.info show
    it literally: an id like `![t](http://host/t.png)` must not make the browser fetch an image."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")


def short_labels(paths: Sequence[str], sep: str = " > ") -> list[str]:
    """The last segment of each path, with parent segments added (innermost first, as 'Boots (Ski)')
    only where that name repeats, so every label stays unique on a chart axis."""
    parts = [p.split(sep) for p in paths]
    depth = [1] * len(parts)
    while True:
        labels = [sep.join(seg[-d:]) for seg, d in zip(parts, depth, strict=True)]
        seen: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            seen.setdefault(label, []).append(i)
        clashes = [i for group in seen.values() if len(group) > 1 for i in group if depth[i] < len(parts[i])]
        if not clashes:
            break
        for i in clashes:
            depth[i] += 1
    return [seg[-1] if d == 1 else f"{seg[-1]} ({' > '.join(seg[-d:-1])})" for seg, d in zip(parts, depth, strict=True)]
