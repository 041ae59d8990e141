"""`embed` as a Ray Data pipeline: the table is read by Ray's readers in blocks, an actor pool
(`cluster.map_table`, `--workers` actors) loads the encoder once per actor, looks each item up in the
shared per-item cache, encodes the misses (images decoded a batch at a time in the actors) and writes new
cache shards; the driver writes the rows, in order, into the same FEATURES_DIR as the one-process path.

Resuming relies on the per-item cache: an interrupted run loses only the batches in flight. On a
cluster, the cache folder and FEATURES_DIR must be on storage every node sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.data.encoders import default_cache_dir
from core.data.featuredir import RowsDone, begin, embed_chunk, finish, mark_done, scan_ids, write_rows
from core.data.tables import DataError
from core.scale import cluster
from core.settings import ExperimentConfig, resolve_device


class EmbedActor:
    """One encoder per actor; called with a pandas batch of the table's rows."""

    def __init__(self, config: dict, cache_dir: str) -> None:
        from core.data.encoders import load_encoder

        self.config = ExperimentConfig.from_dict(config)
        self.cache_dir = cache_dir
        self.encoder = load_encoder(self.config.encoder, clip_checkpoint=self.config.clip_checkpoint,
                                    device=self.config.device).encoder

    def __call__(self, batch: pd.DataFrame) -> dict:
        batch = batch.fillna("").astype(str)
        vectors, mask, embedded, unreadable = embed_chunk(self.encoder, batch, self.config, self.cache_dir)
        counts = np.zeros((len(batch), 2), dtype=np.int64)
        counts[0] = (embedded, unreadable)  # per-batch counts travel on the batch's first row
        return {"vectors": vectors, "mask": mask, "counts": counts}


def embed_on_ray(config: ExperimentConfig, out: str | Path, *, address: str | None = None, workers: int = 2,
                 chunk_rows: int = 10_000, cache_dir: str | Path | None = None, progress: RowsDone | None = None) -> dict:
    """Embed a table into FEATURES_DIR `out` with `workers` encoder actors (GPU actors with --device cuda)."""
    from core.data.encoders import load_encoder

    out = Path(out)
    address = cluster.resolve_address(address)
    if address:
        cluster.check_reachable(address)  # before anything is read or written
    device = resolve_device(config.device)
    config = config.replace(device=device)
    ids = scan_ids(config, chunk_rows)  # repeated ids and missing columns are refused before Ray starts
    identity_probe = load_encoder(config.encoder, clip_checkpoint=config.clip_checkpoint, device="cpu").encoder
    info, _ = begin(out, identity_probe, config, ids, chunk_rows)
    cache = str(Path(cache_dir or default_cache_dir()).resolve())
    stats = {"rows": int(len(ids)), "embedded": 0, "cached": 0, "images_unreadable": 0, "chunks_resumed": 0}
    with cluster.session(address, num_cpus=cluster.pipeline_cpus(workers), runtime_env=cluster.worker_env()) as engine:
        ds, workers = cluster.map_table(config, EmbedActor, {"config": config.to_dict(), "cache_dir": cache},
                                        workers=workers, batch_rows=min(chunk_rows, 2_000), device=device)
        position = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            n = len(batch["vectors"])
            write_rows(out, position, batch["vectors"], batch["mask"])
            embedded, unreadable = batch["counts"].sum(axis=0)
            stats["embedded"] += int(embedded)
            stats["images_unreadable"] += int(unreadable)
            stats["cached"] += n * len(info["slices"]) - int(embedded) - int(unreadable)
            position += n
            if progress:
                progress(n)
    if position != len(ids):
        raise DataError(f"Ray read {position} rows of {config.data} but the table has {len(ids)}; nothing was marked complete")
    mark_done(out, set(range(-(-len(ids) // chunk_rows))))
    stats |= {"engine": engine.kind, "workers": workers}
    finish(out, info, stats)
    return stats
