"""The embedding cache, one entry per item: a vector is keyed by the encoder's identity, the kind of
content (a text, or an image's bytes) and the content itself, so adding or changing one product
re-embeds that product only, whatever list it arrives in.

Entries live in shards (a few thousand vectors each, never a file per item): `NAME.npy` holds the
vectors and `NAME.keys.npy` their keys. The keys file is written last, each file by temp + rename, so
a crash mid-write leaves at most a vectors file without keys, which nothing reads. The index is the
union of the keys files, read once per cache object (8 bytes an item)."""

from __future__ import annotations

import errno
import hashlib
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from core.files import atomic_path

CACHE_FILES = {  # per shard NAME: suffix -> (format, what it holds); the damage test corrupts each
    ".npy": ("npy", "the shard's vectors, rows x dim float32"),
    ".keys.npy": ("npy", "the shard's uint64 item keys, one per row"),
}
SHARD_ROWS = 20_000  # vectors per shard at most; a put of more is split
READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)  # a cache that can be read but not written


def item_keys(identity: str, kind: str, contents: Iterable[str | bytes]) -> np.ndarray:
    """uint64 keys: the first 8 bytes of sha256(identity, kind, content). 64 bits keep the index
    small; a collision needs about 4 billion items under one encoder before it becomes likely."""
    prefix = f"{identity}\x1f{kind}\x1f".encode()
    out = []
    for c in contents:
        h = hashlib.sha256(prefix)
        h.update(c if isinstance(c, bytes) else str(c).encode())
        out.append(int.from_bytes(h.digest()[:8], "little"))
    return np.array(out, dtype=np.uint64)


def _slug(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


class ItemCache:
    """The shards of one encoder (by identity) and dimension under `root`. Several processes may write
    at once, so the same item can sit in two shards (identical vectors): the first indexed copy is used.
    A shard that is unreadable, of the wrong shape or type, or holds a NaN/inf vector is never served;
    its items are embedded again."""

    def __init__(self, root: str | Path, identity: str, dim: int) -> None:
        self.folder = Path(root) / "items" / _slug(identity)
        self.identity, self.dim = identity, dim
        self._keys = pd.Index(np.zeros(0, dtype=np.uint64))
        self._where = np.zeros((0, 2), dtype=np.int64)  # per indexed key: (shard number, row)
        self._shards: list[Path] = []
        self._shard_keys: list[np.ndarray] = []
        self._bad: set[int] = set()  # shard numbers found holding non-finite vectors
        self._mapped: dict[int, np.ndarray] = {}
        self._seen: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Index the shards written since the last look (by this or another process)."""
        if not self.folder.is_dir():
            return
        added = False
        for keys_file in sorted(self.folder.glob("*.keys.npy")):
            name = keys_file.name.removesuffix(".keys.npy")
            if name in self._seen:
                continue
            keys = self._read_keys(keys_file, self.folder / f"{name}.npy")
            if keys is None:
                continue  # a damaged (or half-written) shard is ignored; its items are embedded again
            self._seen.add(name)
            self._shards.append(self.folder / f"{name}.npy")
            self._shard_keys.append(keys)
            added = True
        if added:
            self._reindex()

    def _read_keys(self, keys_file: Path, vectors_file: Path) -> np.ndarray | None:
        """A shard's keys, or None when the shard cannot be served as it is."""
        try:
            keys = np.load(keys_file)
            vectors = np.load(vectors_file, mmap_mode="r")
        except (OSError, ValueError, EOFError):
            return None
        if keys.ndim != 1 or keys.dtype.kind not in "ui" or vectors.dtype != np.float32 \
                or vectors.shape != (len(keys), self.dim):
            return None
        return keys.astype(np.uint64)

    def _reindex(self) -> None:
        """One index over the usable shards; a key stored twice (two writers) keeps its first copy."""
        usable = [n for n in range(len(self._shards)) if n not in self._bad]
        keys = np.concatenate([np.zeros(0, dtype=np.uint64), *(self._shard_keys[n] for n in usable)])
        where = np.concatenate([np.zeros((0, 2), dtype=np.int64),
                                *(np.stack([np.full(len(self._shard_keys[n]), n), np.arange(len(self._shard_keys[n]))], axis=1)
                                  for n in usable)])
        index = pd.Index(keys)
        first = ~index.duplicated(keep="first")
        self._keys, self._where = index[first], where[first]

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, dim) vectors and an (N,) mask of the keys found; missing rows are zeros. A shard caught
        holding a non-finite vector is dropped from the index and the look-up is done again."""
        pos = self._keys.get_indexer(keys) if len(self._keys) else np.full(len(keys), -1)
        found = pos >= 0
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        if found.any():
            where = self._where[pos[found]]
            rows = np.flatnonzero(found)
            for shard in np.unique(where[:, 0]):
                sel = where[:, 0] == shard
                block = self._vectors(int(shard))[where[sel, 1]]
                if not np.isfinite(block).all():
                    self._bad.add(int(shard))
                    self._reindex()
                    return self.get(keys)
                out[rows[sel]] = block
        return out, found

    def _vectors(self, shard: int) -> np.ndarray:
        if shard not in self._mapped:
            self._mapped[shard] = np.load(self._shards[shard], mmap_mode="r")
        return self._mapped[shard]

    def put(self, keys: np.ndarray, vectors: np.ndarray) -> bool:
        """Store new vectors in new shards (atomic: vectors first, keys last); whether they were stored.
        A cache this process may not write (read-only, another user's) is only read: the vectors are
        still returned to the caller, just not kept, so `predict` works from a shared read-only cache."""
        keys = np.asarray(keys, dtype=np.uint64)
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(keys) == 0:
            return True
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for start in range(0, len(keys), SHARD_ROWS):
                name = uuid.uuid4().hex
                save_npy(self.folder / f"{name}.npy", vectors[start:start + SHARD_ROWS])
                save_npy(self.folder / f"{name}.keys.npy", keys[start:start + SHARD_ROWS])
        except OSError as exc:
            if exc.errno not in READ_ONLY:
                raise
            return False
        self.refresh()
        return True


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save by temp + rename: readers see the old file or the whole new one."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
