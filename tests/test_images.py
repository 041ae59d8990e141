"""Image reads are confined to the run's image folder and only real images come back."""

import io
import os

import pytest
from PIL import Image

from core.data.images import read_thumbnail
from tests.test_embeddings import png_header


@pytest.fixture()
def folders(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (600, 800), (200, 30, 30)).save(images / "ok.png")
    (images / "fake.jpg").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (images / "bomb.png").write_bytes(png_header(20_000, 10_000))
    secret = tmp_path / "secret.jpg"
    Image.new("RGB", (10, 10)).save(secret)  # a real image, but outside the folder
    os.symlink(secret, images / "link.jpg")
    return images, secret


def test_an_image_inside_the_folder_comes_back_as_a_small_jpeg(folders):
    images, _ = folders
    data = read_thumbnail(images / "ok.png", images)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and max(img.size) == 160 and img.getpixel((50, 50))[0] > 150


@pytest.mark.parametrize("name", ["../secret.jpg", "link.jpg", "fake.jpg", "bomb.png", "missing.jpg", "../../../../../etc/passwd"])
def test_escapes_links_and_non_images_give_nothing(folders, name):
    images, _ = folders
    assert read_thumbnail(images / name, images) is None


def test_absolute_path_elsewhere_and_no_folder_give_nothing(folders):
    images, secret = folders
    assert read_thumbnail(secret, images) is None
    assert read_thumbnail("/etc/passwd", images) is None
    assert read_thumbnail(images / "ok.png", None) is None
