"""`python -m core evaluate`: another categorizer's predictions imported as a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli.main import main
from core.evaluation import schema
from tests.conftest import ROOT, app_test, shared_file

pytestmark = pytest.mark.slow  # every test loads the MiniLM encoder or starts a process

SMALL = "A > A1 > a\nA > A1 > b\nA > A2 > c\nB > d\n"


def depth_lca_distance(a: str, b: str) -> int:
    """METHOD.md's LCA height straight from two path strings: max depth minus the shared prefix."""
    pa, pb = a.split(" > "), b.split(" > ")
    common = 0
    while common < min(len(pa), len(pb)) and pa[common] == pb[common]:
        common += 1
    return max(len(pa), len(pb)) - common


def other_categorizer(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """Not Taxolens: TF-IDF + logistic regression on fashion-small titles, top-5 with probabilities."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    styles = pd.read_csv(shared_file("fashion-small/styles.csv"), dtype=str, keep_default_na=False)
    styles["path"] = styles[["masterCategory", "subCategory", "articleType"]].agg(" > ".join, axis=1)
    train, test = styles.iloc[:1400], styles.iloc[1400:]
    vec = TfidfVectorizer(min_df=1).fit(train["productDisplayName"])
    model = LogisticRegression(max_iter=300).fit(vec.transform(train["productDisplayName"]), train["path"])
    probs = model.predict_proba(vec.transform(test["productDisplayName"]))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    out = pd.DataFrame({"sku": test["id"].to_numpy(), "gold": test["path"].to_numpy(),
                        "title": test["productDisplayName"].to_numpy()})
    for r in range(5):
        out[f"guess{r + 1}"] = model.classes_[top[:, r]]
        out[f"conf{r + 1}"] = probs[np.arange(len(test)), top[:, r]]
    path = tmp_path / "other.tsv"
    out.to_csv(path, sep="\t", index=False)
    return path, out


def test_real_catalog_top5_import_matches_metrics_from_the_paths(tmp_path):
    path, table = other_categorizer(tmp_path)
    runs = tmp_path / "runs"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "core", "evaluate", "--predictions", str(path), "--true-column", "gold",
                           "--pred-columns", *[f"guess{r}" for r in range(1, 6)],
                           "--score-columns", *[f"conf{r}" for r in range(1, 6)],
                           "--id-column", "sku", "--text-column", "title", "--encoder", "minilm", "--name", "tfidf-lr",
                           "--out", str(runs), "--json", "--quiet"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    dist = np.array([[depth_lca_distance(g, t) for g in row] for row, t in
                     zip(table[[f"guess{r}" for r in range(1, 6)]].to_numpy(), table["gold"], strict=True)])
    correct = table["guess1"] == table["gold"]
    expected = {"top1": correct.mean(), "top5": (table[[f"guess{r}" for r in range(1, 6)]].to_numpy() == table[["gold"]].to_numpy()).any(1).mean(),
                "mistake_severity": dist[~correct.to_numpy(), 0].mean(), "hdist@5": dist.mean()}
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-3), key
    assert result["ece"] is not None and result["semsim@5"] is not None
    run_dir = Path(result["run_dir"])
    assert json.loads((run_dir / "config.json").read_text())["kind"] == "imported"
    frame = schema.read(run_dir / "predictions.parquet")
    assert len(frame) == len(table) and set(frame["triage"]) <= {"correct", "too general", "too specific", "sibling",
                                                                   "same branch", "cross-department"}
    assert (frame["triage"] == "correct").sum() == correct.sum()
    assert "label_issue" not in frame  # scores of 5 answers are not a full probability matrix


    before, os.environ["TAXOLENS_RUNS"] = os.environ["TAXOLENS_RUNS"], str(runs)
    try:
        at = app_test("errors", 60).run()
    finally:
        os.environ["TAXOLENS_RUNS"] = before
    assert not at.exception
    assert any("mistakes of" in s.value for s in at.subheader)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["evaluate", *args, "--encoder", "minilm", "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_top1_only_labels_as_ids_and_unknown_labels(tmp_path, capsys):
    tax = write(tmp_path, "tax.txt", "1 - A\n2 - A > A1\n3 - A > A1 > a\n4 - A > A1 > b\n5 - A > A2\n6 - A > A2 > c\n7 - B\n8 - B > d\n")
    data = write(tmp_path, "p.csv", "y,p\n3,3\n4,3\n8,6\n6,6\n99,3\n3,\n")
    runs = tmp_path / "runs"
    code, out, err = run_cli(["--predictions", data, "--true-column", "y", "--pred-columns", "p", "--taxonomy", tax,
                              "--out", str(runs), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["top1"] == 0.5 and result["mistake_severity"] == 2.0  # b->a: 1, d->c: 3
    for key in ("top5", "hdist@5", "semsim@5", "neighbor_hits@5", "ece"):
        assert result[key] is None
    assert "top5              n/a" in out and "ece               n/a" in out
    assert "dropped 1: true label not in the taxonomy" in out and "dropped 1: no prediction" in out
    frame = schema.read(next(runs.iterdir()) / "predictions.parquet")
    assert frame["true_label"].tolist() == ["A > A1 > a", "A > A1 > b", "B > d", "A > A2 > c"]
    assert frame["triage"].tolist() == ["correct", "sibling", "cross-department", "correct"]


def test_probability_matrix_gives_label_issues_and_crm(tmp_path, capsys):
    classes = write(tmp_path, "classes.txt", "B > d\nA > A1 > a\nA > A1 > b\nA > A2 > c\n")
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, size=40)
    probs = np.full((40, 4), 0.005)  # a planted label gets 0.5%: under the label-error quality bound
    probs[np.arange(40), true] = 0.985
    given = true.copy()
    given[[3, 17]] = (true[[3, 17]] + 1) % 4  # two planted label errors
    names = open(classes).read().split("\n")[:4]
    data = write(tmp_path, "p.csv", "y\n" + "\n".join(names[g] for g in given) + "\n")
    np.save(tmp_path / "p.npy", probs)
    code, out, err = run_cli(["--predictions", data, "--true-column", "y", "--probabilities", str(tmp_path / "p.npy"),
                              "--classes", classes, "--out", str(tmp_path / "runs"), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["top1"] == pytest.approx(38 / 40) and result["crm"]["top1"] is not None
    frame = schema.read(next((tmp_path / "runs").iterdir()) / "predictions.parquet")
    assert frame.index[frame["label_issue"]].tolist() == [3, 17]
    assert frame["id"].tolist()[:2] == ["0", "1"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--classes-lines", "3"], "has 4 columns but the class list names 3 classes"),
    (["--rows", "5"], "has 5 rows but the predictions file has 4"),
])
def test_a_class_list_or_rows_that_do_not_match_the_matrix(tmp_path, capsys, extra, message):
    n_classes = int(extra[1]) if extra[0] == "--classes-lines" else 4
    rows = int(extra[1]) if extra[0] == "--rows" else 4
    classes = write(tmp_path, "c.txt", "\n".join(SMALL.split("\n")[:n_classes]) + "\n")
    np.save(tmp_path / "p.npy", np.full((rows, 4), 0.25))
    data = write(tmp_path, "p.csv", "y\n" + "A > A1 > a\n" * 4)
    runs = tmp_path / "runs"
    code, out, err = run_cli(["--predictions", data, "--true-column", "y", "--probabilities", str(tmp_path / "p.npy"),
                              "--classes", classes, "--out", str(runs)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not runs.exists()


def test_nothing_usable_exits_2_and_leaves_the_store_alone(tmp_path, capsys):
    tax = write(tmp_path, "tax.txt", SMALL)
    data = write(tmp_path, "p.jsonl", '{"y": "Q > r", "p": "A > A1 > a"}\n{"y": "Q > s", "p": "B > d"}\n')
    runs = tmp_path / "runs"
    code, out, err = run_cli(["--predictions", data, "--true-column", "y", "--pred-columns", "p", "--taxonomy", tax,
                              "--out", str(runs)], capsys)
    assert code == 2 and "no usable rows" in err and "true label not in the taxonomy" in err
    assert not runs.exists()
    code, _, err = run_cli(["--predictions", data, "--true-column", "gold", "--pred-columns", "p", "--out", str(runs)], capsys)
    assert code == 2 and "'gold'" in err and "available columns: y, p" in err
