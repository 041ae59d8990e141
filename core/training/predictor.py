"""A trained run as a categorizer of new products: `Predictor.load(run_dir)` rebuilds the encoder the
run used (pinned by identity), the feature layout, the model with its hyperparameters, the class
paths, the taxonomy and the calibration temperature; `predict_file` streams a table through it."""

from __future__ import annotations

import functools
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
from core.errors import SettingError
from core.evaluation import selective
from core.evaluation.crm import answer_risk, crm_rerank
from core.evaluation.metrics import ranked_predictions
from core.evaluation.registry import TOP_K
from core.runs import store as runs
from core.settings import DEFAULT_REVIEW_RISK, ExperimentConfig
from core.taxonomy.tree import DENSE_DISTANCE_LIMIT, Taxonomy
from core.training import finetune
from core.training.calibration import calibrated_probabilities

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
        device); every file is checked before anything is built, and RunError / EncoderUnavailable say
        what is missing or damaged."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        run = runs.Run.open(run_dir)
        state = run.state
        if state != "done":
            raise runs.RunError(f"run {run.name} is {state}; only a finished (done) run can categorize products")
        if run.kind != "trained":
            raise runs.RunError(f"run {run.name} holds imported predictions; it has no model to categorize with")
        info, names, nodes, taxonomy = check_model_files(run)
        try:
            config = run.experiment_config()
            config.check_settings()  # each setting of its declared type, as when the run was made
        except (TypeError, ValueError) as exc:
            raise runs.RunError(f"{run.name}: config.json is damaged ({str(exc).splitlines()[0]})") from None
        choice = encoder_from_identity(str(info["encoder_identity"]), clip_checkpoint or config.clip_checkpoint, device)
        if info.get("finetuned_encoder"):  # the run trained its encoder: its weights replace the frozen ones
            choice = finetune.load_tuned(choice, run.path / finetune.ENCODER_FILE, run.name, device)
        # built on "meta" (shapes only), the loaded tensors become the weights (assign): one copy in memory, not a
        # random initialisation beside the file's (340 MB for 5 members' lexical tables)
        model = build_model(info, "meta")
        dtypes = {k: v.dtype for k, v in model.state_dict().items()}
        try:
            weights = {k: v.to(dtypes.get(k, v.dtype)) for k, v in load_file(str(run.path / "model.safetensors")).items()}
            model.load_state_dict(weights, assign=True)
        except (OSError, RuntimeError, SafetensorError) as exc:
            raise runs.RunError(f"{run.name}: model.safetensors does not load ({str(exc).splitlines()[0]})") from None
        if not all(bool(w.isfinite().all()) for w in weights.values()):
            raise runs.RunError(f"{run.name}: model.safetensors holds NaN or infinite weights")
        model.to(device).eval()
        distance = taxonomy.distance_matrix(nodes) if len(nodes) <= DENSE_DISTANCE_LIMIT else None
        return cls(run, config, model, float(info["temperature"]), names, taxonomy, distance, choice, info.get("image_source"),
                   lexical_spec(info))

    @property
    def encoder(self) -> Encoder:
        return self.encoder_choice.encoder

    def input_config(self, **given: object) -> ExperimentConfig:
        """The run's own input settings, overridden by what the user gave (None = keep the run's)."""
        unknown = set(given) - set(INPUT_SETTINGS)
        if unknown:
            raise SettingError(f"predict cannot change {', '.join(sorted(unknown))}")
        if given.get("features") and isinstance(self.encoder, finetune.TunedEncoder):
            raise SettingError("this run fine-tuned its text encoder, and a features folder holds frozen vectors; "
                               "categorize from the table without --features")
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
        from core.data.features import build_features
        from core.training.train import predict_logits

        config = config or self.config
        clip_images = self.image_source == "clip" and items.image_paths is not None
        image_encoder = finetune.image_encoder(self.encoder) if clip_images else None
        precomputed = (config.embeddings, config.embedding_ids) if self.image_source == "precomputed" else None
        features = build_features(items, self.encoder, image_encoder=image_encoder, use_text=self.config.use_text,
                                  precomputed=precomputed, allow_missing=True, features_dir=config.features,
                                  lexical=self.lexical)
        expected = [tuple(s) for s in self.model.slices]
        if [tuple(s) for s in features.slices] != expected:
            features = align_features(features, expected)
        logits = predict_logits(self.model, features.matrix, features.mask, lexical=features.lexical)
        return calibrated_probabilities(logits, self.temperature)

    @functools.cached_property
    def class_tree(self) -> selective.ClassTree:
        return selective.class_tree(self.taxonomy, self.run.class_nodes())

    @functools.cached_property
    def node_paths(self) -> np.ndarray:
        """Every taxonomy node's path, and "" last (index -1: the virtual root, no category)."""
        return np.array([*(self.taxonomy.path_str(i) for i in range(len(self.taxonomy))), ""], dtype=object)

    def guarantee(self, target: float, confidence: float) -> selective.Threshold:
        """The climbing threshold for `target` accuracy at `confidence`, refitted from the run's stored
        validation climbs (any target, no training data needed); SelectiveError says what is wrong."""
        selective.check_target(target, confidence)
        return selective.fit_threshold(selective.stored_climbs(self.run, "val"), target, confidence)

    def answers(self, ids: np.ndarray, probs: np.ndarray, top_k: int = TOP_K, review_risk: float = DEFAULT_REVIEW_RISK,
                theta: float | None = None) -> pd.DataFrame:
        """id, pred_1..k (paths), prob_1..k (calibrated), crm_pred_1, risk (expected tree distance of
        pred_1, METHOD.md's R_k) and review (risk above `review_risk`); with a climbing threshold
        `theta` (see `guarantee`) also answer (the backed-off node's path, "" for no category),
        answer_prob (its subtree probability) and answer_depth (0 for no category)."""
        k = min(top_k, probs.shape[1])
        order = ranked_predictions(probs, k)
        names = np.array(self.class_names, dtype=object)
        frame = pd.DataFrame({"id": np.asarray(ids, dtype=object)})
        for r in range(k):
            frame[f"pred_{r + 1}"] = names[order[:, r]]
            frame[f"prob_{r + 1}"] = probs[np.arange(len(probs)), order[:, r]]
        if self.distance is not None:
            frame["crm_pred_1"] = names[crm_rerank(probs, self.distance)[:, 0]]
            frame["risk"] = answer_risk(probs, order[:, 0], self.distance)
            frame["review"] = frame["risk"] > review_risk
        if theta is not None:
            answered = selective.answers(selective.climbs(probs, self.class_tree), theta)
            frame["answer"] = self.node_paths[answered.node]
            frame["answer_prob"] = answered.prob
            frame["answer_depth"] = answered.depth
        return frame

    def predict_frame(self, frame: pd.DataFrame, config: ExperimentConfig | None = None, *, top_k: int = TOP_K,
                      review_risk: float = DEFAULT_REVIEW_RISK, offset: int = 0, theta: float | None = None) -> pd.DataFrame:
        config = config or self.config
        self.check_input(config, list(frame.columns))
        items = items_from_frame(frame, config, self.config.use_text, offset)
        return self.answers(items.ids, self.probabilities(items, config), top_k, review_risk, theta)

    def predict_file(self, out: str | Path, config: ExperimentConfig, *, top_k: int = TOP_K,
                     review_risk: float = DEFAULT_REVIEW_RISK, theta: float | None = None, chunk_rows: int = 20_000,
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
                yield self.predict_frame(chunk, config, top_k=top_k, review_risk=review_risk, offset=offset, theta=theta)
                offset += len(chunk)

        return write_answers(out, answered(), progress)


def alternatives(taxonomy: Taxonomy, answer: pd.Series) -> pd.DataFrame:
    """One item's ranked answers (a row of `Predictor.answers`) as rows: rank, category, calibrated
    probability and the tree distance from the first answer, i.e. how far off each runner-up would be."""
    ranks = sorted(int(c.removeprefix("pred_")) for c in answer.index if c.startswith("pred_") and c[5:].isdigit())
    top = [answer[f"pred_{r}"] for r in ranks]
    nodes = [taxonomy.resolve(p) for p in top]
    return pd.DataFrame({"rank": ranks, "category": top, "probability": [float(answer[f"prob_{r}"]) for r in ranks],
                         "tree_distance": taxonomy.distance([nodes[0]] * len(nodes), nodes).astype(int)})


IMAGE_SOURCES = (None, "precomputed", "clip")


def build_model(info: dict, device: str | None = None) -> object:
    """The FusionClassifier, or Ensemble of them, model.json describes (on "meta": shapes only, no memory);
    a model.json without "members" (written before ensembles) is one model."""
    import torch

    from core.training.model import Ensemble, FusionClassifier

    with torch.device(device or "cpu"):
        members = [FusionClassifier([tuple(s) for s in info["slices"]], info["n_classes"], info["hidden"], info["fusion"],
                                    info["dropout"], info.get("aux_dim", 0), lexical=lexical_spec(info))
                   for _ in range(info.get("members", 1))]
        return members[0] if len(members) == 1 else Ensemble(members)


def lexical_spec(info: dict) -> LexicalSpec | None:
    """The run's n-gram hashing from model.json (None: a model without the lexical modality)."""
    return LexicalSpec.from_dict(info["lexical"]) if info.get("lexical") else None


def _check_info(info: dict) -> str | None:
    """What is wrong with model.json's fields (None when they describe a buildable model)."""
    from core import settings

    lexical = info.get("lexical")
    if lexical is not None:
        try:
            spec = LexicalSpec.from_dict(lexical)
        except (TypeError, ValueError, AttributeError):
            return "its lexical hashing is not a set of whole numbers"
        if not (0 < spec.buckets <= 2**24 and 0 < spec.dim <= 1024):
            return f"its lexical hashing {lexical} is out of range"
    slices = info.get("slices")
    if not isinstance(slices, list) or not (slices or lexical) or not all(
            isinstance(s, list) and len(s) == 3 and isinstance(s[0], str) and all(type(v) is int for v in s[1:]) for s in slices):
        return "its slices are not a list of [modality, start, end]"
    ends = [0] + [s[2] for s in slices]
    if any(s[1] != ends[i] or not 0 < s[2] - s[1] <= 65_536 for i, s in enumerate(slices)) or \
            len({s[0] for s in slices}) != len(slices) or not {s[0] for s in slices} <= {"text", "image"}:
        return f"its slices {slices} are not consecutive text/image column ranges"
    if info.get("finetuned_encoder") not in (None, finetune.ENCODER_FILE) or \
            (info.get("finetuned_encoder") and not any(s[0] == "text" for s in slices)):
        return f"its finetuned_encoder {info.get('finetuned_encoder')!r} is not {finetune.ENCODER_FILE!r} beside a text slice"
    has_image = any(s[0] == "image" for s in slices)
    if info.get("image_source") not in IMAGE_SOURCES or (info.get("image_source") is None) == has_image:
        return f"its image_source {info.get('image_source')!r} does not match its slices"
    for name, kind in (("n_classes", int), ("aux_dim", int), ("members", int), ("temperature", float), ("encoder_identity", str)):
        if name not in info and name not in ("aux_dim", "members"):
            return f"it lacks {name}"
        value = info.get(name, 0)
        if not isinstance(value, kind if kind is not float else (int, float)) or isinstance(value, bool):
            return f"its {name} is {value!r}, not a {kind.__name__}"
    if info["n_classes"] < 2 or info.get("aux_dim", 0) < 0 or not np.isfinite(info["temperature"]) or info["temperature"] <= 0:
        return "its n_classes, aux_dim or temperature is out of range"
    if not 1 <= info.get("members", 1) <= settings.get("members").hi or (info.get("members", 1) > 1 and info.get("finetuned_encoder")):
        return f"its members {info.get('members')!r} is out of range (one model with a fine-tuned encoder)"
    try:
        for name in ("hidden", "fusion", "dropout"):
            info[name] = settings.get(name).check(info.get(name))
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def check_model_files(run: runs.Run) -> tuple[dict, list[str], list[int], Taxonomy]:
    """(model.json, class names, class nodes, taxonomy) of a trained run after checking that they agree
    with each other and with model.safetensors' header (read without loading the weights); RunError
    names the first damaged file."""
    from safetensors import SafetensorError, safe_open

    info = run.model_info()
    fault = _check_info(info)
    if fault:
        raise runs.RunError(f"{run.name}: model.json is damaged ({fault})")
    names = run.classes()
    try:
        taxonomy = run.taxonomy()
    except (TypeError, ValueError, IndexError, KeyError) as exc:  # lists of the wrong things (TaxonomyError is a ValueError)
        raise runs.RunError(f"{run.name}: taxonomy.json is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    try:
        nodes = run.class_nodes()
    except (TypeError, ValueError):
        raise runs.RunError(f"{run.name}: classes.json's nodes are not taxonomy node numbers") from None
    if len(names) != info["n_classes"] or len(nodes) != info["n_classes"]:
        raise runs.RunError(f"{run.name}: classes.json lists {len(names)} classes and {len(nodes)} nodes; the model has "
                            f"{info['n_classes']} outputs")
    if not all(0 <= n < len(taxonomy) for n in nodes):
        raise runs.RunError(f"{run.name}: classes.json names taxonomy nodes outside taxonomy.json's {len(taxonomy)} nodes")
    try:
        expected = {k: tuple(v.shape) for k, v in build_model(info, "meta").state_dict().items()}
    except (ValueError, TypeError, RuntimeError) as exc:
        raise runs.RunError(f"{run.name}: model.json is damaged ({str(exc).splitlines()[0]})") from None
    try:
        with safe_open(str(run.path / "model.safetensors"), "pt") as weights:
            found = {k: tuple(weights.get_slice(k).get_shape()) for k in weights.keys()}  # noqa: SIM118 - not a dict
    except (OSError, SafetensorError) as exc:
        raise runs.RunError(f"{run.name}: model.safetensors is missing or damaged ({str(exc).splitlines()[0]})") from None
    if found != expected:
        raise runs.RunError(f"{run.name}: model.safetensors does not match model.json (other layers or sizes)")
    if info.get("finetuned_encoder") and not (run.path / finetune.ENCODER_FILE).is_file():
        raise runs.RunError(f"{run.name}: {finetune.ENCODER_FILE} is missing (the run fine-tuned its text encoder)")
    return info, names, nodes, taxonomy


def model_problems(run: runs.Run) -> list[str]:
    """Why a finished trained run cannot categorize (empty when it can): for listings, cheap."""
    if run.kind != "trained" or run.state != "done":
        return []
    try:
        check_model_files(run)
    except runs.RunError as exc:
        return [str(exc)]
    return []


def output_path(out: str | Path) -> Path:
    """`out` as a Path, refused unless it names a format `predict` writes."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise SettingError(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}; got {out.name}")
    return out


def write_answers(out: Path, frames: Iterable[pd.DataFrame], progress: Callable[[int], None] | None = None) -> dict:
    """Write answer frames, in order, to a temporary file that replaces `out` only when all are written
    (an interrupted run leaves the previous file). Shared by the one-process and the Ray Data paths."""
    rows = flagged = at_class = no_category = 0
    answered = False
    with files.atomic_path(out) as tmp, TableWriter(tmp, out.suffix.lower()) as writer:
        for result in scored(frames, out):
            writer.write(result)
            rows += len(result)
            flagged += int(result["review"].sum()) if "review" in result else 0
            if "answer" in result:
                answered = True
                at_class += int((result["answer"] == result["pred_1"]).sum())
                no_category += int((result["answer_depth"] == 0).sum())
            if progress:
                progress(len(result))
    counts = {"rows": rows, "review": flagged, "out": str(out)}
    if answered:  # the top-1 class kept as the answer: a leaf, in a run whose classes are leaves
        counts |= {"leaf_rate": at_class / rows if rows else None, "no_category": no_category}
    return counts


def scored(frames: Iterable[pd.DataFrame], out: Path) -> Iterator[pd.DataFrame]:
    """`frames`, with an OSError raised while producing them (reading the input, the embedding cache)
    told apart from a failure to save `out`, which is what atomic_path reports for OSErrors."""
    iterator = iter(frames)
    while True:
        try:
            frame = next(iterator)
        except StopIteration:
            return
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise DataError(f"categorizing stopped, nothing was written to {out}: {exc.strerror or exc}{where}") from None
        yield frame


def items_from_frame(frame: pd.DataFrame, config: ExperimentConfig, use_text: bool = True, offset: int = 0) -> Items:
    """The featurisable part of a product table, read with the same rules as training."""
    ids = item_ids(frame, config.id_column, offset).to_numpy()
    texts = compose_texts(frame, config.text_columns).tolist() if use_text else [""] * len(frame)
    images = resolve_image_paths(frame[config.image_column], config.image_dir, config.image_pattern) \
        if config.image_column and config.image_column in frame else None
    return Items(ids, texts, images)


def with_texts(answers: pd.DataFrame, source: pd.DataFrame, config: ExperimentConfig) -> pd.DataFrame:
    """The answers with each product's text (its text columns joined, as the model read them) beside
    its id, so a reviewer sees what was categorized; joined on the id (row numbers when there is none)."""
    items = items_from_frame(source, config)
    texts = pd.Series(items.texts, index=pd.Index(items.ids).astype(str))
    out = answers.copy()
    out.insert(1, "text", out["id"].astype(str).map(texts[~texts.index.duplicated()]).to_numpy())
    return out


def align_features(features: object, expected: list[tuple[str, int, int]]) -> object:
    """Lay features out as the model expects: a modality the model knows but the input lacks becomes
    zeros with mask False (the model was trained to handle a missing modality)."""
    from core.data.features import Features

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
