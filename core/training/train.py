"""Training: AdamW over precomputed features with any target kind, the smoothing curriculum, the
auxiliary code loss, a moving average of the weights, early stopping on validation top-1, progress
callbacks and cancellation; with `members` several models trained apart and kept as one Ensemble."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from core import settings
from core.data.lexical import LexicalFeatures, fit_idf
from core.evaluation.registry import TOP_K
from core.labels.targets import SoftTargets, alpha_schedule
from core.settings import ExperimentConfig, resolve_device
from core.training import finetune
from core.training.model import Ensemble, FusionClassifier, Lexical

# what training reads of a run's declared settings (core/settings.py): the training and model groups
# and the curriculum; TrainConfig's fields, types and defaults are these declarations
CURRICULUM_SETTINGS = ("curriculum_epochs", "curriculum_shape")


def _declared() -> list[settings.Setting]:
    """The declarations TrainConfig is made of, in declaration order."""
    return [s for s in settings.settings() if s.group in ("training", "model") or s.name in CURRICULUM_SETTINGS]


class _TrainConfigChecks:
    def validate(self) -> None:
        """Every field against its declaration (aux_weight too), so a bound is written once."""
        for s in _declared():
            s.check(getattr(self, s.name))
        settings.get("aux_weight").check(self.aux_weight)


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(s.name, s.type, dataclasses.field(default=s.default)) for s in _declared()]
    + [("aux_weight", float, 0.0),  # the auxiliary code loss's weight; 0 unless the run has auxiliary codes
       ("threads", int | None, None),
       ("device", str, "cpu")],  # a resolved torch device ("cpu", "cuda"); the returned model is always on the CPU
    bases=(_TrainConfigChecks,),
    namespace={"__module__": __name__,
               "__doc__": "What train_model reads: the declared training, model and curriculum settings, and where to run."})


def train_config(config: ExperimentConfig) -> TrainConfig:
    """The training settings of a run's config, with its device resolved and the auxiliary weight
    switched off when the run has no auxiliary codes."""
    return TrainConfig(**{s.name: getattr(config, s.name) for s in _declared()},
                       aux_weight=config.aux_weight if config.aux_codes != "none" else 0.0,
                       device=resolve_device(config.device))


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_top1: float
    val_semsim5: float
    smoothing: float
    seconds: float
    member: int = 0  # which ensemble member the epoch trained (0 for a single model)


@dataclass
class TrainResult:
    model: FusionClassifier | Ensemble
    history: list[EpochLog] = field(default_factory=list)
    best_epoch: int = -1  # of the first member; every member's in best_epochs
    best_epochs: list[int] = field(default_factory=list)
    stopped_early: bool = False
    cancelled: bool = False
    encoder: finetune.TunedEncoder | None = None  # the fine-tuned text encoder (None: the encoder stayed frozen)


def seed_everything(seed: int, threads: int | None = None) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if threads:
        torch.set_num_threads(threads)


def iterate_batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def weight_average(net: torch.nn.Module, epochs: float, steps_per_epoch: int) -> AveragedModel | None:
    """An exponential moving average of `net`'s weights with a horizon of about `epochs` epochs (decay
    1 - 1 / (epochs x steps an epoch)), or None when `epochs` is 0. Averaging the noisy weights of small
    batches is what is validated and kept (BENCHMARKS.md, "Weight averaging")."""
    if epochs <= 0:
        return None
    decay = max(0.0, 1.0 - 1.0 / (epochs * max(steps_per_epoch, 1)))
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble member `member` (member 0 keeps the run's seed, so one member is the plain model)."""
    return seed if member == 0 else int(np.random.SeedSequence([seed, member]).generate_state(1)[0] % 2**31)


