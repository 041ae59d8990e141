"""A deterministic synthetic taxonomy with a chosen number of leaves, irregular like a real one:
20 departments, uneven fan-out, leaves at depths 3 to 5.

    .venv/bin/python bench/synthetic_taxonomy.py 20000 > /tmp/synthetic.txt
"""

from __future__ import annotations

import random
import sys

SEP = " > "  # declared-once: ok (the text format written, one the taxonomy reader detects; no core import here)


def synthetic_paths(n_leaves: int, seed: int = 0) -> list[str]:
    """Leaf paths only (ancestors are implied, as in many exported taxonomies)."""
    rng = random.Random(seed)
    paths: list[str] = []
    dept = 0
    while len(paths) < n_leaves:
        d = f"Department {dept}"
        for c in range(rng.randint(6, 14)):
            category = f"{d}{SEP}Category {dept}.{c}"
            for s in range(rng.randint(4, 12)):
                sub = f"{category}{SEP}Group {dept}.{c}.{s}"
                if rng.random() < 0.3:
                    paths.append(sub)  # a shallow leaf at depth 3
                    continue
                for leaf in range(rng.randint(3, 15)):
                    node = f"{sub}{SEP}Item {dept}.{c}.{s}.{leaf}"
                    if rng.random() < 0.15:
                        paths.extend(f"{node}{SEP}Variant {v}" for v in range(rng.randint(2, 4)))
                    else:
                        paths.append(node)
        dept += 1
    return paths[:n_leaves]


if __name__ == "__main__":
    print("\n".join(synthetic_paths(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)))
