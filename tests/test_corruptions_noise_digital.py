"""Noise and digital corruptions against the reference generator's outputs (shared/testdata)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ppsearch.corruptions import corrupt

REFERENCE = Path(__file__).parents[2] / "shared" / "testdata" / "cifar10c_reference.npz"
DETERMINISTIC = ("brightness", "contrast", "saturate", "pixelate", "jpeg_compression")
STOCHASTIC = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "elastic_transform")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {name: data[name] for name in ("clean", *DETERMINISTIC, *STOCHASTIC)}


def mean_abs_change(corrupted: np.ndarray, clean: np.ndarray) -> float:
    """Per-image mean absolute change from the clean image, averaged over images."""
    return float(np.abs(corrupted.astype(np.float64) - clean).mean())


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_matches_reference(reference, name):
    for severity in range(1, 6):
        ours = corrupt(reference["clean"], name, severity).astype(np.int16)
        close = np.abs(ours - reference[name][severity - 1]) <= 1
        assert close.mean() >= 0.99, f"severity {severity}: {close.mean():.4f} within 1 level"


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_matches_reference_statistics(reference, name):
    clean = reference["clean"]
    ours = np.array([mean_abs_change(corrupt(clean, name, s), clean) for s in range(1, 6)])
    theirs = np.array([mean_abs_change(reference[name][s - 1], clean) for s in range(1, 6)])
    assert abs(ours.sum() / theirs.sum() - 1) <= 0.06
    np.testing.assert_allclose(ours, theirs, rtol=0.15)


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


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_depend_on_seed_only(reference, name):
    clean = reference["clean"][:8]
    first = corrupt(clean, name, 3, seed=7)
    np.testing.assert_array_equal(first, corrupt(clean, name, 3, seed=7))
    assert not np.array_equal(first, corrupt(clean, name, 3, seed=8))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_ignore_seed(reference, name):
    clean = reference["clean"][:8]
    np.testing.assert_array_equal(corrupt(clean, name, 3, seed=0), corrupt(clean, name, 3, seed=1))


@pytest.mark.parametrize("name", DETERMINISTIC + STOCHASTIC)
def test_type_shape_and_values_preserved_across_input_types(name):
    images = np.random.default_rng(1).integers(0, 256, (3, 20, 28, 3), dtype=np.uint8)
    from_numpy = corrupt(images, name, 4, seed=3)
    from_tensor = corrupt(torch.from_numpy(images), name, 4, seed=3)
    assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.uint8
    assert from_numpy.shape == images.shape
    assert isinstance(from_tensor, torch.Tensor) and from_tensor.dtype == torch.uint8
    np.testing.assert_array_equal(from_tensor.numpy(), from_numpy)


@pytest.mark.parametrize(
    ("images", "name", "severity"),
    [
        (np.zeros((2, 32, 32, 3), np.uint8), "not_a_corruption", 1),
        (np.zeros((2, 32, 32, 3), np.uint8), "brightness", 0),
        (np.zeros((2, 32, 32, 3), np.uint8), "brightness", 6),
        (np.zeros((2, 32, 32, 3), np.float32), "brightness", 1),
        (np.zeros((2, 32, 32, 1), np.uint8), "brightness", 1),
        (np.zeros((0, 32, 32, 3), np.uint8), "brightness", 1),
    ],
    ids=["unknown-name", "severity-0", "severity-6", "float32", "one-channel", "empty"],
)
def test_corrupt_rejects_bad_input(images, name, severity):
    with pytest.raises(ValueError):
        corrupt(images, name, severity)
