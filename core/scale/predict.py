"""`predict` as a Ray Data pipeline: the table is read by Ray's readers in blocks, an actor pool
(`cluster.map_table`, `--workers` actors) loads the run's predictor (encoder, model, taxonomy) once
per actor and answers a batch at a time; the driver writes the answers, in the table's order, through
the same atomic writer as the one-process path, so the output file is identical.

On a cluster, the run folder, the table and any features or images must be on storage every node sees."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from core.data.tables import iter_table
from core.evaluation.registry import TOP_K
from core.scale import cluster
from core.settings import DEFAULT_REVIEW_RISK, ExperimentConfig
from core.training.predictor import Predictor, output_path, write_answers


class PredictActor:
    """One predictor per actor; called with a pandas batch of the table's rows."""

    def __init__(self, run_dir: str, config: dict, top_k: int, review_risk: float, clip_checkpoint: str | None,
                 device: str, theta: float | None = None) -> None:
        self.predictor = Predictor.load(run_dir, clip_checkpoint=clip_checkpoint, device=device)
        self.config = ExperimentConfig.from_dict(config)
        self.top_k, self.review_risk, self.theta = top_k, review_risk, theta

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self.predictor.predict_frame(batch, self.config, top_k=self.top_k, review_risk=self.review_risk, theta=self.theta)


def predict_on_ray(predictor: Predictor, out: str | Path, config: ExperimentConfig, *, address: str | None = None,
                   workers: int = 2, device: str = "cpu", top_k: int = TOP_K, review_risk: float = DEFAULT_REVIEW_RISK,
                   batch_rows: int = 2_000, clip_checkpoint: str | None = None, theta: float | None = None,
                   progress: Callable[[int], None] | None = None) -> dict:
    """Categorize `config.data` into `out` with `workers` predictor actors (GPU actors on 'cuda').
    Returns predict_file's counts plus the engine and its address."""
    out = output_path(out)
    header = next(iter_table(config.data, config.column_names, 1, 1))
    predictor.check_input(config, list(header.columns))
    # an unreachable address fails in `session` (cluster.init checks it), before anything is written
    with cluster.session(address, num_cpus=cluster.pipeline_cpus(workers), runtime_env=cluster.worker_env()) as engine:
        ds, workers = cluster.map_table(config, PredictActor, {
            "run_dir": str(Path(predictor.run.path).resolve()), "config": config.to_dict(), "top_k": top_k,
            "review_risk": review_risk, "clip_checkpoint": clip_checkpoint, "device": device, "theta": theta},
            workers=workers, batch_rows=batch_rows, device=device)

        def answered() -> Iterator[pd.DataFrame]:
            position = 0
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                frame = pd.DataFrame(batch)  # numpy, not Arrow-backed columns: the same file types as predict_file
                if not config.id_column:  # row numbers, counted here: an actor sees only its batch
                    frame["id"] = [str(i) for i in range(position, position + len(frame))]
                position += len(frame)
                yield frame

        result = write_answers(out, answered(), progress)
    return result | {"engine": engine.kind, "address": engine.address, "workers": workers}
