"""The label representations, declared once: each target kind's key, its label for people and the
settings that shape its targets (METHOD.md, 'Targets'). Targets, settings, sweeps, run legends and
the pages read this registry, so "which settings does tree read" has one answer.

Pure Python (no numpy), so `core.settings` and the CLI can import it without slowing start-up."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import SettingError


@dataclass(frozen=True)
class TargetKind:
    """One target kind. `reads`: the settings its targets depend on (others are ignored); `floor`: every
    class gets a share of the mass, so a row has no zeros (uniform, tree, hybrid)."""

    key: str
    label: str
    reads: tuple[str, ...] = ()
    floor: bool = False

    @property
    def neighbours(self) -> bool:
        """Spreads mass over the k nearest label neighbours (needs label embeddings or similarities)."""
        return "k" in self.reads

    @property
    def tree(self) -> bool:
        """Reads the tree distance matrix."""
        return "beta" in self.reads

    @property
    def smooths(self) -> bool:
        """Moves mass off the true class at all (one-hot does not: it has nothing to draw or tune)."""
        return bool(self.reads)


LABEL_CHARS = 24  # a kind's label fits a select box and a multiselect chip at 1440 px without being cut
TARGET_KINDS: dict[str, TargetKind] = {k.key: k for k in (  # METHOD.md 'Targets' says what each one does
    TargetKind("onehot", "One-hot"),
    TargetKind("uniform", "Uniform smoothing", ("alpha",), floor=True),
    TargetKind("knn-uniform", "Top-k uniform", ("alpha", "k")),
    TargetKind("semantic", "Semantic neighbours", ("alpha", "temperature", "k")),
    TargetKind("tree", "Tree distance", ("beta",), floor=True),
    TargetKind("hybrid", "Hybrid (semantic + tree)", ("alpha", "temperature", "k", "beta", "mix"), floor=True),
)}
# the smoothing curriculum's decay from the configured mass to one-hot (METHOD.md allows both)
CURRICULUM_SHAPES = {"linear": "Linear", "cosine": "Cosine"}


def kind(key: str) -> TargetKind:
    """The registered kind, or SettingError naming the kinds there are."""
    try:
        return TARGET_KINDS[key]
    except KeyError:
        raise SettingError(f"kind must be one of {', '.join(TARGET_KINDS)}; got {key!r}") from None


def shaping_settings() -> tuple[str, ...]:
    """Every setting some kind reads, in first-read order."""
    return tuple(dict.fromkeys(name for k in TARGET_KINDS.values() for name in k.reads))


def readers(setting: str) -> frozenset[str]:
    """The kinds whose targets depend on `setting` (empty for a setting no kind reads)."""
    return frozenset(k.key for k in TARGET_KINDS.values() if setting in k.reads)
