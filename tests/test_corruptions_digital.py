"""Digital corruptions on larger images: Tiny-ImageNet-C and ImageNet-C parameters, checked against PIL itself."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ppsearch.robustness.corruptions import corrupt
from ppsearch.robustness.corruptions.params import table_name

# severity 1 of pixelate (resize factor) and JPEG (quality) in the table each image size selects
SEVERITY_1 = {"Tiny-ImageNet-C": (0.9, 65), "ImageNet-C": (0.6, 25)}


@pytest.mark.parametrize("name", ["pixelate", "jpeg_compression"])
@pytest.mark.parametrize(("size", "table"), [((48, 64), "Tiny-ImageNet-C"), ((96, 128), "ImageNet-C")])
def test_larger_images_use_their_sizes_table(name, size, table):
    assert table_name(*size) == table
    images = np.random.default_rng(0).integers(0, 256, (4, *size, 3), dtype=np.uint8)
    factor, quality = SEVERITY_1[table]
    expected = []
    for image in images:
        pil = Image.fromarray(image)
        if name == "pixelate":
            pil = pil.resize((int(size[1] * factor), int(size[0] * factor)), Image.BOX).resize(size[::-1], Image.BOX)
        else:
            buffer = io.BytesIO()
            pil.save(buffer, "JPEG", quality=quality)
            pil = Image.open(buffer)
        expected.append(np.asarray(pil))
    np.testing.assert_array_equal(corrupt(images, name, 1), np.stack(expected))


@pytest.mark.parametrize(("size", "table"), [((32, 32), "CIFAR-10-C"), ((20, 33), "Tiny-ImageNet-C"),
                                             ((64, 64), "Tiny-ImageNet-C"), ((64, 65), "ImageNet-C")])
def test_the_table_follows_the_larger_side(size, table):
    assert table_name(*size) == table


@pytest.mark.parametrize(("size", "sigma"), [((32, 32), 0.10), ((64, 64), 0.18), ((96, 96), 0.38)])
def test_gaussian_noise_severity_5_per_table(size, sigma):
    """make_cifar_c.py 0.10, make_tinyimagenet_c.py 0.18, make_imagenet_c.py 0.38, on mid-grey; the
    spread measured by the interquartile range (1.349 sigma), which clipping at 0 and 255 leaves alone."""
    grey = np.full((8, *size, 3), 128, np.uint8)
    q1, q3 = np.percentile(corrupt(grey, "gaussian_noise", 5), [25, 75])
    assert (q3 - q1) / 1.349 / 255 == pytest.approx(sigma, rel=0.03)
