import numpy as np
import pytest
import torch

from core.data.encoders import (
    ClipEncoder,
    EncoderUnavailable,
    cached_text_embeddings,
    encode_text_trimmed,
    label_embeddings,
    load_encoder,
    load_precomputed,
    render_prompts,
)
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def random_clip():
    return ClipEncoder.load("ViT-B-32", pretrained=None, seed=0)


def test_bundled_model_ranks_boots_near_sandals(minilm):
    boots, sandals, laptops = minilm.encode_text(["Boots", "Sandals", "Laptops"])
    assert boots @ sandals > boots @ laptops
    assert np.allclose(np.linalg.norm([boots, sandals], axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_clip_random_weights_trimmed_text_path_is_exact(random_clip):
    tokens = random_clip.tokenizer(["rain boots", "a photo of chef's knives, a kind of kitchen knives"])
    with torch.inference_mode():
        full = random_clip.model.encode_text(tokens)
        trimmed = encode_text_trimmed(random_clip.model, tokens)
    assert torch.allclose(full, trimmed, atol=1e-4)
    vecs = random_clip.encode_text(["rain boots", "laptops"])
    assert vecs.shape == (2, 512) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_clip_checkpoint_saved_then_reloaded_gives_same_vectors(random_clip, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "clip"
    folder.mkdir()
    save_file(random_clip.model.state_dict(), folder / "open_clip_model.safetensors")
    reloaded = ClipEncoder.load("ViT-B-32", checkpoint=folder)
    texts = ["rain boots", "paring knife"]
    assert np.allclose(random_clip.encode_text(texts), reloaded.encode_text(texts), atol=1e-6)
    choice = load_encoder("auto", clip_checkpoint=folder)
    assert isinstance(choice.encoder, ClipEncoder) and "CLIP" in choice.note


@pytest.mark.slow
def test_clip_images_with_a_broken_file(random_clip, tmp_path):
    from PIL import Image

    Image.new("RGB", (60, 80), (200, 30, 30)).save(tmp_path / "ok.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    vecs, ok = random_clip.encode_images([tmp_path / "ok.jpg", tmp_path / "broken.jpg", tmp_path / "missing.jpg"])
    assert ok.tolist() == [True, False, False]
    assert np.isclose(np.linalg.norm(vecs[0]), 1, atol=1e-5) and not vecs[1:].any()


@pytest.mark.slow
def test_auto_without_weights_falls_back_and_says_so(monkeypatch):
    monkeypatch.delenv("TAXOLENS_CLIP_CHECKPOINT", raising=False)
    choice = load_encoder("auto", clip_pretrained="laion2b_s34b_b79k")
    assert choice.encoder.identity.startswith("minilm")
    assert "no CLIP" in choice.note and "TAXOLENS_CLIP_CHECKPOINT" in choice.note
    with pytest.raises(EncoderUnavailable, match="not on this machine"):
        load_encoder("clip")


def test_prompt_templates(small_tree):
    a = small_tree.resolve("A > A1 > a")
    top = small_tree.resolve("A")
    assert render_prompts(small_tree, [a], "path") == ["A > A1 > a"]
    assert render_prompts(small_tree, [a, top], "photo") == ["a photo of a, a kind of A1", "a photo of A, a kind of product"]
    with pytest.raises(ValueError, match="unknown field"):
        render_prompts(small_tree, [a], "{colour}")


def test_disk_cache_reuses_vectors(small_tree, tmp_path):
    calls = []

    class CountingEncoder:
        identity, dim, cacheable = "fake:v1", 3, True

        def encode_text(self, texts, batch_size=128, progress=None):
            calls.append(list(texts))
            return np.eye(3, dtype=np.float32)[[len(t) % 3 for t in texts]]

    enc = CountingEncoder()
    first = label_embeddings(small_tree, small_tree.leaves, enc, cache_dir=tmp_path)
    second = label_embeddings(small_tree, small_tree.leaves, enc, cache_dir=tmp_path)
    assert len(calls) == 1 and np.array_equal(first, second)
    cached_text_embeddings(enc, ["other"], cache_dir=tmp_path)
    assert len(calls) == 2


def test_precomputed_embeddings_real_fashion_file():
    ids, mat = load_precomputed(shared_file("fashion-small/clip-vit-b32-image-embeddings.npy"),
                                shared_file("fashion-small/clip-vit-b32-image-embeddings.ids.csv"))
    assert mat.shape == (2000, 512) and len(ids) == 2000 and ids[0] == "10015"
    assert np.allclose(np.linalg.norm(mat[:10], axis=1), 1, atol=1e-3)


def test_precomputed_mismatch_is_reported(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((3, 4), dtype=np.float32))
    (tmp_path / "ids.csv").write_text("id\n1\n2\n")
    with pytest.raises(ValueError, match="must match"):
        load_precomputed(tmp_path / "e.npy", tmp_path / "ids.csv")


def test_ids_file_with_or_without_header_keeps_every_id(tmp_path):
    np.save(tmp_path / "e.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    (tmp_path / "plain.txt").write_text("10\n20\n30\n")
    (tmp_path / "header.csv").write_text("id\n10\n20\n30\n")
    for name in ("plain.txt", "header.csv"):
        ids, matrix = load_precomputed(tmp_path / "e.npy", tmp_path / name)
        assert ids == ["10", "20", "30"] and matrix[2].tolist() == [4, 5]


@pytest.mark.parametrize(("array", "ids", "words"), [
    (np.zeros((3, 2)), "10\n20\n10\n", "'10' more than once"),
    (np.array([[0, 1], [np.nan, 0], [1, 0]]), "10\n20\n30\n", "NaN or infinite values in 1 rows .*'20'"),
    (np.array([[0, 1], [np.inf, 0], [1, 0]]), "10\n20\n30\n", "NaN or infinite"),
    (np.zeros(3), "10\n20\n30\n", "2-D numeric array"),
])
def test_unusable_precomputed_embeddings_are_refused(tmp_path, array, ids, words):
    np.save(tmp_path / "e.npy", array)
    (tmp_path / "ids.txt").write_text(ids)
    with pytest.raises(ValueError, match=words):
        load_precomputed(tmp_path / "e.npy", tmp_path / "ids.txt")


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds none (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.slow
def test_decompression_bomb_is_a_broken_image_not_a_crash(random_clip, tmp_path):
    from PIL import Image

    Image.new("RGB", (60, 80), (200, 30, 30)).save(tmp_path / "ok.jpg")
    (tmp_path / "bomb.png").write_bytes(png_header(20_000, 10_000))  # 200 megapixels: PIL's error
    (tmp_path / "big.png").write_bytes(png_header(10_000, 10_000))  # 100 megapixels: PIL only warns
    vecs, ok = random_clip.encode_images([tmp_path / "bomb.png", tmp_path / "ok.jpg", tmp_path / "big.png"])
    assert ok.tolist() == [False, True, False] and not vecs[0].any() and not vecs[2].any()
