"""What the Taxonomy page sends to the browser for its tree plot: figure JSON size, before (every
node, plotly's maxdepth hides the deep ones client-side) and after the cap (Taxonomy.plot_frame).

    .venv/bin/python bench/tree_plot.py          # Google taxonomy and a ~200,000-node synthetic one
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import plotly.express as px

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from synthetic_taxonomy import synthetic_paths  # noqa: E402

from core.taxonomy import load_taxonomy  # noqa: E402

GOOGLE = ROOT.parent / "shared" / "data" / "taxonomies" / "google-product-taxonomy-with-ids.en-US.txt"
MAX_DRAWN = 4000  # pages/taxonomy.py


def sunburst_bytes(frame, **extra) -> tuple[int, float]:
    start = time.perf_counter()
    fig = px.sunburst(frame, ids="id", names="name", parents="parent", values=extra.pop("values"), hover_data={"path": True}, **extra)
    return len(fig.to_json()), time.perf_counter() - start


def main() -> None:
    sources = {"synthetic 170,000 leaves": "\n".join(synthetic_paths(170_000)).encode()}
    if GOOGLE.exists():
        sources["Google product taxonomy"] = GOOGLE.read_bytes()
    rows = []
    for name, data in sources.items():
        tax = load_taxonomy(data)
        full = tax.to_frame().assign(one=lambda f: f.is_leaf.astype(int))
        before, t_before = sunburst_bytes(full, values="one", maxdepth=4)
        frame, info = tax.plot_frame(3, MAX_DRAWN)
        after, t_after = sunburst_bytes(frame, values="leaves", branchvalues="total")
        rows.append({"taxonomy": name, "nodes": len(tax), "before_mb": before / 1e6, "before_s": t_before,
                     "drawn_nodes": info["nodes"], "drawn_levels": info["levels"], "after_mb": after / 1e6, "after_s": t_after})
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "tree_plot.json").write_text(json.dumps(rows, indent=2))
    print("| taxonomy | nodes | before: figure (build) | after: segments drawn (levels) | after: figure (build) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['taxonomy']} | {r['nodes']:,} | {r['before_mb']:.1f} MB ({r['before_s']:.1f} s) | "
              f"{r['drawn_nodes']:,} ({r['drawn_levels']} of 3) | {r['after_mb']:.2f} MB ({r['after_s']:.2f} s) |")


if __name__ == "__main__":
    main()
