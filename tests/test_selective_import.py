"""Guaranteed-accuracy metrics of imported predictions: fitted on a random half, measured on the other."""

import json
import math

import numpy as np
import pytest

from tests.test_cli_evaluate import run_cli, write

CLASSES = "B > d\nA > A1 > a\nA > A1 > b\nA > A2 > c\n"


def test_probability_matrix_gives_the_metrics_fitted_on_a_random_half(tmp_path, capsys):
    # every item is truly a; half the rows put .55 on a and .40 on b, the other half the reverse, so the
    # top-1 is right for half; P(A1) = .95 on every row: at the fitted threshold every answer is A1
    probs = np.tile([.025, .55, .40, .025], (200, 1))
    probs[1::2] = [.025, .40, .55, .025]
    np.save(tmp_path / "p.npy", probs)
    data = write(tmp_path, "p.csv", "y\n" + "A > A1 > a\n" * 200)
    code, out, err = run_cli(["--predictions", data, "--true-column", "y", "--probabilities", str(tmp_path / "p.npy"),
                              "--classes", write(tmp_path, "classes.txt", CLASSES), "--out", str(tmp_path / "runs"),
                              "--json"], capsys)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["top1"] == 0.5
    assert result["hacc@0.95"] == 1.0 and result["leaf_rate@0.95"] == 0.0
    assert result["coverage@0.95"] == pytest.approx(1 - math.log(2) / math.log(4))
    # risk 0.5 at coverage 1 falling to 0 at coverage 0.5 (A1 everywhere): one triangle of area 0.125
    assert result["hAURC"] == pytest.approx(0.125)
    (threshold,) = result["selective"]
    assert threshold["calibration_items"] == 100 and threshold["threshold"] == pytest.approx(0.95)
    assert "fitted on a random half of the items (100)" in out and "other half (100)" in out


def test_top_k_scores_only_say_what_cannot_be_computed(tmp_path, capsys):
    tax = write(tmp_path, "tax.txt", "A > A1 > a\nA > A1 > b\nB > d\n")
    data = write(tmp_path, "p.csv", "y,p,s\nA > A1 > a,A > A1 > a,0.9\nA > A1 > b,A > A1 > a,0.6\n")
    code, out, err = run_cli(["--predictions", data, "--true-column", "y", "--pred-columns", "p", "--score-columns", "s",
                              "--taxonomy", tax, "--out", str(tmp_path / "runs"), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert all(result[k] is None for k in ("hacc@0.95", "coverage@0.95", "leaf_rate@0.95", "hAURC"))
    assert "hAURC not computed: backing off up the tree needs every class's probability" in out
    assert "the top-1 answers and their scores leave the rest of each subtree unknown" in out
