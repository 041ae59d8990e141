"""The lexical text modality: hand-worked n-grams and buckets, hashing that is the same in every process,
the EmbeddingBag's weighted mean, a lexical-only run that trains and predicts without any encoder library."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import torch
from sklearn.utils import murmurhash3_32

from core.data.lexical import LexicalFeatures, LexicalSpec, encode, fit_idf, lexical_features, ngrams
from core.runs import store as runs
from core.training.model import FusionClassifier
from tests.conftest import ROOT, SAMPLE_PRODUCTS, SAMPLE_TAXONOMY

SPEC = LexicalSpec(buckets=2**20, dim=8, weighting="mean")
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
    spec = LexicalSpec(buckets=1024, dim=4, weighting="mean")
    lex = lexical_features(["red boot", "", "red red"], spec)
    indices, offsets, weights = lex.batch(np.arange(3))
    assert offsets.tolist() == [0, lex.rows.indptr[1], lex.rows.indptr[1]]  # the empty row has no entries
    model = FusionClassifier([], n_classes=2, hidden=4, lexical=spec)
    bag = model.lexical(torch.from_numpy(indices), torch.from_numpy(offsets), per_sample_weights=torch.from_numpy(weights))
    table = model.lexical.weight.detach().numpy()
    grams = ngrams("red boot", spec)
    by_hand = np.mean([table[bucket(g, spec.buckets)] for g in grams], axis=0)
    np.testing.assert_allclose(bag[0].detach().numpy(), by_hand, atol=1e-6)
    np.testing.assert_allclose(bag[1].detach().numpy(), 0.0)
    logits, _ = model(torch.zeros(3, 0), torch.zeros(3, 0), tuple(torch.from_numpy(a) for a in (indices, offsets, weights)))
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()


def test_hand_worked_tfidf_weights_of_a_short_title():
    """Sublinear tf (1 + ln c), smoothed idf ln((1 + n) / (1 + df)) + 1 of the training items, l2 norm."""
    spec = LexicalSpec(buckets=2**20, dim=8, weighting="tfidf")
    train = encode(["nike 5kg", "nike red"], spec)
    idf = fit_idf(train)
    nike_grams = ["nike", " ni", "nik", "ike", "ke ", " nik", "nike", "ike ", " nike", "nike "]  # in both items
    assert idf[bucket("nike", spec.buckets)] == np.float32(1.0)  # ln(3/3) + 1
    np.testing.assert_allclose(idf[bucket("5kg", spec.buckets)], np.log(3 / 2) + 1, rtol=1e-6)  # one item of two
    np.testing.assert_allclose(idf[bucket("zzz", spec.buckets)], np.log(3 / 1) + 1, rtol=1e-6)  # in no item
    row = encode([TITLE], spec)
    assert dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))[bucket("nike", spec.buckets)] == \
        np.float32(1 + np.log(2))  # "nike" counts twice
    by_hand = {}
    for g in WORDS + CHARS:
        b = bucket(g, spec.buckets)
        tf = 1 + np.log((WORDS + CHARS).count(g))  # "nike" and "5kg" are each a word and a 3- or 4-gram
        by_hand[b] = tf * (1.0 if g in nike_grams else np.log(3 / 2) + 1)
    norm = np.sqrt(sum(v * v for v in by_hand.values()))
    model = FusionClassifier([], n_classes=2, hidden=4, lexical=spec)
    model.set_idf(torch.from_numpy(idf))
    indices, offsets, weights = (torch.from_numpy(a) for a in LexicalFeatures(spec, row).batch(np.array([0])))
    got = dict(zip(indices.tolist(), model.lexical_weights(indices, offsets, weights).tolist(), strict=True))
    assert sorted(got) == sorted(by_hand)
    np.testing.assert_allclose([got[b] for b in by_hand], [v / norm for v in by_hand.values()], rtol=1e-6)
    two = LexicalFeatures(spec, encode([TITLE, "red red boot"], spec)).batch(np.arange(2))  # each item its own norm
    w = model.lexical_weights(*(torch.from_numpy(a) for a in two)).numpy()
    np.testing.assert_allclose([np.square(w[:two[1][1]]).sum(), np.square(w[two[1][1]:]).sum()], [1.0, 1.0], rtol=1e-6)


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


def test_a_tfidf_wide_model_saved_and_rebuilt_from_model_json_gives_the_same_probabilities(tmp_path):
    """The idf is a buffer of the saved weights and the wide path is in model.json's lexical spec."""
    from safetensors.torch import load_file

    from core.labels.targets import build_targets
    from core.runs.store import save_weights
    from core.training.predictor import build_model
    from core.training.train import TrainConfig, predict_proba, train_model

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 90)
    texts = [f"{['boot', 'pan', 'lamp'][c]} {rng.integers(10, 99)} {rng.choice(['red', 'blue'])}" for c in y]
    spec = LexicalSpec(buckets=2048, dim=8, weighting="tfidf", wide=True)
    lex = lexical_features(texts, spec)
    x, mask = np.zeros((90, 0), dtype=np.float32), np.zeros((90, 0), dtype=bool)
    result = train_model(x, mask, [], y, np.arange(60), np.arange(60, 90), build_targets("onehot", n_classes=3),
                         TrainConfig(epochs=2, batch_size=16, hidden=8, seed=0, members=1), label_embeddings=np.eye(3, dtype=np.float32),
                         lexical=lex)
    idf = result.model.lexical_idf.numpy()
    np.testing.assert_allclose(idf, fit_idf(lex.rows[:60]), rtol=1e-6)  # fitted on the training rows only
    np.testing.assert_allclose(idf.max(), np.log(61) + 1, rtol=1e-6)  # the buckets no training item has
    assert idf.min() < idf.max()
    save_weights(tmp_path / "model.safetensors", result.model.state_dict())
    info = {"slices": [], "n_classes": 3, "hidden": 8, "fusion": "concat", "dropout": 0.2,
            "lexical": json.loads(json.dumps(spec.to_dict()))}
    rebuilt = build_model(info)
    rebuilt.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    assert rebuilt.wide is not None
    before = predict_proba(result.model, x, mask, lexical=lex)
    after = predict_proba(rebuilt, x, mask, lexical=LexicalFeatures(LexicalSpec.from_dict(info["lexical"]), encode(texts, spec)))
    assert np.abs(before - after).max() <= 1e-6


def test_a_model_json_written_before_weighting_and_wide_means_the_plain_mean():
    old = {"buckets": 4096, "dim": 16, "word_max": 2, "char_min": 3, "char_max": 5}
    spec = LexicalSpec.from_dict(old)
    assert spec.weighting == "mean" and spec.wide is False
    assert encode(["red boot"], spec).sum() == np.float32(1.0)


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
