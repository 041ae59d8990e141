"""FEATURES_DIR: a catalog's embeddings written once by `python -m core embed`, read memory-mapped by
`train`, `predict` and `sweep` (`--features`) instead of embedding again.

Layout: `features.npy` (N x D float32, each modality a column slice), `mask.npy` (N x M bool: modality
present), `ids.parquet` (row ids), `features.json` (encoder identity, slices, the source file, and
`complete`), `progress.json` (the chunks of rows already written). The input is read in chunks, so
memory stays flat; each chunk is marked done only after its rows are flushed, so an interrupted
`embed` resumes at the first unfinished chunk. Vectors come from the per-item cache
(core/data/itemcache.py), so a changed title re-embeds that title only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import files
from core.data.encoders import Encoder, embed_images, embed_texts, item_cache
from core.data.tables import (
    DataError,
    compose_texts,
    item_ids,
    iter_table,
    require_columns,
    resolve_image_paths,
)
from core.settings import ExperimentConfig

CHUNK_ROWS = 10_000
FEATURE_FILES = {  # name -> (format, what it holds); the damage test corrupts each
    "features.npy": ("npy", "N x D float32 vectors, each modality a column slice"),
    "mask.npy": ("npy", "N x M bool: modality present"),
    "ids.parquet": ("parquet", "the row ids"),
    "features.json": ("json", "encoder identity, slices, source fingerprint, complete"),
    "progress.json": ("json", "the chunks already written"),
}
RowsDone = Callable[[int], None]  # rows finished since the last call


@dataclass
class FeatureDir:
    """A finished FEATURES_DIR, memory-mapped."""

    path: Path
    info: dict
    ids: np.ndarray
    matrix: np.ndarray  # memory-mapped (N, D)
    mask: np.ndarray  # memory-mapped (N, M)

    @property
    def slices(self) -> list[tuple[str, int, int]]:
        return [tuple(s) for s in self.info["slices"]]

    def rows_for(self, ids: np.ndarray, allow_missing: bool = False) -> np.ndarray:
        """Row numbers of `ids` (-1 where absent); absent ids are an error unless `allow_missing`."""
        where = pd.Index(self.ids).get_indexer(pd.Index(np.asarray(ids, dtype=str)))
        if not allow_missing and (where < 0).any():
            missing = np.asarray(ids)[where < 0]
            raise DataError(f"{len(missing)} items are not in {self.path} (e.g. id {missing[0]!r}); embed this table "
                            f"with `python -m core embed ... --out {self.path}` first")
        return where


def open_features(path: str | Path, identity: str | None = None) -> FeatureDir:
    """A complete FEATURES_DIR, refused with a message if unfinished or made by another encoder."""
    path = Path(path)
    info = files.read_json(path / "features.json")
    if not isinstance(info, dict):
        raise DataError(f"{path} is not a features folder (no features.json); create it with `python -m core embed`")
    if not info.get("complete"):
        raise DataError(f"{path} is unfinished: run the same `python -m core embed` command again to complete it")
    if identity is not None and info["encoder_identity"] != identity:
        raise DataError(f"{path} holds features of encoder {info['encoder_identity']}, not {identity}; pass the "
                        f"matching --encoder or embed again into another folder")
    try:
        ids = pd.read_parquet(path / "ids.parquet")["id"].to_numpy(dtype=str)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: ids.parquet is missing or damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                        "embed again into a new folder") from None
    matrix, mask, fault = stored_arrays(path, info)
    if fault:
        raise DataError(f"{path}: {fault}; run the same `python -m core embed` command again to rebuild it")
    return FeatureDir(path, info, ids, matrix, mask)


def stored_arrays(path: Path, info: dict) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(features, mask, None) memory-mapped when both have the shapes features.json declares, else
    (None, None, what is wrong): a truncated, empty or foreign file is never read as features."""
    try:
        rows, slices = int(info["rows"]), info["slices"]
        shapes = {"features.npy": ((rows, int(slices[-1][2])), np.float32), "mask.npy": ((rows, len(slices)), np.bool_)}
    except (KeyError, TypeError, ValueError, IndexError):
        return None, None, "features.json does not say the arrays' shapes"
    arrays = []
    for name, (shape, dtype) in shapes.items():
        try:
            array = np.load(path / name, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            return None, None, f"{name} is missing or damaged ({str(exc).splitlines()[0] if str(exc) else 'empty'})"
        if array.shape != shape or array.dtype != dtype:
            return None, None, f"{name} is {array.dtype} {array.shape}, not {np.dtype(dtype)} {shape} as features.json says"
        arrays.append(array)
    return arrays[0], arrays[1], None


def source_fingerprint(config: ExperimentConfig) -> dict:
    """What the features were computed from: when it changes, every chunk is written again (from the cache)."""
    stat = Path(config.data).stat()
    return {"data": str(Path(config.data).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "text_columns": config.text_columns, "id_column": config.id_column, "image_column": config.image_column,
            "image_dir": config.image_dir, "image_pattern": config.image_pattern, "max_rows": config.max_rows,
            "column_names": config.column_names}


def _chunks(config: ExperimentConfig, chunk_rows: int) -> Iterator[pd.DataFrame]:
    return iter_table(config.data, config.column_names, chunk_rows=chunk_rows, max_rows=config.max_rows)


def scan_ids(config: ExperimentConfig, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Every row's id, read in chunks; repeated ids are refused before anything is written."""
    if not config.id_column:
        raise DataError("embed needs --id-column: features are matched to products by id")
    parts = []
    for chunk in _chunks(config, chunk_rows):
        require_columns(chunk, [config.id_column, *config.text_columns], "id/text")
        if config.image_column:
            require_columns(chunk, [config.image_column], "image")
        parts.append(item_ids(chunk, config.id_column).to_numpy(dtype=str))
    ids = np.concatenate(parts)
    repeated = pd.Series(ids)[pd.Series(ids).duplicated()]
    if len(repeated):
        raise DataError(f"{len(repeated)} ids repeat in {Path(config.data).name} (e.g. {repeated.iloc[0]!r}); "
                        f"each product needs its own id in --id-column {config.id_column}")
    return ids


def plan_slices(text_encoder: Encoder, config: ExperimentConfig) -> list[list]:
    """[name, start, end] of each modality's columns: the text, then (with --image-column) the image."""
    if not text_encoder.semantic:
        raise DataError("--encoder none has no embeddings to store: the lexical n-grams are hashed from the text when "
                        "a run trains or predicts (a features folder never holds them); embed with minilm or clip")
    slices: list[list] = [["text", 0, text_encoder.dim]]
    if config.image_column:
        if not text_encoder.supports_images:
            raise DataError(f"--image-column needs an encoder that embeds images (CLIP); {text_encoder.identity} is text only")
        slices.append(["image", text_encoder.dim, 2 * text_encoder.dim])
    return slices


def begin(out: Path, encoder: Encoder, config: ExperimentConfig, ids: np.ndarray, chunk_rows: int) -> tuple[dict, set[int]]:
    """Create FEATURES_DIR, or reopen it to resume: (its info, the chunks already done). A folder of
    another encoder is refused untouched; a changed source starts the chunks over."""
    info = files.read_json(out / "features.json")
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    if isinstance(info, dict) and info.get("encoder_identity") != encoder.identity:
        raise DataError(f"--out {out} holds features of encoder {info.get('encoder_identity')}, not {encoder.identity}; "
                        "choose another --out folder (nothing was changed)")
    if info is None and out.is_dir() and any(out.iterdir()):
        raise DataError(f"--out {out} is a folder that holds other files; choose an empty or new folder")
    wanted = {"encoder_identity": encoder.identity, "encoder": encoder.description, "dim": encoder.dim,
              "slices": plan_slices(encoder, config), "rows": int(len(ids)), "chunk_rows": chunk_rows,
              "source": source_fingerprint(config)}
    if isinstance(info, dict) and all(info.get(k) == v for k, v in wanted.items()):
        matrix, _, fault = stored_arrays(out, info)
        if fault is None:
            done = finished_chunks(out, matrix, chunk_rows)
            for name in ("features.npy", "mask.npy"):
                try:
                    allocate(out / name)  # a folder begun by an older version may be sparse
                except OSError as exc:
                    raise files.write_failed(out / name, exc) from exc
            return info, done
    out.mkdir(parents=True, exist_ok=True)
    info = wanted | {"complete": False}
    files.write_json(out / "features.json", info)
    files.write_json(out / "progress.json", {"done": []})
    width = wanted["slices"][-1][2]
    for name, shape, dtype in (("features.npy", (len(ids), width), np.float32), ("mask.npy", (len(ids), len(wanted["slices"])), bool)):
        with files.atomic_path(out / name) as tmp:
            reserve_npy(tmp, shape, dtype)
    with files.atomic_path(out / "ids.parquet") as tmp:
        pd.DataFrame({"id": ids}).to_parquet(tmp, index=False)
    return info, set()


def reserve_npy(path: Path, shape: tuple[int, ...], dtype: type) -> None:
    """An .npy file of zeros whose disk blocks are all allocated now: rows are later written through a
    memory map, and a sparse file on a full disk would kill the process (SIGBUS) instead of raising
    "the disk is full" here, before any work."""
    np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()
    allocate(path)


def allocate(path: Path) -> None:
    """Allocate every block of an existing file (OSError ENOSPC when they do not fit)."""
    with open(path, "r+b") as fh:
        os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)


def embed_chunk(encoder: Encoder, chunk: pd.DataFrame, config: ExperimentConfig,
                cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(vectors, mask, items encoded now, images unreadable) for one chunk of the product table."""
    cache = item_cache(encoder, cache_dir) if encoder.cacheable else None
    text, embedded = embed_texts(encoder, compose_texts(chunk, config.text_columns).tolist(), cache)
    blocks, masks, unreadable = [text], [np.ones(len(text), dtype=bool)], 0
    if config.image_column:
        paths = resolve_image_paths(chunk[config.image_column], config.image_dir, config.image_pattern)
        vecs, ok, new = embed_images(encoder, paths, cache)
        blocks.append(vecs)
        masks.append(ok)
        embedded += new
        unreadable = int((~ok).sum())
    return np.concatenate(blocks, axis=1), np.stack(masks, axis=1), embedded, unreadable


def write_rows(out: Path, start: int, vectors: np.ndarray, mask: np.ndarray) -> None:
    """Rows [start, start+n) of features.npy and mask.npy, flushed to disk."""
    for name, block in (("features.npy", vectors), ("mask.npy", mask)):
        target = np.load(out / name, mmap_mode="r+")
        target[start:start + len(block)] = block
        target.flush()
        del target


def finished_chunks(out: Path, matrix: np.ndarray, chunk_rows: int) -> set[int]:
    """The chunks progress.json lists as written whose rows hold finite numbers: a damaged progress
    file resumes nothing, a chunk with NaN or infinite values is embedded again."""
    record = files.read_json(out / "progress.json", {})
    listed = record.get("done") if isinstance(record, dict) else None
    if not isinstance(listed, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in listed):
        return set()
    chunks = -(-len(matrix) // chunk_rows)
    return {n for n in listed if 0 <= n < chunks and np.isfinite(matrix[n * chunk_rows:(n + 1) * chunk_rows]).all()}


def mark_done(out: Path, done: set[int]) -> None:
    files.write_json(out / "progress.json", {"done": sorted(done)})


def finish(out: Path, info: dict, stats: dict) -> dict:
    info = info | {"complete": True, "images_unreadable": stats.get("images_unreadable", 0)}
    files.write_json(out / "features.json", info)
    return info


def embed_file(config: ExperimentConfig, encoder: Encoder, out: str | Path, *, chunk_rows: int = CHUNK_ROWS,
               cache_dir: str | Path | None = None, progress: RowsDone | None = None) -> dict:
    """Embed a product table into FEATURES_DIR `out` in one process; returns the counts for --json."""
    out = Path(out)
    ids = scan_ids(config, chunk_rows)
    info, done = begin(out, encoder, config, ids, chunk_rows)
    stats = {"rows": int(len(ids)), "embedded": 0, "cached": 0, "images_unreadable": 0, "chunks_resumed": len(done)}
    for number, chunk in enumerate(_chunks(config, chunk_rows)):
        if number not in done:
            vectors, mask, embedded, unreadable = embed_chunk(encoder, chunk, config, cache_dir)
            write_rows(out, number * chunk_rows, vectors, mask)
            done.add(number)
            mark_done(out, done)
            stats["embedded"] += embedded
            stats["cached"] += len(chunk) * len(info["slices"]) - embedded - unreadable
            stats["images_unreadable"] += unreadable
        else:
            stats["cached"] += len(chunk) * len(info["slices"])
        if progress:
            progress(len(chunk))
    finish(out, info, stats)
    return stats
