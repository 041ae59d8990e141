"""The lexical text modality (METHOD.md "Product features"): lower-cased word n-grams and character
n-grams of each word (space-padded, so word boundaries count), hashed into B buckets. Each item becomes a
sparse row of n-gram weights summing to 1, which the model averages into a learned `EmbeddingBag`.

The hashing is scikit-learn's `HashingVectorizer` (C murmurhash3, seed 0): the same title lands in the
same buckets in every process and on every machine, so the spec saved in `model.json` is all `predict`
needs. Nothing here imports a sentence or CLIP encoder: a lexical-only run is the fast path."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse

WORD_TOKENS = r"(?u)\b\w+\b"  # keeps one-character tokens: sizes and units ("5 kg") matter in catalogs


@dataclass(frozen=True)
class LexicalSpec:
    """The hashing parameters; part of the saved model (a different spec puts n-grams in other buckets)."""

    buckets: int = 2**18
    dim: int = 64
    word_max: int = 2  # word n-grams 1..word_max
    char_min: int = 3
    char_max: int = 5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LexicalSpec:
        return cls(**{k: int(v) for k, v in data.items()})

    @classmethod
    def from_config(cls, config: object) -> LexicalSpec | None:
        """The spec an ExperimentConfig declares, or None when the lexical modality is off."""
        if not (config.lexical and config.use_text):
            return None
        return cls(config.lexical_buckets, config.lexical_dim, config.lexical_word_max, config.lexical_char_min,
                   config.lexical_char_max)


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
    """(N, buckets) float32 CSR: n-gram counts per bucket, each non-empty row scaled to sum 1 (so the
    EmbeddingBag's weighted sum is the mean over the item's n-grams). An empty text is an empty row."""
    words, chars = _vectorizers(spec)
    texts = [str(t) for t in texts]
    counts = (words.transform(texts) + chars.transform(texts)).tocsr()
    counts.sum_duplicates()
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


def lexical_features(texts: Sequence[str], spec: LexicalSpec) -> LexicalFeatures:
    return LexicalFeatures(spec, encode(texts, spec))
