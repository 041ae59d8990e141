"""The per-item embedding cache, `embed` into a FEATURES_DIR (chunked, resumable, refusals) and
reading it back for training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from core.data.encoders import Encoder, cached_text_embeddings, embed_images, load_encoder
from core.data.featuredir import embed_file, open_features
from core.data.features import build_features
from core.data.itemcache import ItemCache, item_keys
from core.data.tables import DataError, Items
from core.settings import ExperimentConfig
from tests.conftest import ROOT


@dataclass
class CountingEncoder(Encoder):
    """Deterministic 4-d vectors from the text; records every text it encodes."""

    identity: str = "fake:count"
    description: str = "fake"
    dim: int = 4
    seen: list = field(default_factory=list)

    def _encode_text_batch(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a") + 1, t.count("e") + 1, 1.0] for t in texts], dtype=np.float32)


def test_item_cache_round_trip_and_a_shard_without_keys_is_ignored(tmp_path):
    cache = ItemCache(tmp_path, "enc:1", 3)
    keys = item_keys("enc:1", "text", ["a", "b"])
    cache.put(keys, np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    np.save(cache.folder / "crashed.npy", np.ones((1, 3), dtype=np.float32))  # vectors written, keys never
    again = ItemCache(tmp_path, "enc:1", 3)
    vecs, found = again.get(item_keys("enc:1", "text", ["b", "c", "a"]))
    assert found.tolist() == [True, False, True]
    assert vecs.tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert len(again) == 2
    # the key covers the encoder identity and the kind of content
    assert item_keys("enc:2", "text", ["a"])[0] != keys[0] and item_keys("enc:1", "image", ["a"])[0] != keys[0]


def test_changing_one_text_encodes_that_text_only(tmp_path):
    enc = CountingEncoder()
    first = cached_text_embeddings(enc, ["red shoe", "blue hat", "green bag"], cache_dir=tmp_path)
    assert sorted(enc.seen) == ["blue hat", "green bag", "red shoe"]
    enc.seen.clear()
    second = cached_text_embeddings(enc, ["green bag", "red shoe", "blue cap"], cache_dir=tmp_path)
    assert enc.seen == ["blue cap"]
    assert np.array_equal(second[:2], first[[2, 0]])


def _catalog(path, n=25, change=None):
    titles = [f"product {i} {'ae' * (i % 4)}".strip() for i in range(n)]
    if change is not None:
        titles[change] = "a changed title"
    pd.DataFrame({"sku": [f"S{i}" for i in range(n)], "title": titles}).to_csv(path, index=False)
    return path


def _config(data, **kw):
    return ExperimentConfig(data=str(data), text_columns=["title"], id_column="sku", **kw)


def test_embed_file_resumes_after_interruption_and_features_match(tmp_path):
    data = _catalog(tmp_path / "p.csv")
    enc = CountingEncoder()
    out = tmp_path / "feat"

    def stop_after_first_chunk(_n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_file(_config(data), enc, out, chunk_rows=10, cache_dir=tmp_path / "c1", progress=stop_after_first_chunk)
    with pytest.raises(DataError, match="unfinished"):
        open_features(out)
    enc.seen.clear()
    stats = embed_file(_config(data), enc, out, chunk_rows=10, cache_dir=tmp_path / "c2")  # a fresh cache: only resuming helps
    assert stats["chunks_resumed"] == 1 and stats["embedded"] == 15 and len(enc.seen) == 15
    fd = open_features(out, "fake:count")
    assert fd.ids.tolist() == [f"S{i}" for i in range(25)] and fd.slices == [("text", 0, 4)]
    direct = CountingEncoder().encode_text(pd.read_csv(data)["title"].tolist())
    assert np.allclose(fd.matrix, direct) and fd.mask.all()
    items = Items(ids=np.array(["S7", "S2", "S21"]), texts=["x", "y", "z"])
    feats = build_features(items, enc, features_dir=out)
    assert np.allclose(feats.matrix, direct[[7, 2, 21]]) and feats.slices == [("text", 0, 4)]
    with pytest.raises(DataError, match="not in"):
        build_features(Items(ids=np.array(["S99"]), texts=["x"]), enc, features_dir=out)


@pytest.mark.slow
def test_images_missing_or_unreadable_are_masked_and_counted(tmp_path):
    from PIL import Image

    clip = load_encoder("clip-random").encoder
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "red.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths = [tmp_path / "red.png", tmp_path / "broken.jpg", tmp_path / "absent.jpg"]
    cache = ItemCache(tmp_path / "cache", clip.identity, clip.dim)
    vecs, ok, embedded = embed_images(clip, paths, cache)
    assert ok.tolist() == [True, False, False] and embedded == 1
    assert np.isclose(np.linalg.norm(vecs[0]), 1, atol=1e-5) and not vecs[1:].any()
    (tmp_path / "copy.png").write_bytes((tmp_path / "red.png").read_bytes())  # same bytes: a cache hit
    again, ok2, embedded2 = embed_images(clip, [tmp_path / "copy.png"], cache)
    assert embedded2 == 0 and ok2.all() and np.allclose(again[0], vecs[0])


def _embed(*args):
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "core", "embed", *map(str, args), "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_embed_one_changed_title_then_refusals(tmp_path):
    data, out = _catalog(tmp_path / "p.csv"), tmp_path / "feat"
    common = ["--text-column", "title", "--id-column", "sku", "--out", out, "--json"]
    first = _embed("--data", data, "--encoder", "minilm", *common)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.strip().splitlines()[-1])["embedded"] == 25
    _catalog(data, change=3)
    second = _embed("--data", data, "--encoder", "minilm", *common)
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert (result["embedded"], result["cached"], result["rows"]) == (1, 24, 25)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other = _embed("--data", data, "--encoder", "clip-random", *common)
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "minilm:all-MiniLM-L6-v2" in other.stderr and "Traceback" not in other.stderr
    pd.DataFrame({"sku": ["A", "B", "A"], "title": ["x", "y", "z"]}).to_csv(tmp_path / "dup.csv", index=False)
    dup = _embed("--data", tmp_path / "dup.csv", "--encoder", "minilm", *common)
    assert dup.returncode == 2 and "'A'" in dup.stderr and "repeat" in dup.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    away = _embed("--data", data, "--encoder", "minilm", *common[:-3], "--out", tmp_path / "f2", "--ray-address", "127.0.0.1:1")
    assert away.returncode == 2 and "127.0.0.1:1" in away.stderr and not (tmp_path / "f2").exists()


@pytest.mark.slow
def test_train_with_features_reads_them_instead_of_embedding_products(tmp_path):
    from tests.conftest import SAMPLE_PRODUCTS, TRAIN

    @dataclass
    class SameIdentity(CountingEncoder):  # stands in for MiniLM's identity so train accepts the folder
        identity: str = "minilm:all-MiniLM-L6-v2"
        dim: int = 384

        def _encode_text_batch(self, texts):
            self.seen.extend(texts)
            rng = np.random.default_rng([len(t) for t in texts])
            return rng.normal(size=(len(texts), 384)).astype(np.float32)

    config = ExperimentConfig(data=str(SAMPLE_PRODUCTS), text_columns=["title"], id_column="id", max_rows=600)
    embed_file(config, SameIdentity(), tmp_path / "feat", cache_dir=tmp_path / "unused")
    cache = tmp_path / "cache"
    env = os.environ | {"TAXOLENS_CACHE": str(cache)}
    args = [a if a != "1500" else "600" for a in map(str, TRAIN)]
    proc = subprocess.run([sys.executable, "-m", "core", *args, "--features", tmp_path / "feat", "--epochs", "2", "--members", "1",
                           "--targets", "onehot", "--out", tmp_path / "runs"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"note: features from {tmp_path / 'feat'}" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1])["top1"] >= 0
    # only category names were embedded: none of the 600 product titles is in the cache
    titles = pd.read_csv(SAMPLE_PRODUCTS, nrows=600)["title"].str.strip().tolist()
    cached = ItemCache(cache, "minilm:all-MiniLM-L6-v2", 384)
    assert len(cached) > 0 and not cached.get(item_keys(cached.identity, "text", titles))[1].any()
