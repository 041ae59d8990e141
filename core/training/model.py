"""The multimodal categorizer: each modality projected, fused (concatenation or a learned gate),
an MLP, a C-way head, and an optional auxiliary head for the feature-similarity codes. The lexical
modality is a learned EmbeddingBag over hashed n-gram buckets, fed sparse (indices, offsets, weights): under
TF-IDF weighting the model holds the idf (a buffer, saved with the weights) and l2-normalises each item's
weights; with the wide path the bag vector also goes straight to the class scores through one linear layer,
so the model contains a linear n-gram classifier beside the fusion MLP. An Ensemble holds several of them,
trained from different initialisations, and scores an item by the log of their mean probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from core.data.lexical import LexicalSpec

Lexical = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # EmbeddingBag input: indices, offsets, per-index weights
LEXICAL_INIT_STD = 0.1  # large enough that a mean of ~50 bucket vectors stays well above LayerNorm's eps


class FusionClassifier(nn.Module):
    """Input is one (B, D_total) tensor whose column slices are the dense modalities, a (B, M) mask, and
    with `lexical` (its spec) the sparse lexical rows (an item without n-grams counts as missing);
    a missing modality contributes nothing (its projection is zeroed) and its mask bit is an input."""

    def __init__(self, slices: Sequence[tuple[str, int, int]], n_classes: int, hidden: int = 512,
                 fusion: str = "concat", dropout: float = 0.2, aux_dim: int = 0,
                 lexical: LexicalSpec | None = None) -> None:
        super().__init__()
        if fusion not in ("concat", "gated"):
            raise ValueError(f"fusion must be 'concat' or 'gated'; got {fusion!r}")
        self.slices = [(name, int(a), int(b)) for name, a, b in slices]
        self.fusion = fusion
        self.project = nn.ModuleList(nn.Sequential(nn.LayerNorm(b - a), nn.Linear(b - a, hidden)) for _, a, b in self.slices)
        self.lexical = self.wide = None
        # under TF-IDF weighting the idf of the training items (set_idf), saved with the weights
        self.register_buffer("lexical_idf", torch.ones(lexical.buckets) if lexical is not None and lexical.tfidf else None)
        if lexical is not None:
            buckets, dim = lexical.buckets, lexical.dim
            self.lexical = nn.EmbeddingBag(buckets, dim, mode="sum", sparse=True)  # a step touches only its rows
            nn.init.normal_(self.lexical.weight, std=LEXICAL_INIT_STD)
            self.lexical_project = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden))
            if lexical.wide:
                self.wide = nn.Linear(dim, n_classes, bias=False)
        m = len(self.slices) + (self.lexical is not None)
        if m == 0:
            raise ValueError("the model needs at least one modality")
        fused = hidden * m + m if fusion == "concat" else hidden
        if fusion == "gated":
            self.gate = nn.Linear(hidden * m + m, m)
        self.body = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(fused, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)
        self.aux_head = nn.Linear(hidden, aux_dim) if aux_dim else None

    @property
    def n_classes(self) -> int:
        return self.head.out_features

    @property
    def lexical_shape(self) -> tuple[int, int] | None:
        return None if self.lexical is None else (self.lexical.num_embeddings, self.lexical.embedding_dim)

    def set_idf(self, idf: torch.Tensor) -> None:
        self.lexical_idf.copy_(torch.as_tensor(idf, dtype=self.lexical_idf.dtype))

    def lexical_weights(self, indices: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The per-index weights the bag sums: tf x idf, each item's l2-normalised, under TF-IDF weighting."""
        if self.lexical_idf is None:
            return weights
        weights = weights * self.lexical_idf[indices]
        lengths = torch.diff(offsets, append=offsets.new_tensor([len(indices)]))
        item = torch.repeat_interleave(torch.arange(len(offsets), device=offsets.device), lengths)
        norms = torch.zeros(len(offsets), dtype=weights.dtype, device=weights.device).index_add_(0, item, weights * weights)
        return weights / norms.sqrt().clamp_min(1e-12)[item]

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                lexical: Lexical | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = mask.to(x.dtype)
        parts = [proj(x[:, a:b]) * mask[:, i:i + 1] for i, (proj, (_, a, b)) in enumerate(zip(self.project, self.slices, strict=True))]
        if self.lexical is not None:
            if lexical is None:
                raise ValueError("this model has a lexical modality; pass its (indices, offsets, weights)")
            indices, offsets, weights = lexical
            ends = torch.cat([offsets[1:], offsets.new_tensor([len(indices)])])
            present = (ends > offsets).to(x.dtype)[:, None]
            bag = self.lexical(indices, offsets, per_sample_weights=self.lexical_weights(indices, offsets, weights))
            parts.append(self.lexical_project(bag) * present)
            mask = torch.cat([mask, present], dim=1)
        if self.fusion == "concat":
            h = torch.cat(parts + [mask], dim=1)
        else:
            logits = self.gate(torch.cat(parts + [mask], dim=1)).masked_fill(mask == 0, -1e4)
            weights = torch.softmax(logits, dim=1)
            h = sum(w[:, None] * p for w, p in zip(weights.unbind(1), parts, strict=True))
        h = self.body(h)
        logits = self.head(h) if self.wide is None else self.head(h) + self.wide(bag)
        return logits, (self.aux_head(h) if self.aux_head is not None else None)


class Ensemble(nn.Module):
    """Members trained apart (each from its own initialisation and batch order) answering together: the scores
    are log(mean_k softmax(z_k)), so softmax of them is the members' mean probability and temperature scaling
    applies to them as to one model's logits (BENCHMARKS.md, "Ensemble members"). The auxiliary output is not
    averaged: it is a training signal only."""

    def __init__(self, members: Sequence[FusionClassifier]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members; use the FusionClassifier itself")
        self.members = nn.ModuleList(members)

    @property
    def n_classes(self) -> int:
        return self.members[0].n_classes

    @property
    def slices(self) -> list[tuple[str, int, int]]:
        return self.members[0].slices

    @property
    def aux_head(self) -> nn.Linear | None:
        return self.members[0].aux_head

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                lexical: Lexical | None = None) -> tuple[torch.Tensor, None]:
        logp = torch.stack([torch.log_softmax(member(x, mask, lexical)[0], dim=1) for member in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members)), None
