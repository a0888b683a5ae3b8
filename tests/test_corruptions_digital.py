"""Digital corruptions on larger images: ImageNet-C parameters, checked against PIL itself."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ppsearch.robustness.corruptions import corrupt


@pytest.mark.parametrize("name", ["pixelate", "jpeg_compression"])
def test_large_images_use_imagenet_parameters(name):
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    expected = []
    for image in images:
        pil = Image.fromarray(image)
        if name == "pixelate":  # ImageNet-C severity 1: factor 0.6
            pil = pil.resize((38, 28), Image.BOX).resize((64, 48), Image.BOX)
        else:  # ImageNet-C severity 1: quality 25
            buffer = io.BytesIO()
            pil.save(buffer, "JPEG", quality=25)
            pil = Image.open(buffer)
        expected.append(np.asarray(pil))
    np.testing.assert_array_equal(corrupt(images, name, 1), np.stack(expected))
