"""Fine-tuning the text encoder (`--finetune-encoder`): a trainable copy of the sentence encoder, or of
CLIP's text tower, trained end to end with the head under the same soft-target loss, at its own
learning rate (`--encoder-lr`). The frozen encoder a process caches is never changed. The tuned copy is
saved beside the head (ENCODER_FILE) and reloaded by `Predictor` as an Encoder whose vectors are never
cached: the item cache holds frozen vectors only. Category names keep their frozen embeddings (the soft
targets are fixed before training starts)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core.data.encoders import ClipEncoder, Encoder, EncoderChoice, MiniLMEncoder, encode_text_trimmed
from core.errors import SettingError
from core.runs.store import RunError, save_weights

ENCODER_FILE = "encoder.safetensors"  # the tuned encoder's weights, beside model.safetensors
NOTE = " Its text encoder was fine-tuned in this run (encoder.safetensors)."
CLIP_TEXT_PARTS = ("token_embedding", "transformer", "ln_final")


class SentenceTower(nn.Module):
    """A trainable copy of a sentence-transformers model: texts in, L2-normalised sentence vectors out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.parameters()).device
        features = self.model.preprocess(list(texts))
        features = {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}
        return F.normalize(self.model(features)["sentence_embedding"], dim=1)


class ClipTextTower(nn.Module):
    """A trainable copy of an open_clip model's text tower (the image tower is left out and stays frozen),
    run on the batch's real token length like `encode_text_trimmed`."""

    def __init__(self, model: nn.Module, tokenizer: object) -> None:
        super().__init__()
        projection = getattr(model, "text_projection", None)
        if not all(hasattr(model, a) for a in (*CLIP_TEXT_PARTS, "positional_embedding", "attn_mask")) or \
                getattr(model, "text_pool_type", "argmax") != "argmax" or not isinstance(projection, nn.Parameter | None):
            raise SettingError(f"--finetune-encoder supports CLIP models with open_clip's standard text tower; "
                               f"{type(model).__name__} has another one")
        for name in CLIP_TEXT_PARTS:
            setattr(self, name, copy.deepcopy(getattr(model, name)))
        self.positional_embedding = nn.Parameter(model.positional_embedding.detach().clone())
        self.text_projection = None if projection is None else nn.Parameter(projection.detach().clone())
        self.register_buffer("attn_mask", model.attn_mask.detach().clone(), persistent=False)
        self.text_pool_type = "argmax"
        self.tokenizer = tokenizer

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.positional_embedding.device)
        return F.normalize(encode_text_trimmed(self, tokens).float(), dim=1)


def text_tower(encoder: Encoder) -> nn.Module:
    """A trainable copy of `encoder`'s text part; SettingError for an encoder that has none to train."""
    if isinstance(encoder, MiniLMEncoder):
        tower = SentenceTower(encoder.model)
    elif isinstance(encoder, ClipEncoder):
        tower = ClipTextTower(encoder.model, encoder.tokenizer)
    else:
        raise SettingError(f"--finetune-encoder needs a sentence encoder or CLIP to train; {encoder.description} has none")
    return tower.requires_grad_(True)


@dataclass
class TunedEncoder(Encoder):
    """The fine-tuned text encoder behind the common Encoder surface, so features, `predict` and the app
    embed with it as with any other; never cacheable. Images (CLIP) go through `frozen`."""

    tower: nn.Module = field(default=None, repr=False)
    frozen: Encoder = field(default=None, repr=False)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        self.tower.eval()
        with torch.inference_mode():
            return self.tower(texts).float().cpu().numpy()


def tuned_encoder(frozen: Encoder, tower: nn.Module) -> TunedEncoder:
    return TunedEncoder(identity=f"{frozen.identity}+finetuned", description=f"{frozen.description}, fine-tuned",
                        dim=frozen.dim, cacheable=False, supports_images=False, tower=tower, frozen=frozen)


def image_encoder(encoder: Encoder) -> Encoder:
    """The encoder images go through: a tuned encoder's frozen original (its image tower was not trained)."""
    return encoder.frozen if isinstance(encoder, TunedEncoder) else encoder


@dataclass
class Tuning:
    """What `train_model` needs to fine-tune: the frozen encoder the text slice came from and every
    item's text, row-aligned with the features."""

    encoder: Encoder
    texts: np.ndarray


class TunedClassifier(nn.Module):
    """The head with the text tower in front: the text slice of each batch is embedded by the tower as
    it trains (gradients reach the encoder), the other modalities are read as given."""

    def __init__(self, classifier: nn.Module, tower: nn.Module) -> None:
        super().__init__()
        self.classifier, self.tower = classifier, tower
        found = [(a, b) for name, a, b in classifier.slices if name == "text"]
        if not found:
            raise SettingError("--finetune-encoder needs the text modality (a text slice in the features)")
        self.text_slice = found[0]

    @property
    def head(self) -> nn.Linear:
        return self.classifier.head

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lexical: object = None,
                texts: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, b = self.text_slice
        x = torch.cat([x[:, :a], self.tower(texts).to(x.dtype), x[:, b:]], dim=1)
        return self.classifier(x, mask, lexical)


def encoder_optimiser(tower: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW for the encoder at its own learning rate (a pretrained encoder wants a far smaller one than the head)."""
    return torch.optim.AdamW(tower.parameters(), lr=lr, weight_decay=weight_decay)


def tuned_features(features: object, encoder: Encoder | None, texts: Sequence[str]) -> object:
    """`features` with the text slice embedded anew by the tuned `encoder` (straight from the model, never
    through the item cache); `features` itself when the encoder was not tuned."""
    if encoder is None:
        return features
    a, b = next((a, b) for name, a, b in features.slices if name == "text")
    matrix = np.array(features.matrix, dtype=np.float32)  # a copy: the prepared features stay frozen
    matrix[:, a:b] = encoder.encode_text(texts)
    return type(features)(matrix, features.mask, features.slices, features.notes, features.lexical)


def save_encoder(run_path: Path, encoder: TunedEncoder) -> None:
    save_weights(Path(run_path) / ENCODER_FILE, {k: v.detach().cpu() for k, v in encoder.tower.state_dict().items()})


def load_tuned(choice: EncoderChoice, path: Path, run_name: str, device: str = "cpu") -> EncoderChoice:
    """The run's fine-tuned encoder: a tower copied from the frozen encoder `choice` (the one the run
    started from), loaded with the saved weights; RunError when the file is missing or does not fit."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tower = text_tower(choice.encoder)
    try:
        weights = load_file(str(path))
        tower.load_state_dict(weights)
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise RunError(f"{run_name}: {ENCODER_FILE} does not load ({str(exc).splitlines()[0]})") from None
    if not all(bool(w.isfinite().all()) for w in weights.values() if w.is_floating_point()):
        raise RunError(f"{run_name}: {ENCODER_FILE} holds NaN or infinite weights")
    encoder = tuned_encoder(choice.encoder, tower.to(device).eval())
    return EncoderChoice(encoder, choice.requested, choice.note + NOTE)
