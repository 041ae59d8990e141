"""The multimodal categorizer: each modality projected, fused (concatenation or a learned gate),
an MLP, a C-way head, and an optional auxiliary head for the feature-similarity codes. The lexical
modality is a learned EmbeddingBag over hashed n-gram buckets, fed sparse (indices, offsets, weights)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

Lexical = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # EmbeddingBag input: indices, offsets, per-index weights
LEXICAL_INIT_STD = 0.1  # large enough that a mean of ~50 bucket vectors stays well above LayerNorm's eps


class FusionClassifier(nn.Module):
    """Input is one (B, D_total) tensor whose column slices are the dense modalities, a (B, M) mask, and
    with `lexical=(buckets, dim)` the sparse lexical rows (an item without n-grams counts as missing);
    a missing modality contributes nothing (its projection is zeroed) and its mask bit is an input."""

    def __init__(self, slices: Sequence[tuple[str, int, int]], n_classes: int, hidden: int = 512,
                 fusion: str = "concat", dropout: float = 0.2, aux_dim: int = 0,
                 lexical: tuple[int, int] | None = None) -> None:
        super().__init__()
        if fusion not in ("concat", "gated"):
            raise ValueError(f"fusion must be 'concat' or 'gated'; got {fusion!r}")
        self.slices = [(name, int(a), int(b)) for name, a, b in slices]
        self.fusion = fusion
        self.project = nn.ModuleList(nn.Sequential(nn.LayerNorm(b - a), nn.Linear(b - a, hidden)) for _, a, b in self.slices)
        self.lexical = None
        if lexical is not None:
            buckets, dim = int(lexical[0]), int(lexical[1])
            self.lexical = nn.EmbeddingBag(buckets, dim, mode="sum", sparse=True)  # a step touches only its rows
            nn.init.normal_(self.lexical.weight, std=LEXICAL_INIT_STD)
            self.lexical_project = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden))
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
    def lexical_shape(self) -> tuple[int, int] | None:
        return None if self.lexical is None else (self.lexical.num_embeddings, self.lexical.embedding_dim)

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
            parts.append(self.lexical_project(self.lexical(indices, offsets, per_sample_weights=weights)) * present)
            mask = torch.cat([mask, present], dim=1)
        if self.fusion == "concat":
            h = torch.cat(parts + [mask], dim=1)
        else:
            logits = self.gate(torch.cat(parts + [mask], dim=1)).masked_fill(mask == 0, -1e4)
            weights = torch.softmax(logits, dim=1)
            h = sum(w[:, None] * p for w, p in zip(weights.unbind(1), parts, strict=True))
        h = self.body(h)
        return self.head(h), (self.aux_head(h) if self.aux_head is not None else None)