def make_optimisers(model: FusionClassifier, config: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW for the dense weights; the lexical buckets get sparse gradients and SparseAdam (no weight decay,
    their own learning rate), so a step costs the buckets its batch touched, not all B of them (2.5x faster a
    step at B = 2^18)."""
    dense = [p for name, p in model.named_parameters() if name != "lexical.weight"]
    optimisers: list[torch.optim.Optimizer] = [torch.optim.AdamW(dense, lr=config.lr, weight_decay=config.weight_decay)]
    if model.lexical is not None:
        optimisers.append(torch.optim.SparseAdam([model.lexical.weight], lr=config.lexical_lr))
    return optimisers


def batch_inputs(x: np.ndarray, mask: np.ndarray, lexical: LexicalFeatures | None, rows: np.ndarray,
                 device: torch.device, texts: np.ndarray | None = None) -> tuple[torch.Tensor | Lexical | list[str] | None, ...]:
    """The model's inputs for sorted `rows`: dense slices and mask read from (possibly memory-mapped)
    arrays, the lexical rows as EmbeddingBag (indices, offsets, weights), never densified; with `texts`
    (fine-tuning the encoder) also the rows' texts."""
    xb = torch.from_numpy(np.asarray(x[rows])).to(device, non_blocking=True)
    mb = torch.from_numpy(np.asarray(mask[rows])).to(device, non_blocking=True)
    lb = None if lexical is None else tuple(torch.from_numpy(a).to(device, non_blocking=True) for a in lexical.batch(rows))
    return (xb, mb, lb) if texts is None else (xb, mb, lb, [str(t) for t in texts[rows]])


def predict_logits(model: FusionClassifier | Ensemble, x: np.ndarray, mask: np.ndarray, rows: np.ndarray | None = None,
                   batch_size: int = 2048, lexical: LexicalFeatures | None = None,
                   texts: np.ndarray | None = None) -> np.ndarray:
    """Raw class scores for the given rows (all rows by default), batched, in float32."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for batch in iterate_batches(len(rows), batch_size, None):
            r = np.sort(rows[batch])  # sorted reads are friendlier to memory-mapped features
            logits, _ = model(*batch_inputs(x, mask, lexical, r, device, texts))
            out.append(logits.float().cpu().numpy()[np.argsort(np.argsort(rows[batch]))])
    return np.concatenate(out) if out else np.zeros((0, model.n_classes), dtype=np.float32)


def predict_proba(model: FusionClassifier | Ensemble, x: np.ndarray, mask: np.ndarray, rows: np.ndarray | None = None,
                  batch_size: int = 2048, lexical: LexicalFeatures | None = None,
                  texts: np.ndarray | None = None) -> np.ndarray:
    """Softmax probabilities (uncalibrated) for the given rows, in float32."""
    return torch.softmax(torch.from_numpy(predict_logits(model, x, mask, rows, batch_size, lexical, texts)), dim=1).numpy()


def validation_scores(probs: np.ndarray, y: np.ndarray, label_embeddings: np.ndarray) -> tuple[float, float]:
    """Validation top-1 and semsim@k (cheap enough to run every epoch)."""
    k = min(TOP_K, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    top1 = float((probs.argmax(1) == y).mean())
    semsim = float(np.einsum("nkd,nd->nk", label_embeddings[top], label_embeddings[y]).mean())
    return top1, semsim


def train_model(x: np.ndarray, mask: np.ndarray, slices: list[tuple[str, int, int]], y: np.ndarray, train_idx: np.ndarray,
                val_idx: np.ndarray, targets: SoftTargets, config: TrainConfig, *, label_embeddings: np.ndarray,
                codes: np.ndarray | None = None, progress: Callable[[EpochLog], None] | None = None,
                should_stop: Callable[[], bool] | None = None, step_progress: Callable[[int, int], None] | None = None,
                lexical: LexicalFeatures | None = None, tuning: finetune.Tuning | None = None) -> TrainResult:
    """Train a FusionClassifier, or with `config.members` above 1 that many, each from its own seed
    (member_seed) on the same items, returned as one Ensemble; `x` may be memory-mapped (each batch is read,
    never the whole array); `lexical` adds the n-gram modality (sparse rows aligned with `x`); `tuning`
    fine-tunes the text encoder with one model (core/training/finetune.py), returned as `encoder`.
    Each member keeps the weights of its best validation epoch (their moving average, with `ema_epochs`)."""
    config.validate()
    count = 1 if tuning is not None else config.members
    # the training items' idf, fitted once for every member (the same rows give each the same idf)
    idf = fit_idf(lexical.rows[np.sort(train_idx)]) if lexical is not None and lexical.spec.tfidf else None
    results: list[TrainResult] = []
    for member in range(count):
        member_config = dataclasses.replace(config, seed=member_seed(config.seed, member))
        results.append(train_member(x, mask, slices, y, train_idx, val_idx, targets, member_config, member, idf,
                                    label_embeddings=label_embeddings, codes=codes, progress=progress,
                                    should_stop=should_stop, step_progress=step_progress, lexical=lexical, tuning=tuning))
        if results[-1].cancelled:
            return results[-1]
    if count == 1:
        return results[0]
    return TrainResult(Ensemble([r.model for r in results]), [log for r in results for log in r.history],
                       results[0].best_epoch, [r.best_epoch for r in results], all(r.stopped_early for r in results))


def train_member(x: np.ndarray, mask: np.ndarray, slices: list[tuple[str, int, int]], y: np.ndarray, train_idx: np.ndarray,
                 val_idx: np.ndarray, targets: SoftTargets, config: TrainConfig, member: int, idf: np.ndarray | None, *,
                 label_embeddings: np.ndarray, codes: np.ndarray | None, progress: Callable[[EpochLog], None] | None,
                 should_stop: Callable[[], bool] | None, step_progress: Callable[[int, int], None] | None,
                 lexical: LexicalFeatures | None, tuning: finetune.Tuning | None) -> TrainResult:
    """One model of train_model, from `config.seed`, with the lexical `idf` of the training items (None
    without TF-IDF weighting); its epochs are logged as `member`."""
    seed_everything(config.seed, config.threads)
    aux_dim = codes.shape[1] if codes is not None and config.aux_weight > 0 else 0
    device = torch.device(config.device)
    model = FusionClassifier(slices, targets.n_classes, config.hidden, config.fusion, config.dropout, aux_dim,
                             lexical=lexical.spec if lexical is not None else None)
    if idf is not None:
        model.set_idf(torch.from_numpy(idf))
    model = model.to(device)
    optimisers = make_optimisers(model, config)
    net, texts = model, None  # what a step runs: the head, or with fine-tuning the encoder and the head
    if tuning is not None:
        net, texts = finetune.TunedClassifier(model, finetune.text_tower(tuning.encoder).to(device)), tuning.texts
        optimisers.append(finetune.encoder_optimiser(net.tower, config.encoder_lr, config.weight_decay))
    buffers = targets.torch_buffers(device)
    codes_t = torch.as_tensor(codes, dtype=torch.float32, device=device) if aux_dim else None
    bce = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(config.seed)
    result = TrainResult(model)
    best_top1, best_state, since_best = -math.inf, None, 0
    y = np.asarray(y)
    average = weight_average(net, config.ema_epochs, math.ceil(len(train_idx) / config.batch_size))
    kept = net if average is None else average.module  # the weights validated each epoch and returned
    for epoch in range(config.epochs):
        started = time.perf_counter()
        factor = alpha_schedule(1.0, epoch, config.curriculum_epochs, config.curriculum_shape) if config.curriculum_epochs else 1.0
        epoch_targets = targets.annealed(factor)
        net.train()
        total, seen = 0.0, 0
        batches = iterate_batches(len(train_idx), config.batch_size, rng)
        for step, batch in enumerate(batches):
            if should_stop is not None and should_stop():
                result.cancelled = True
                break
            rows = np.sort(train_idx[batch])
            yb = torch.from_numpy(y[rows]).to(device, non_blocking=True)
            logits, aux = net(*batch_inputs(x, mask, lexical, rows, device, texts))
            loss = epoch_targets.loss(logits, yb, buffers)
            if aux is not None:
                loss = loss + config.aux_weight * bce(aux, codes_t[yb])
            for optimiser in optimisers:
                optimiser.zero_grad(set_to_none=True)
            loss.backward()
            for optimiser in optimisers:
                optimiser.step()
            if average is not None:
                average.update_parameters(net)
            total += loss.item() * len(rows)
            seen += len(rows)
            if step_progress is not None:
                step_progress(step + 1, len(batches))
        if result.cancelled:
            break
        probs = predict_proba(kept, x, mask, val_idx, lexical=lexical, texts=texts)
        top1, semsim = validation_scores(probs, y[val_idx], label_embeddings) if len(val_idx) else (math.nan, math.nan)
        log = EpochLog(epoch, total / max(seen, 1), top1, semsim, epoch_targets.smoothing, time.perf_counter() - started, member)
        result.history.append(log)
        if progress is not None:
            progress(log)
        if top1 > best_top1 or best_state is None:
            best_top1, best_state, since_best, result.best_epoch = top1, copy.deepcopy(kept.state_dict()), 0, epoch
        else:
            since_best += 1
            # patience counts only after the curriculum has reached plain targets
            if config.patience and since_best >= config.patience and epoch >= config.curriculum_epochs:
                result.stopped_early = True
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    result.best_epochs = [result.best_epoch]
    model.to("cpu").eval()  # calibration, evaluation and saving happen on the CPU
    if tuning is not None:  # the tuned encoder stays on the device: it embeds every item again next
        result.encoder = finetune.tuned_encoder(tuning.encoder, net.tower.eval())
    return result
