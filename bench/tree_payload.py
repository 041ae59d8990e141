"""What the Taxonomy page sends for its tree chart: every node (before) against `drawable_tree`'s capped
levels (after), for the sample, the Google taxonomy and a 200,000-node synthetic one.

    .venv/bin/python bench/tree_payload.py      # needs ../shared/data for the Google row
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import plotly.express as px
from synthetic_taxonomy import synthetic_paths

from core.taxonomy.formats import load_taxonomy
from core.taxonomy.view import drawable_tree

ROOT = Path(__file__).resolve().parents[1]


def sizes(tax, levels: int = 3) -> dict:
    frame = tax.to_frame()
    before = px.sunburst(frame.assign(one=frame.is_leaf.astype(int)), ids="id", names="name", parents="parent", values="one",
                         maxdepth=levels + 1, hover_data={"path": True, "one": False}).to_json()
    start = time.perf_counter()
    drawing = drawable_tree(tax, levels)
    after = px.sunburst(drawing.frame, ids="id", names="name", parents="parent", values="leaves", branchvalues="total",
                        hover_data={"path": True, "leaves": False}).to_json()
    return {"nodes": len(tax), "before_mb": len(before) / 1e6, "after_mb": len(after) / 1e6, "drawn": len(drawing.frame),
            "levels": drawing.levels, "plan_and_figure_s": time.perf_counter() - start}


if __name__ == "__main__":
    cases = {"sample": ROOT / "sample_data" / "taxonomy.txt",
             "google": ROOT.parent / "shared" / "data" / "taxonomies" / "google-product-taxonomy-with-ids.en-US.txt"}
    out = {name: sizes(load_taxonomy(path.read_bytes())) for name, path in cases.items() if path.exists()}
    out["synthetic-200k"] = sizes(load_taxonomy("\n".join(synthetic_paths(170_000)).encode()))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "tree_payload.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
