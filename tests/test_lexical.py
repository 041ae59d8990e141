"""The lexical text modality: hand-worked n-grams and buckets, hashing that is the same in every process,
the EmbeddingBag's weighted mean, a lexical-only run that trains and predicts without any encoder library."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import torch
from sklearn.utils import murmurhash3_32

from core.data.lexical import LexicalFeatures, LexicalSpec, encode, lexical_features, ngrams
from core.runs import store as runs
from core.training.model import FusionClassifier
from tests.conftest import ROOT, SAMPLE_PRODUCTS, SAMPLE_TAXONOMY

SPEC = LexicalSpec(buckets=2**20, dim=8)
TITLE = "Nike 5kg"
# by hand: lower-cased words and word bigrams, then each word padded with spaces, n = 3..5
WORDS = ["nike", "5kg", "nike 5kg"]
CHARS = [" ni", "nik", "ike", "ke ", " nik", "nike", "ike ", " nike", "nike ",
         " 5k", "5kg", "kg ", " 5kg", "5kg ", " 5kg "]


def bucket(gram: str, buckets: int) -> int:
    """scikit-learn's FeatureHasher index: |murmurhash3_32(gram, seed 0)| mod buckets."""
    return abs(murmurhash3_32(gram, seed=0)) % buckets


def test_hand_worked_ngrams_and_buckets_of_a_short_title():
    assert sorted(ngrams(TITLE, SPEC)) == sorted(WORDS + CHARS)
    assert bucket("nike", 2**18) == 194952  # a literal: the hash must not drift between versions
    row = encode([TITLE], SPEC)
    grams = WORDS + CHARS
    expected: dict[int, float] = {}
    for g in grams:  # "nike" is both a word and a 4-gram: its bucket counts twice
        expected[bucket(g, SPEC.buckets)] = expected.get(bucket(g, SPEC.buckets), 0) + 1 / len(grams)
    got = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
    assert sorted(got) == sorted(expected) and len(got) == len(set(grams))  # no collision among 17 distinct grams
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-6)
    assert got[bucket("nike", SPEC.buckets)] == np.float32(2 / 18)
    assert encode([""], SPEC).nnz == 0  # an empty text is a missing modality, not a crash


def test_a_fixed_title_lands_in_the_same_buckets_in_every_process():
    title = "Philips HD9252/90 Airfryer, 4.1 L (1400 W) - Black"
    mine = encode([title], LexicalSpec()).indices.tolist()
    code = ("import json; from core.data.lexical import LexicalSpec, encode; "
            f"print(json.dumps(encode([{title!r}], LexicalSpec()).indices.tolist()))")
    for seed in ("0", "12345"):  # Python's own str hash changes with PYTHONHASHSEED; murmurhash does not
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == mine


def test_embedding_bag_is_the_mean_over_the_items_ngrams_and_an_empty_text_is_masked():
    spec = LexicalSpec(buckets=1024, dim=4)
    lex = lexical_features(["red boot", "", "red red"], spec)
    indices, offsets, weights = lex.batch(np.arange(3))
    assert offsets.tolist() == [0, lex.rows.indptr[1], lex.rows.indptr[1]]  # the empty row has no entries
    model = FusionClassifier([], n_classes=2, hidden=4, lexical=(spec.buckets, spec.dim))
    bag = model.lexical(torch.from_numpy(indices), torch.from_numpy(offsets), per_sample_weights=torch.from_numpy(weights))
    table = model.lexical.weight.detach().numpy()
    grams = ngrams("red boot", spec)
    by_hand = np.mean([table[bucket(g, spec.buckets)] for g in grams], axis=0)
    np.testing.assert_allclose(bag[0].detach().numpy(), by_hand, atol=1e-6)
    np.testing.assert_allclose(bag[1].detach().numpy(), 0.0)
    logits, _ = model(torch.zeros(3, 0), torch.zeros(3, 0), tuple(torch.from_numpy(a) for a in (indices, offsets, weights)))
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()


def test_lexical_rows_train_a_model_without_any_dense_feature():
    from core.labels.targets import build_targets
    from core.training.train import TrainConfig, predict_proba, train_model

    rng = np.random.default_rng(0)
    words = {0: ["boot", "sneaker", "sandal"], 1: ["knife", "pan", "skillet"]}
    y = rng.integers(0, 2, 200)
    texts = [f"{rng.choice(words[int(c)])} model {rng.integers(100, 999)}" for c in y]
    lex = lexical_features(texts, LexicalSpec(buckets=4096, dim=16))
    x, mask = np.zeros((200, 0), dtype=np.float32), np.zeros((200, 0), dtype=bool)
    emb = np.eye(2, dtype=np.float32)
    result = train_model(x, mask, [], y, np.arange(150), np.arange(150, 200), build_targets("onehot", n_classes=2),
                         TrainConfig(epochs=6, batch_size=16, hidden=16, seed=0), label_embeddings=emb, lexical=lex)
    probs = predict_proba(result.model, x, mask, np.arange(150, 200), lexical=lex)
    assert (probs.argmax(1) == y[150:]).mean() == 1.0


def test_batch_reads_only_the_rows_asked_for():
    lex = LexicalFeatures(SPEC, encode(["a b", "c", "d e f"], SPEC))
    indices, offsets, weights = lex.batch(np.array([2]))
    assert offsets.tolist() == [0] and len(indices) == lex.rows[2].nnz and weights.sum() == np.float32(1.0)


LEXICAL_ONLY = f"""
import json, sys
from core.cli.main import main
store, out = sys.argv[1], sys.argv[2]
assert main(["train", "--data", {str(SAMPLE_PRODUCTS)!r}, "--label-column", "category_path", "--text-column", "title",
             "--id-column", "id", "--taxonomy", {str(SAMPLE_TAXONOMY)!r}, "--max-rows", "1500", "--encoder", "none",
             "--targets", "tree", "--epochs", "4", "--quiet", "--out", store]) == 0
import pathlib
run = sorted(pathlib.Path(store).iterdir())[-1]
assert main(["predict", str(run), "--data", {str(SAMPLE_PRODUCTS)!r}, "--max-rows", "1500", "--out", out]) == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sentence_transformers", "open_clip", "transformers"))
print(json.dumps({{"run": str(run), "heavy": heavy}}))
"""


def test_a_lexical_only_run_trains_and_predicts_without_importing_an_encoder(tmp_path):
    out = tmp_path / "scored.parquet"
    r = subprocess.run([sys.executable, "-c", LEXICAL_ONLY, str(tmp_path / "store"), str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    run = runs.Run(result["run"])
    assert run.model_info()["slices"] == [] and run.model_info()["lexical"]["buckets"] == LexicalSpec().buckets
    assert run.metrics()["modalities"] == ["lexical"] and run.metrics()["plain"]["top1"] > 0.5
    test = run.predictions().set_index("id")
    scored = pd.read_parquet(out).set_index("id").loc[test.index]
    assert (scored.pred_1 == test.pred_1).all()
    assert np.abs(scored.prob_1.to_numpy() - test.prob_1.to_numpy()).max() <= 1e-6
