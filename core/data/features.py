"""The feature matrix a model reads: per item the text embedding, the image embedding (computed or
precomputed) and the lexical n-grams, each modality a column slice with a mask bit (METHOD.md, "Product
features"); or the dense modalities of a FEATURES_DIR written by `python -m core embed`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.encoders import (
    DoneOfTotal,
    Encoder,
    cached_text_embeddings,
    embed_images,
    item_cache,
    load_precomputed,
)
from core.data.featuredir import open_features
from core.data.lexical import LexicalFeatures, LexicalSpec, lexical_features
from core.data.tables import Dataset, Items
from core.errors import DataError


@dataclass
class Features:
    """One float32 matrix with each dense modality in its own column slice, a per-modality mask, and the
    lexical n-gram rows (sparse, computed from the text; an item without n-grams counts as missing)."""

    matrix: np.ndarray  # (N, D_total)
    mask: np.ndarray  # (N, M) bool: modality present
    slices: list[tuple[str, int, int]]  # (name, start, end)
    notes: list[str]
    lexical: LexicalFeatures | None = None

    @property
    def modalities(self) -> list[str]:
        return [name for name, _, _ in self.slices] + (["lexical"] if self.lexical is not None else [])


def image_features(paths: Sequence[str], encoder: Encoder, cache_dir: str | Path | None = None,
                   progress: DoneOfTotal | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CLIP image embeddings for paths and their mask, from the per-item cache keyed by each file's bytes."""
    vecs, ok, _ = embed_images(encoder, paths, item_cache(encoder, cache_dir) if encoder.cacheable else None, progress)
    return vecs, ok


def precomputed_block(item_ids: Sequence[str], npy_path: str | Path, ids_path: str | Path,
                      allow_missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Precomputed embeddings joined on the item ids: an (N, D) block (zeros where an item has no row)
    and its (N,) mask. Files that cannot be used (see `load_precomputed`) are refused, and so is a join
    that finds no id at all unless `allow_missing` (scoring new items)."""
    try:
        ids, matrix = load_precomputed(npy_path, ids_path)
    except (ValueError, FileNotFoundError) as exc:
        raise DataError(str(exc)) from None
    row = {i: r for r, i in enumerate(ids)}
    where = np.array([row.get(str(i), -1) for i in item_ids], dtype=np.int64)
    found = where >= 0
    if not found.any() and not allow_missing:
        raise DataError("none of the product ids appear in the embedding id list; check --embedding-ids and --id-column")
    block = np.zeros((len(where), matrix.shape[1]), dtype=np.float32)
    block[found] = matrix[where[found]]
    return block, found


def build_features(dataset: Dataset | Items, text_encoder: Encoder, *, precomputed: tuple[str, str] | None = None,
                   image_encoder: Encoder | None = None, cache_dir: str | Path | None = None,
                   progress: DoneOfTotal | None = None, use_text: bool = True, allow_missing: bool = False,
                   features_dir: str | Path | None = None, lexical: LexicalSpec | None = None) -> Features:
    """Text embeddings (unless `use_text` is False, or the encoder is `none`); image embeddings from a
    precomputed .npy (joined on id) or from CLIP; with `lexical`, the hashed n-grams of the text. Items
    without an image get zeros and mask False, never a crash; with `allow_missing` (scoring new items)
    even none of them having a precomputed embedding is no error. `features_dir` takes the dense
    modalities from a FEATURES_DIR (`python -m core embed`) instead; the lexical rows are never stored
    there, they are hashed from the text here (cheaper than reading them)."""
    lex = lexical_features(dataset.texts, lexical) if lexical is not None and use_text else None
    if features_dir is not None:
        if precomputed is not None:
            raise DataError("--features and --embeddings cannot be combined: embed the image modality into the features folder")
        features = features_from_dir(dataset, features_dir, text_encoder.identity, use_text=use_text)
        features.lexical = lex
        return features
    blocks, masks, names, notes = [], [], [], []
    if use_text and text_encoder.semantic:
        text = cached_text_embeddings(text_encoder, dataset.texts, cache_dir, progress)
        blocks.append(text)
        masks.append(np.ones(len(text), dtype=bool))
        names.append("text")
    if precomputed is not None:
        block, found = precomputed_block(dataset.ids, *precomputed, allow_missing=allow_missing)
        blocks.append(block)
        masks.append(found)
        names.append("image")
        notes.append(f"precomputed embeddings ({block.shape[1]} dims) for {found.sum()} of {len(found)} items")
    elif dataset.image_paths is not None:
        if image_encoder is not None and image_encoder.supports_images:
            vecs, ok = image_features(dataset.image_paths, image_encoder, cache_dir, progress)
            blocks.append(vecs)
            masks.append(ok)
            names.append("image")
            notes.append(f"image embeddings from {image_encoder.description} for {ok.sum()} of {len(ok)} items")
        else:
            notes.append("the image column was left out: no CLIP weights to embed images (text-only run); "
                         "pass precomputed embeddings or a CLIP checkpoint to use images")
    if not blocks and lex is None:
        raise DataError("no modality left: text is switched off and there are no image embeddings")
    start, slices = 0, []
    for name, block in zip(names, blocks, strict=True):
        slices.append((name, start, start + block.shape[1]))
        start += block.shape[1]
    n = len(dataset.texts)
    matrix = np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((n, 0), dtype=np.float32)
    mask = np.stack(masks, axis=1) if masks else np.zeros((n, 0), dtype=bool)
    return Features(matrix, mask, slices, notes, lex)


def features_from_dir(dataset: Dataset | Items, path: str | Path, identity: str, use_text: bool = True) -> Features:
    """The dataset's rows of a FEATURES_DIR, matched by id (read from the memory map, not embedded)."""
    fd = open_features(path, identity)
    rows = fd.rows_for(dataset.ids)
    keep = [i for i, (name, _, _) in enumerate(fd.slices) if use_text or name != "text"]
    if not keep:
        raise DataError("no modality left: text is switched off and the features folder holds no images")
    order = np.argsort(rows, kind="stable")  # the memory map is read in file order
    matrix, mask = np.empty((len(rows), fd.matrix.shape[1]), dtype=np.float32), np.empty((len(rows), fd.mask.shape[1]), dtype=bool)
    matrix[order], mask[order] = fd.matrix[rows[order]], fd.mask[rows[order]]
    if not np.isfinite(matrix).all():
        raise DataError(f"{fd.path}: features.npy holds NaN or infinite values for some of these items; run the same "
                        "`python -m core embed` command again to embed them anew")
    columns = np.concatenate([np.arange(fd.slices[i][1], fd.slices[i][2]) for i in keep])
    slices, start = [], 0
    for i in keep:
        name, lo, hi = fd.slices[i]
        slices.append((name, start, start + hi - lo))
        start += hi - lo
    return Features(matrix[:, columns] if len(keep) < len(fd.slices) else matrix, mask[:, keep], slices,
                    [f"features from {fd.path} ({fd.info['encoder']}; {len(rows)} of its {len(fd.ids)} items)"])
