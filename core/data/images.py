"""Image files are untrusted input: a path from a data table may point anywhere, and a file may be
a decompression bomb (a tiny PNG that claims 200 megapixels). Every image the product decodes goes
through `open_image`; every image a page shows goes through `read_thumbnail`."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

THUMBNAIL_SIZE = (160, 160)
MAX_IMAGE_BYTES = 50 * 1024 * 1024
# what a broken, fake or oversized image raises; callers treat it as "no image"
IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)


@contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """PIL's open with its decompression-bomb warning (over ~89 megapixels) raised as an error, so a
    huge claimed size is refused before any pixels are decoded. Raises one of IMAGE_ERRORS."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            yield img


def confined(path: str | Path, root: str | Path) -> Path | None:
    """`path` resolved (symlinks followed) if it is a file inside `root`, else None: '..', an absolute
    path elsewhere or a link pointing out of the folder cannot reach other files."""
    try:
        base = Path(root).resolve(strict=True)
        target = Path(path).resolve(strict=True)  # relative paths were written relative to the working folder
    except (OSError, RuntimeError, TypeError, ValueError):
        return None
    return target if target.is_file() and target.is_relative_to(base) else None


def read_thumbnail(path: object, image_root: str | Path | None) -> bytes | None:
    """A small JPEG of the image at `path`, or None when the path leaves `image_root` (or there is no
    root), the file is too large, or it is not an image PIL can decode. The bytes are re-encoded from
    decoded pixels, so nothing but an image ever reaches the browser."""
    if image_root is None or path is None:
        return None
    target = confined(str(path), image_root)
    if target is None or target.stat().st_size > MAX_IMAGE_BYTES:
        return None
    try:
        with open_image(target) as img:
            img.thumbnail(THUMBNAIL_SIZE)
            out = io.BytesIO()
            img.convert("RGB").save(out, format="JPEG", quality=85)
    except IMAGE_ERRORS:
        return None
    return out.getvalue()
