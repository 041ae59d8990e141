"""A trained run as a categorizer of new products: `Predictor.load(run_dir)` rebuilds the encoder the
run used (pinned by identity), the feature layout, the model with its hyperparameters, the class
paths, the taxonomy and the calibration temperature; `predict_file` streams a table through it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import files
from core.data.encoders import Encoder, EncoderChoice, encoder_from_identity
from core.data.export import write_csv
from core.data.lexical import LexicalSpec
from core.data.tables import (
    DataError,
    Items,
    compose_texts,
    item_ids,
    iter_table,
    require_columns,
    resolve_image_paths,
)
from core.evaluation.metrics import ranked_predictions
from core.labels.targets import crm_rerank
from core.runs import store as runs
from core.settings import DEFAULT_REVIEW_RISK, ExperimentConfig
from core.taxonomy.tree import Taxonomy
from core.training.calibration import calibrated_probabilities

DENSE_DISTANCE_LIMIT = 12_000
OUTPUT_SUFFIXES = (".parquet", ".csv", ".jsonl")
# what `predict` may take from the user instead of the run's own settings
INPUT_SETTINGS = ("data", "text_columns", "id_column", "image_column", "image_dir", "image_pattern", "embeddings",
                  "embedding_ids", "column_names", "max_rows", "features")


@dataclass
class Predictor:
    run: runs.Run
    config: ExperimentConfig
    model: object
    temperature: float
    class_names: list[str]
    taxonomy: Taxonomy
    distance: np.ndarray | None
    encoder_choice: EncoderChoice
    image_source: str | None
    lexical: LexicalSpec | None = None  # the run's n-gram hashing, read from model.json

    @classmethod
    def load(cls, run_dir: str | Path, clip_checkpoint: str | None = None, device: str = "cpu") -> Predictor:
        """Everything needed to score new items, the encoder and model on `device` (a resolved torch
        device); RunError / EncoderUnavailable say what is missing."""
        from safetensors.torch import load_file

        from core.training.model import FusionClassifier

        run = runs.Run.open(run_dir)
        state = run.state
        if state != "done":
            raise runs.RunError(f"run {run.name} is {state}; only a finished (done) run can categorize products")
        if run.kind != "trained":
            raise runs.RunError(f"run {run.name} holds imported predictions; it has no model to categorize with")
        info = run.model_info()
        config = run.experiment_config()
        names, nodes, taxonomy = run.classes(), run.class_nodes(), run.taxonomy()
        choice = encoder_from_identity(str(info["encoder_identity"]), clip_checkpoint or config.clip_checkpoint, device)
        lexical = LexicalSpec.from_dict(info["lexical"]) if info.get("lexical") else None
        model = FusionClassifier([tuple(s) for s in info["slices"]], int(info["n_classes"]), int(info["hidden"]),
                                 str(info["fusion"]), float(info["dropout"]), int(info.get("aux_dim", 0)),
                                 lexical=(lexical.buckets, lexical.dim) if lexical is not None else None)
        try:
            model.load_state_dict(load_file(str(run / "model.safetensors")))
        except (OSError, RuntimeError) as exc:
            raise runs.RunError(f"{run.name}: model.safetensors does not load ({str(exc).splitlines()[0]})") from None
        model.to(device).eval()
        distance = taxonomy.distance_matrix(nodes) if len(nodes) <= DENSE_DISTANCE_LIMIT else None
        return cls(run, config, model, float(info["temperature"]), names, taxonomy, distance, choice, info.get("image_source"),
                   lexical)

    @property
    def encoder(self) -> Encoder:
        return self.encoder_choice.encoder

    def input_config(self, **given: object) -> ExperimentConfig:
        """The run's own input settings, overridden by what the user gave (None = keep the run's)."""
        unknown = set(given) - set(INPUT_SETTINGS)
        if unknown:
            raise ValueError(f"predict cannot change {', '.join(sorted(unknown))}")
        return self.config.replace(**({"max_rows": None, "features": None} | {k: v for k, v in given.items() if v is not None}))

    def check_input(self, config: ExperimentConfig, columns: list[str]) -> None:
        """Refuse, before anything is written, a table that lacks what the model was trained on."""
        frame = pd.DataFrame(columns=columns)
        if self.config.use_text:
            require_columns(frame, config.text_columns, "text")
        if config.id_column:
            require_columns(frame, [config.id_column], "id")
        if self.image_source == "precomputed":
            if not config.id_column:
                raise DataError("this run uses precomputed embeddings joined on the id column; pass --id-column")
        elif self.image_source == "clip" and config.image_column:
            require_columns(frame, [config.image_column], "image")

    def probabilities(self, items: Items, config: ExperimentConfig | None = None) -> np.ndarray:
        """Calibrated class probabilities for items, featurised exactly as in training."""
        from core.data.tables import build_features
        from core.training.train import predict_logits

        config = config or self.config
        image_encoder = self.encoder if self.image_source == "clip" and items.image_paths is not None else None
        precomputed = (config.embeddings, config.embedding_ids) if self.image_source == "precomputed" else None
        features = build_features(items, self.encoder, image_encoder=image_encoder, use_text=self.config.use_text,
                                  precomputed=precomputed, allow_missing=True, features_dir=config.features,
                                  lexical=self.lexical)
        expected = [tuple(s) for s in self.model.slices]
        if [tuple(s) for s in features.slices] != expected:
            features = align_features(features, expected)
        logits = predict_logits(self.model, features.matrix, features.mask, lexical=features.lexical)
        return calibrated_probabilities(logits, self.temperature)

    def answers(self, ids: np.ndarray, probs: np.ndarray, top_k: int = 5, review_risk: float = DEFAULT_REVIEW_RISK) -> pd.DataFrame:
        """id, pred_1..k (paths), prob_1..k (calibrated), crm_pred_1, risk (expected tree distance of
        pred_1, METHOD.md's R_k) and review (risk above `review_risk`)."""
        k = min(top_k, probs.shape[1])
        order = ranked_predictions(probs, k)
        names = np.array(self.class_names, dtype=object)
        frame = pd.DataFrame({"id": np.asarray(ids, dtype=object)})
        for r in range(k):
            frame[f"pred_{r + 1}"] = names[order[:, r]]
            frame[f"prob_{r + 1}"] = probs[np.arange(len(probs)), order[:, r]]
        if self.distance is not None:
            from core.training.experiment import answer_risk

            frame["crm_pred_1"] = names[crm_rerank(probs, self.distance)[:, 0]]
            frame["risk"] = answer_risk(probs, order[:, 0], self.distance)
            frame["review"] = frame["risk"] > review_risk
        return frame

    def predict_frame(self, frame: pd.DataFrame, config: ExperimentConfig | None = None, *, top_k: int = 5,
                      review_risk: float = DEFAULT_REVIEW_RISK, offset: int = 0) -> pd.DataFrame:
        config = config or self.config
        self.check_input(config, list(frame.columns))
        items = items_from_frame(frame, config, self.config.use_text, offset)
        return self.answers(items.ids, self.probabilities(items, config), top_k, review_risk)

    def predict_file(self, out: str | Path, config: ExperimentConfig, *, top_k: int = 5,
                     review_risk: float = DEFAULT_REVIEW_RISK, chunk_rows: int = 20_000,
                     progress: Callable[[int], None] | None = None) -> dict:
        """Stream `config.data` in chunks into `out` (.parquet, .csv or .jsonl), written to a temporary
        file that replaces `out` only when every row is done. Returns counts for the summary."""
        out = output_path(out)
        chunks = iter_table(config.data, config.column_names, chunk_rows, config.max_rows)
        first = next(chunks)  # reads the header: bad columns are refused before anything is written
        self.check_input(config, list(first.columns))

        def answered() -> Iterator[pd.DataFrame]:
            offset = 0
            for chunk in itertools.chain([first], chunks):
                yield self.predict_frame(chunk, config, top_k=top_k, review_risk=review_risk, offset=offset)
                offset += len(chunk)

        return write_answers(out, answered(), progress)


def output_path(out: str | Path) -> Path:
    """`out` as a Path, refused unless it names a format `predict` writes."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}; got {out.name}")
    return out


def write_answers(out: Path, frames: Iterable[pd.DataFrame], progress: Callable[[int], None] | None = None) -> dict:
    """Write answer frames, in order, to a temporary file that replaces `out` only when all are written
    (an interrupted run leaves the previous file). Shared by the one-process and the Ray Data paths."""
    rows = flagged = 0
    with files.atomic_path(out) as tmp, TableWriter(tmp, out.suffix.lower()) as writer:
        for result in frames:
            writer.write(result)
            rows += len(result)
            flagged += int(result["review"].sum()) if "review" in result else 0
            if progress:
                progress(len(result))
    return {"rows": rows, "review": flagged, "out": str(out)}


def items_from_frame(frame: pd.DataFrame, config: ExperimentConfig, use_text: bool = True, offset: int = 0) -> Items:
    """The featurisable part of a product table, read with the same rules as training."""
    ids = item_ids(frame, config.id_column, offset).to_numpy()
    texts = compose_texts(frame, config.text_columns).tolist() if use_text else [""] * len(frame)
    images = resolve_image_paths(frame[config.image_column], config.image_dir, config.image_pattern) \
        if config.image_column and config.image_column in frame else None
    return Items(ids, texts, images)


def align_features(features: object, expected: list[tuple[str, int, int]]) -> object:
    """Lay features out as the model expects: a modality the model knows but the input lacks becomes
    zeros with mask False (the model was trained to handle a missing modality)."""
    from core.data.tables import Features

    n = len(features.matrix)
    have = {name: (a, b) for name, a, b in features.slices}
    matrix = np.zeros((n, expected[-1][2] if expected else 0), dtype=np.float32)
    mask = np.zeros((n, len(expected)), dtype=bool)
    for m, (name, a, b) in enumerate(expected):
        if name in have:
            src = have[name]
            if src[1] - src[0] != b - a:
                raise DataError(f"the {name} features have {src[1] - src[0]} dimensions; the model expects {b - a}")
            matrix[:, a:b] = features.matrix[:, src[0]:src[1]]
            mask[:, m] = features.mask[:, [n_ for n_, _, _ in features.slices].index(name)]
    return Features(matrix, mask, expected, features.notes, features.lexical)


class TableWriter:
    """Appends frames to one .parquet, .csv (formula-safe) or .jsonl file."""

    def __init__(self, path: Path, suffix: str) -> None:
        self.path, self.suffix, self.parquet, self.rows = path, suffix, None, 0

    def __enter__(self) -> TableWriter:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.path, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
        elif self.suffix == ".csv":
            with open(self.path, "w" if self.rows == 0 else "a", encoding="utf-8", newline="") as fh:
                write_csv(frame, fh, header=self.rows == 0)
        else:
            with open(self.path, "w" if self.rows == 0 else "a", encoding="utf-8") as fh:
                frame.to_json(fh, orient="records", lines=True, force_ascii=False)
                if not frame.empty:
                    fh.write("\n")
        self.rows += len(frame)

    def __exit__(self, *exc: object) -> None:
        if self.parquet is not None:
            self.parquet.close()
