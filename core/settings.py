"""Every setting of an experiment, declared once: type, group, choices, bounds, default and help.

`ExperimentConfig` is the one dataclass that holds a run's settings; each field carries its
declaration in `field(metadata=...)`. The CLI builds its arguments from it (`add_arguments`), the
app builds its widgets from it (`pages/shared.py`), and `validate` checks any config against it, so
a choice list, a bound or a default is written here and nowhere else."""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import SettingError
from core.labels import kinds
from core.taxonomy.formats import FORMATS

GROUPS = {
    "data": "Data",
    "encoder": "Encoder",
    "label": "Label representation",
    "training": "Training",
    "model": "Model",
    "selective": "Guaranteed accuracy",
}
TARGET_KINDS = {key: kind.label for key, kind in kinds.TARGET_KINDS.items()}  # the registry in core/labels/kinds.py
ENCODERS = {
    "auto": "Auto (CLIP if its weights are on disk, else MiniLM)",
    "minilm": "MiniLM (bundled, offline)",
    "clip": "CLIP (needs local weights)",
    "clip-random": "CLIP with random weights (tests and timing only)",
    "none": "None (lexical n-grams only: the fast path for huge catalogs)",
}
TEMPLATES = {
    "path": "{path}",
    "distinct": "{name}, with its parents where the name repeats",
    "name": "{name}",
    "photo": "a photo of {name}, a kind of {parent}",
}
DEVICES = {"auto": "Auto (CUDA when present, else CPU)", "cpu": "CPU", "cuda": "CUDA GPU"}
AUX_CODES = {"none": "None", "taxonomy": "Taxonomy levels", "clusters": "Embedding clusters (k-means)"}
# `predict` flags an answer for review when its expected tree distance (METHOD.md's R_k under the
# calibrated probabilities) is above this: half a level of expected error (README: "Categorizing").
DEFAULT_REVIEW_RISK = 0.5
DEFAULT_FOLDS = 5  # K of a K-fold audit (`audit`, the Training page): each product scored by a model trained on the rest
FUSIONS = {"concat": "Concatenate modalities", "gated": "Learned gate"}
LEXICAL_WEIGHTINGS = {"tfidf": "TF-IDF (sublinear tf, idf of the training items, l2-normalised)",
                      "mean": "Mean of the n-gram vectors (fastText)"}


def setting(default: Any, help: str, group: str, *, choices: dict[str, str] | None = None, lo: float | None = None,
            hi: float | None = None, lo_open: bool = False, hi_open: bool = False, open_choices: bool = False, flag: str | None = None,
            cli: bool = True, step: float | None = None, label: str | None = None) -> Any:
    """A dataclass field carrying its declaration. `choices` maps each value to a label for people;
    `open_choices` also admits other values (a template may be a format string); `lo`/`hi` bound
    numbers (`lo_open`/`hi_open`: strictly inside); `flag` overrides the CLI flag; `cli=False` keeps a
    setting out of the command line (set by the program, e.g. the data path of an app upload)."""
    meta = {"help": help, "group": group, "choices": choices, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
            "open_choices": open_choices, "flag": flag, "cli": cli, "step": step, "label": label}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    """A read-only view of one declared setting."""

    name: str
    type: Any  # the base type: str, int, float, bool or list
    optional: bool
    default: Any
    help: str
    group: str
    choices: dict[str, str] | None
    lo: float | None
    hi: float | None
    lo_open: bool
    hi_open: bool
    open_choices: bool
    flag: str
    cli: bool
    step: float | None
    label: str

    @property
    def is_list(self) -> bool:
        return self.type is list

    def bounds_text(self) -> str:
        if self.lo is None and self.hi is None:
            return ""
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = "" if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return " and ".join(p for p in (lo, hi) if p)

    def check(self, value: Any) -> Any:
        """The value converted to this setting's type, or a SettingError naming the setting and what it accepts."""
        if value is None:
            if self.optional:
                return None
            raise SettingError(f"{self.name} is required")
        if self.is_list:
            if isinstance(value, str):
                value = [value]
            return [str(v) for v in value]
        try:
            if self.type is bool:
                if isinstance(value, str):
                    value = {"true": True, "false": False, "1": True, "0": False}[value.strip().lower()]
                converted = bool(value)
            elif self.type is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                converted = int(value)
            elif self.type is float:
                converted = float(value)
            else:
                converted = str(value)
        except (TypeError, ValueError, KeyError):
            raise SettingError(f"{self.name} must be {self.type.__name__}; got {value!r}") from None
        if isinstance(converted, float) and not math.isfinite(converted):
            raise SettingError(f"{self.name} must be a finite number; got {converted}")
        if isinstance(converted, int | float) and not isinstance(converted, bool):
            too_low = self.lo is not None and (converted <= self.lo if self.lo_open else converted < self.lo)
            too_high = self.hi is not None and (converted >= self.hi if self.hi_open else converted > self.hi)
            if too_low or too_high:
                raise SettingError(f"{self.name} must be {self.bounds_text()}; got {converted:g}")
        if self.choices and not self.open_choices and converted not in self.choices:
            raise SettingError(f"{self.name} must be one of {', '.join(self.choices)}; got {converted!r}")
        return converted


