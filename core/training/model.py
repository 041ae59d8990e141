"""The multimodal categorizer: each modality projected, fused (concatenation or a learned gate),
an MLP, a C-way head, and an optional auxiliary head for the feature-similarity codes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FusionClassifier(nn.Module):
    """Input is one (B, D_total) tensor whose column slices are the modalities, plus a (B, M) mask;
    a missing modality contributes nothing (its projection is zeroed) and its mask bit is an input."""

    def __init__(self, slices: Sequence[tuple[str, int, int]], n_classes: int, hidden: int = 512,
                 fusion: str = "concat", dropout: float = 0.2, aux_dim: int = 0) -> None:
        super().__init__()
        if fusion not in ("concat", "gated"):
            raise ValueError(f"fusion must be 'concat' or 'gated'; got {fusion!r}")
        self.slices = [(name, int(a), int(b)) for name, a, b in slices]
        self.fusion = fusion
        self.project = nn.ModuleList(nn.Sequential(nn.LayerNorm(b - a), nn.Linear(b - a, hidden)) for _, a, b in self.slices)
        m = len(self.slices)
        fused = hidden * m + m if fusion == "concat" else hidden
        if fusion == "gated":
            self.gate = nn.Linear(hidden * m + m, m)
        self.body = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(fused, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)
        self.aux_head = nn.Linear(hidden, aux_dim) if aux_dim else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = mask.to(x.dtype)
        parts = [proj(x[:, a:b]) * mask[:, i:i + 1] for i, (proj, (_, a, b)) in enumerate(zip(self.project, self.slices, strict=True))]
        if self.fusion == "concat":
            h = torch.cat(parts + [mask], dim=1)
        else:
            logits = self.gate(torch.cat(parts + [mask], dim=1)).masked_fill(mask == 0, -1e4)
            weights = torch.softmax(logits, dim=1)
            h = sum(w[:, None] * p for w, p in zip(weights.unbind(1), parts, strict=True))
        h = self.body(h)
        return self.head(h), (self.aux_head(h) if self.aux_head is not None else None)
