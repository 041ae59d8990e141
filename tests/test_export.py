"""Every CSV the product writes is formula-safe: category names and titles come from users' files."""

import csv
import io

import numpy as np
import pandas as pd

from core.data.export import write_csv
from core.labels.targets import build_targets, targets_frame
from core.taxonomy.formats import load_taxonomy
from tests.conftest import shared_file

FORMULA = ("=", "+", "-", "@", "\t", "\r")
EVIL = '=HYPERLINK("http://evil.example","x")'


def cells(data: bytes) -> list[str]:
    return [c for row in csv.reader(io.StringIO(data.decode())) for c in row]


def test_a_formula_category_is_neutralised_in_the_smoothing_export(tmp_path):
    tax = load_taxonomy(f"Shoes > Boots\n{EVIL}\n@SUM(A1)\n".encode())
    classes = np.array(tax.leaves)
    frame = targets_frame(build_targets("tree", distance=tax.distance_matrix(classes), beta=1.0),
                          [tax.path_str(int(c)) for c in classes])
    raw = frame.to_csv(index=False).encode()
    assert any(c.startswith(FORMULA) for c in cells(raw))  # what the page used to write
    data = write_csv(frame)
    assert not any(c.startswith(FORMULA) for c in cells(data))
    assert f"'{EVIL}" in cells(data) and "'@SUM(A1)" in cells(data)
    write_csv(frame, tmp_path / "t.csv")  # to a path: the same bytes
    assert (tmp_path / "t.csv").read_bytes() == data
    buffer = io.BytesIO()
    write_csv(frame, buffer)
    assert buffer.getvalue() == data


def test_google_taxonomy_export_round_trips_formula_safe():
    tax = load_taxonomy(shared_file("taxonomies/google-product-taxonomy-with-ids.en-US.txt"))
    classes = np.array(tax.leaves)
    paths = [tax.path_str(int(c)) for c in classes] + [EVIL]
    targets = build_targets("knn-uniform", similarity=np.eye(len(paths), dtype=np.float32) + 0.01, alpha=0.1, k=2)
    frame = targets_frame(targets, paths)
    data = write_csv(frame)
    back = pd.read_csv(io.BytesIO(data), keep_default_na=False)
    assert len(back) == len(frame) == 3 * len(paths)
    assert not any(c.startswith(FORMULA) for c in back.true_class.tolist() + back.target_class.tolist())
    assert (back.true_class == "'" + EVIL).sum() == 3  # the evil row, and nothing else changed
    assert back.true_class[back.true_class != "'" + EVIL].tolist() == frame.true_class[frame.true_class != EVIL].tolist()