@dataclass
class ExperimentConfig:
    """A run's settings. Construct with keywords; `validate()` checks every declared setting."""

    # ----- data ---------------------------------------------------------------------------------
    data: str = setting("", "product table: .csv, .tsv, .parquet or .jsonl", "data")
    label_columns: list[str] = setting([], "category path (or id) column; repeat to build the path from several "
                                       "columns, top level first", "data", flag="--label-column")
    text_columns: list[str] = setting([], "text column; repeat for more", "data", flag="--text-column")
    id_column: str | None = setting(None, "product id column (joins precomputed embeddings)", "data")
    image_column: str | None = setting(None, "column holding image file names or paths", "data")
    image_dir: str | None = setting(None, "folder the image column is relative to", "data")
    image_pattern: str = setting("{}", "file name from the image column's value, e.g. '{}.jpg'", "data")
    embeddings: str | None = setting(None, "precomputed item embeddings (.npy) used as the image modality", "data")
    embedding_ids: str | None = setting(None, "ids for the rows of --embeddings (one per line, or a one-column CSV)", "data")
    features: str | None = setting(None, "FEATURES_DIR written by `python -m core embed`: its memory-mapped "
                                   "embeddings are used instead of embedding again", "data")
    use_text: bool = setting(True, "train on the precomputed/image modality only", "data", flag="--no-text-features")
    column_names: list[str] | None = setting(None, "column names for a header-less CSV/TSV (comma-separated)", "data")
    max_rows: int | None = setting(None, "read only the first N rows", "data", lo=1)
    max_depth: int | None = setting(None, "truncate category paths to this many levels", "data", lo=1)
    taxonomy: str | None = setting(None, "taxonomy file; without it the taxonomy comes from the labels", "data")
    taxonomy_format: str | None = setting(None, "taxonomy format (detected from the content when left out)", "data",
                                          choices={f: f for f in FORMATS})
    val_fraction: float = setting(0.1, "share of items held out for validation (early stopping, calibration)", "data",
                                  lo=0.0, hi=0.5, lo_open=True)
    test_fraction: float = setting(0.2, "share of items held out for the test metrics", "data", lo=0.0, hi=0.5, lo_open=True)
    # ----- encoder ------------------------------------------------------------------------------
    encoder: str = setting("auto", "text encoder for products and category names", "encoder", choices=ENCODERS,
                           label="Text encoder")
    clip_checkpoint: str | None = setting(None, "local open_clip checkpoint file or folder", "encoder")
    device: str = setting("auto", "where encoders and training run (auto: CUDA when present)", "encoder", choices=DEVICES)
    template: str = setting("path", "category prompt: path, distinct, name, photo, or a format string with {name} {path} "
                            "{parent}", "encoder", choices=TEMPLATES, open_choices=True, label="Prompt template")
    # ----- label representation -----------------------------------------------------------------
    targets: str = setting("semantic", "label representation used as the training target", "label", choices=TARGET_KINDS,
                           label="Targets")
    alpha: float = setting(0.1, "smoothing mass moved off the true class", "label", lo=0.0, hi=1.0, step=0.01,
                          label="Smoothing mass α")
    temperature: float = setting(0.1, "semantic softmax temperature T (lower: mass on the nearest neighbours)", "label",
                                 lo=0.0, hi=100.0, lo_open=True, step=0.01, label="Temperature T")
    k: int = setting(20, "neighbours that share the smoothing mass", "label", lo=1, hi=500, label="Neighbours k")
    beta: float = setting(10.0, "tree soft-label sharpness (higher: closer to one-hot)", "label", lo=0.0, hi=100.0, step=0.5,
                         label="Tree β")
    mix: float = setting(0.5, "hybrid only: share of the smoothing mass spread by semantic similarity (1 = semantic, "
                         "0 = tree distance)", "label", lo=0.0, hi=1.0, step=0.05)
    curriculum_epochs: int = setting(0, "epochs over which the smoothing decays to one-hot (0 = off)", "label", lo=0, hi=1000,
                                     label="Curriculum epochs (0 = off)")
    curriculum_shape: str = setting("linear", "how the smoothing decays over the curriculum epochs", "label",
                                    choices=kinds.CURRICULUM_SHAPES, label="Curriculum shape")
    aux_codes: str = setting("none", "auxiliary feature-code task", "label", choices=AUX_CODES, label="Auxiliary codes")
    aux_weight: float = setting(0.5, "weight of the auxiliary code loss", "label", lo=0.0, hi=100.0, step=0.1)
    # ----- training -----------------------------------------------------------------------------
    epochs: int = setting(15, "maximum training epochs", "training", lo=1, hi=1000)
    batch_size: int = setting(64, "items per optimisation step (smaller: more, noisier steps an epoch; 64 decided on "
                              "the benchmark catalogs, BENCHMARKS.md \"Batch size\")", "training", lo=1, hi=65536)
    lr: float = setting(2e-3, "AdamW learning rate", "training", lo=0.0, hi=10.0, lo_open=True)
    ema_epochs: float = setting(0.0, "average the weights over about this many epochs: an exponential moving average of "
                                "every step's weights is what is validated and kept (0 = off, the last step's weights; "
                                "off by default: +0.1 to +0.8 top1 but milder mistakes without it, BENCHMARKS.md "
                                "\"Weight averaging\")", "training", lo=0.0, hi=100.0, step=0.5,
                                label="Weight averaging (epochs)")
    members: int = setting(5, "models trained apart (each from its own initialisation and batch order, on the same "
                           "items) that answer together with their mean probability: more accurate and steadier than "
                           "one, at this many times the training time (5 decided on the benchmark catalogs, BENCHMARKS.md "
                           "\"Ensemble members\"; 1 = a single model; fine-tuning the encoder trains one)", "training",
                           lo=1, hi=32, label="Ensemble members")
    weight_decay: float = setting(1e-4, "AdamW weight decay", "training", lo=0.0, hi=10.0)
    patience: int = setting(4, "stop after this many epochs without a better validation top-1 (0 = never)", "training",
                            lo=0, hi=1000)
    seed: int = setting(0, "random seed (split, initialisation, batches)", "training", lo=0, hi=2**31 - 1)
    finetune_encoder: bool = setting(False, "fine-tune the text encoder (MiniLM, or CLIP's text tower) end to end with the "
                                     "head under the same loss, at --encoder-lr; slow on a CPU, meant for --device cuda. "
                                     "Its vectors are never read from or written to the item cache, which holds frozen "
                                     "vectors only; it needs the text modality and a sentence encoder, not --features",
                                     "training", label="Fine-tune the text encoder")
    encoder_lr: float = setting(5e-5, "AdamW learning rate of the text encoder when fine-tuning (the head keeps --lr)",
                                "training", lo=0.0, hi=1.0, lo_open=True, step=1e-5, label="Encoder learning rate")
    # ----- model --------------------------------------------------------------------------------
    hidden: int = setting(512, "hidden width of the fusion MLP", "model", lo=1, hi=16384)
    dropout: float = setting(0.2, "dropout in the fusion MLP", "model", lo=0.0, hi=0.95, step=0.05)
    fusion: str = setting("concat", "how modalities are fused", "model", choices=FUSIONS)
    # ----- guaranteed accuracy (METHOD.md, 'Categorizing at a guaranteed accuracy') ------------------
    target_accuracy: float = setting(0.95, "answer each item at the deepest category that keeps this hierarchical "
                                     "accuracy, backing off up the tree (train reports its metrics at it too)", "selective",
                                     lo=0.0, hi=1.0, lo_open=True, hi_open=True, step=0.01, label="Target accuracy")
    confidence: float = setting(0.9, "confidence 1 - delta that the target accuracy holds on new items", "selective",
                                lo=0.0, hi=1.0, lo_open=True, hi_open=True, step=0.01, label="Confidence")
    # ----- lexical text modality (METHOD.md "Product features"; saved in model.json) --------------
    lexical: bool = setting(True, "leave out the lexical text modality (hashed word and character n-grams)", "model",
                            flag="--no-lexical", label="Lexical n-grams")
    lexical_buckets: int = setting(2**18, "hash buckets of the lexical n-grams", "model", lo=1024, hi=2**24)
    lexical_dim: int = setting(64, "width of each lexical bucket's learned vector", "model", lo=1, hi=1024)
    lexical_word_max: int = setting(2, "word n-grams from 1 to this many words", "model", lo=1, hi=4)
    lexical_char_min: int = setting(3, "shortest character n-gram of a word (space-padded)", "model", lo=1, hi=10)
    lexical_char_max: int = setting(5, "longest character n-gram of a word", "model", lo=1, hi=10)
    lexical_weighting: str = setting("tfidf", "how an item's n-grams are weighted in its lexical vector", "model",
                                     choices=LEXICAL_WEIGHTINGS)
    lexical_wide: bool = setting(False, "add a linear path from the lexical vector straight to the class scores "
                                 "(beside the fusion MLP)", "model")
    lexical_lr: float = setting(2e-3, "learning rate of the lexical bucket vectors (SparseAdam)", "training",
                                lo=0.0, hi=10.0, lo_open=True)

    def validate(self) -> None:
        """Every declared setting against its type and bounds, then the rules that tie settings together."""
        self.check_settings()
        if (self.embeddings is None) != (self.embedding_ids is None):
            raise SettingError("--embeddings and --embedding-ids go together")
        if not self.data:
            raise SettingError("data is required: the product table to read")
        if not self.label_columns or not self.text_columns:
            raise SettingError("at least one label column and one text column are needed")
        if self.val_fraction + self.test_fraction >= 1:
            raise SettingError("val_fraction + test_fraction must be below 1")
        if self.lexical_char_min > self.lexical_char_max:
            raise SettingError("lexical_char_min must not be above lexical_char_max")
        if self.encoder == "none" and self.use_text and not self.lexical:
            raise SettingError("--encoder none leaves the lexical n-grams as the only text modality; drop --no-lexical")
        if self.finetune_encoder and (problem := finetune_conflict(self)):
            raise SettingError(f"--finetune-encoder cannot be used here: {problem}")

    def check_settings(self) -> None:
        """Each declared setting against its type, choices and bounds (converted in place)."""
        for s in settings():
            object.__setattr__(self, s.name, s.check(getattr(self, s.name)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ExperimentConfig:
        """Known keys only, so a config written by an older or newer version still loads."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)


def finetune_conflict(config: ExperimentConfig) -> str | None:
    """What keeps a run from fine-tuning its text encoder (None when nothing does): the tuned vectors
    change every step, so they can come neither from a features folder nor from the item cache."""
    if config.features:
        return ("--features reads frozen vectors from a features folder, and a fine-tuned encoder embeds the text "
                "anew as it trains; drop --features (or --finetune-encoder)")
    if config.encoder == "none":
        return "--encoder none has no sentence encoder to train; choose auto, minilm or clip"
    if not config.use_text:
        return "--no-text-features leaves the text out, and the text encoder is what fine-tuning trains"
    return None


def _base_type(hint: Any) -> tuple[Any, bool]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    base = args[0] if optional and args else hint
    origin = typing.get_origin(base)
    return (list if origin is list else base), optional


def settings(groups: Iterable[str] | None = None) -> list[Setting]:
    """The declared settings, in declaration order (optionally only some groups)."""
    hints = typing.get_type_hints(ExperimentConfig)
    out = []
    for f in dataclasses.fields(ExperimentConfig):
        m = f.metadata
        if groups is not None and m["group"] not in groups:
            continue
        base, optional = _base_type(hints[f.name])
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out.append(Setting(f.name, base, optional, default, m["help"], m["group"], m["choices"], m["lo"], m["hi"],
                           m["lo_open"], m["hi_open"], m["open_choices"], m["flag"] or "--" + f.name.replace("_", "-"), m["cli"], m["step"],
                           m["label"] or f.name.replace("_", " ").capitalize()))
    return out


def representation_settings() -> tuple[str, ...]:
    """The target kind and every setting some kind reads (core/labels/kinds.py), in declaration order:
    what the Smoothing page tunes and the Training page carries over."""
    shaping = kinds.shaping_settings()
    return ("targets", *(s.name for s in settings(["label"]) if s.name in shaping))


def get(name: str) -> Setting:
    for s in settings():
        if s.name == name:
            return s
    raise KeyError(name)


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in settings()}


def add_arguments(parser: argparse.ArgumentParser, groups: Sequence[str] = tuple(GROUPS), *,
                  required: Sequence[str] = (), skip: Sequence[str] = ()) -> None:
    """argparse arguments for the declared settings of `groups`, in an argument group each. Defaults
    are left as None so `config_from_args` can tell what the user gave from what they did not."""
    for group in groups:
        arg_group = parser.add_argument_group(GROUPS[group])
        for s in settings([group]):
            if not s.cli or s.name in skip:
                continue
            kw: dict[str, Any] = {"dest": s.name, "default": None}
            help_text = s.help
            if s.type is bool:
                kw["action"] = "store_false" if s.default else "store_true"
                kw["default"] = None
            elif s.is_list and s.name == "column_names":
                kw["metavar"] = "A,B,C"
            elif s.is_list:
                kw["action"] = "append"
                kw["metavar"] = "COL"
            else:
                kw["type"] = s.type
                if s.choices and not s.open_choices:
                    kw["choices"] = list(s.choices)
                if s.default is not None:
                    help_text += f" (default {s.default})"
                if s.bounds_text():
                    help_text += f"; {s.bounds_text()}"
            kw["required"] = s.name in required
            arg_group.add_argument(s.flag, help=help_text, **kw)


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a CUDA device is present, else 'cpu'; 'cuda' without one is refused."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SettingError("--device cuda was asked for, but no CUDA device is available here; use --device cpu or auto")
    return device


def config_from_args(args: argparse.Namespace, base: ExperimentConfig | None = None, *,
                     whole: bool = True) -> ExperimentConfig:
    """An ExperimentConfig from parsed arguments: what the user gave over `base` (or the defaults).
    `whole=False` checks each setting but not the rules of a training run (for `embed`, which has no labels)."""
    values = (base or ExperimentConfig()).to_dict()
    for s in settings():
        given = getattr(args, s.name, None)
        if given is None:
            continue
        if s.name == "column_names":
            given = [c.strip() for c in str(given).split(",") if c.strip()]
        values[s.name] = given
    config = ExperimentConfig.from_dict(values)
    if whole:
        config.validate()
    else:
        config.check_settings()
    return config
