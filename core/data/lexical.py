"""The lexical text modality (METHOD.md "Product features"): lower-cased word n-grams and character
n-grams of each word (space-padded, so word boundaries count), hashed into B buckets. Each item becomes a
sparse row of bucket weights that the model sums into a learned `EmbeddingBag`: by default TF-IDF weights
(sublinear tf here, the idf fitted on the training items and kept in the model, rows l2-normalised there), the
weighting that lets TF-IDF + a linear SVM beat a plain mean of n-gram vectors (fastText) on small catalogs;
or the plain mean (`weighting="mean"`).

The hashing is scikit-learn's `HashingVectorizer` (C murmurhash3, seed 0): the same title lands in the
same buckets in every process and on every machine, so the spec saved in `model.json` is all `predict`
needs. Nothing here imports a sentence or CLIP encoder: a lexical-only run is the fast path."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from scipy import sparse

from core import settings

WORD_TOKENS = r"(?u)\b\w+\b"  # keeps one-character tokens: sizes and units ("5 kg") matter in catalogs


def _declared(name: str) -> object:
    """A field's default is the declared setting's (core/settings.py), never restated here."""
    return field(default=settings.get(f"lexical_{name}").default)


WEIGHTINGS = settings.LEXICAL_WEIGHTINGS
# what a model.json written before a field existed meant by its absence
BEFORE_FIELD = {"weighting": "mean", "wide": False}


@dataclass(frozen=True)
class LexicalSpec:
    """The hashing and weighting of the n-grams, and whether the model has the wide path; part of the saved
    model (a different spec puts n-grams in other buckets or weighs them otherwise)."""

    buckets: int = _declared("buckets")
    dim: int = _declared("dim")
    word_max: int = _declared("word_max")  # word n-grams 1..word_max
    char_min: int = _declared("char_min")
    char_max: int = _declared("char_max")
    weighting: str = _declared("weighting")  # "tfidf" or "mean"
    wide: bool = _declared("wide")  # a linear path from the bag straight to the class scores

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LexicalSpec:
        data = BEFORE_FIELD | dict(data)
        if data["weighting"] not in WEIGHTINGS or not isinstance(data["wide"], bool):
            raise ValueError(f"unknown lexical weighting {data['weighting']!r} or wide {data['wide']!r}")
        return cls(**{k: (v if k in BEFORE_FIELD else int(v)) for k, v in data.items()})

    @classmethod
    def from_config(cls, config: object) -> LexicalSpec | None:
        """The spec an ExperimentConfig declares, or None when the lexical modality is off."""
        if not (config.lexical and config.use_text):
            return None
        return cls(**{f.name: getattr(config, f"lexical_{f.name}") for f in fields(cls)})

    @property
    def tfidf(self) -> bool:
        return self.weighting == "tfidf"


@functools.lru_cache(maxsize=8)
def _vectorizers(spec: LexicalSpec) -> tuple:
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {"n_features": spec.buckets, "alternate_sign": False, "norm": None, "lowercase": True, "dtype": np.float32}
    words = HashingVectorizer(analyzer="word", ngram_range=(1, spec.word_max), token_pattern=WORD_TOKENS, **common)
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(spec.char_min, spec.char_max), **common)
    return words, chars


def ngrams(text: str, spec: LexicalSpec) -> list[str]:
    """The n-grams of one text, words first (what `encode` hashes; for tests and explanations)."""
    words, chars = _vectorizers(spec)
    return list(words.build_analyzer()(text)) + list(chars.build_analyzer()(text))


def encode(texts: Sequence[str], spec: LexicalSpec) -> sparse.csr_matrix:
    """(N, buckets) float32 CSR of n-gram counts c per bucket: 1 + ln c under TF-IDF weighting (sublinear tf;
    the model multiplies by the idf and l2-normalises), else each non-empty row scaled to sum 1 (so the
    EmbeddingBag's weighted sum is the mean over the item's n-grams). An empty text is an empty row."""
    words, chars = _vectorizers(spec)
    texts = [str(t) for t in texts]
    counts = (words.transform(texts) + chars.transform(texts)).tocsr()
    counts.sum_duplicates()
    if spec.tfidf:
        counts.data = 1.0 + np.log(counts.data)
        return sparse.csr_matrix(counts, dtype=np.float32)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    out = sparse.diags(scale.astype(np.float32)) @ counts
    return sparse.csr_matrix(out, dtype=np.float32)


@dataclass
class LexicalFeatures:
    """The lexical rows of a feature set and the spec that hashed them."""

    spec: LexicalSpec
    rows: sparse.csr_matrix  # (N, buckets)

    def __len__(self) -> int:
        return self.rows.shape[0]

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices, offsets, weights) of the given rows, the EmbeddingBag's sparse input (never densified)."""
        part = self.rows[np.asarray(rows)]
        return part.indices.astype(np.int64), part.indptr[:-1].astype(np.int64), part.data.astype(np.float32)


def fit_idf(rows: sparse.csr_matrix) -> np.ndarray:
    """(buckets,) float32 smoothed idf of the given (training) rows, ln((1 + n) / (1 + df)) + 1: scikit-learn's
    TfidfTransformer, so a bucket no training item has gets the largest weight, not an infinite one."""
    from sklearn.feature_extraction.text import TfidfTransformer

    return TfidfTransformer(sublinear_tf=True).fit(rows).idf_.astype(np.float32)


def lexical_features(texts: Sequence[str], spec: LexicalSpec) -> LexicalFeatures:
    return LexicalFeatures(spec, encode(texts, spec))
