"""The semantic distance of CRM's answer (core/evaluation/crm.py): read from the ranked similarities."""

from __future__ import annotations

import math

import pandas as pd

from core.evaluation.crm import answer_semantic_distance


def test_the_reranked_answers_semantic_distance_comes_from_its_rank():
    frame = pd.DataFrame({"pred_1": ["a", "a", "a"], "pred_2": ["b", "c", "b"], "sim_1": [0.9, 0.8, 0.7],
                          "sim_2": [0.6, 0.5, 0.4], "crm_pred_1": ["a", "c", "z"]})
    got = answer_semantic_distance(frame)
    assert math.isclose(got[0], 0.1) and math.isclose(got[1], 0.5) and math.isnan(got[2])
