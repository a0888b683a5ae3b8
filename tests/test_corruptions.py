"""The contract of all 19 corruptions, checked against the reference generator's outputs
(cifar10c_reference.npz in the `testdata` folder: 64 images x 5 severities)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppsearch.robustness.corruptions import ALL_CORRUPTIONS, corrupt

# The reference generator sets no seed, so only these can be compared pixel for pixel.
DETERMINISTIC = ("brightness", "contrast", "saturate", "pixelate", "jpeg_compression",
                 "defocus_blur", "gaussian_blur", "zoom_blur")
STOCHASTIC = tuple(name for name in ALL_CORRUPTIONS if name not in DETERMINISTIC)


def mean_abs_change(corrupted: np.ndarray, clean: np.ndarray) -> float:
    """Per-image mean absolute change from the clean image, averaged over images."""
    return float(np.abs(corrupted.astype(np.float64) - clean).mean())


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_match_the_reference_pixels(cifar10c_reference, name):
    for severity in range(1, 6):
        ours = corrupt(cifar10c_reference["clean"], name, severity).astype(np.int16)
        close = np.abs(ours - cifar10c_reference[name][severity - 1]) <= 1
        assert close.mean() >= 0.99, f"severity {severity}: {close.mean():.4f} within 1 level"


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_corruptions_match_the_reference_statistics(cifar10c_reference, testdata, name):
    clean = cifar10c_reference["clean"]
    options = {"frost_dir": testdata / "frost"} if name == "frost" else {}
    ours = np.array([mean_abs_change(corrupt(clean, name, s, **options), clean) for s in range(1, 6)])
    theirs = np.array([mean_abs_change(cifar10c_reference[name][s - 1], clean) for s in range(1, 6)])
    assert abs(ours.sum() / theirs.sum() - 1) <= 0.06
    np.testing.assert_allclose(ours, theirs, rtol=0.15)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_corruptions_depend_on_the_seed_only(cifar10c_reference, name):
    clean = cifar10c_reference["clean"][:8]
    first = corrupt(clean, name, 3, seed=7)
    np.testing.assert_array_equal(first, corrupt(clean, name, 3, seed=7))
    assert not np.array_equal(first, corrupt(clean, name, 3, seed=8))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_ignore_the_seed(cifar10c_reference, name):
    clean = cifar10c_reference["clean"][:8]
    np.testing.assert_array_equal(corrupt(clean, name, 3, seed=0), corrupt(clean, name, 3, seed=1))


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
@pytest.mark.parametrize("shape", [(3, 20, 28, 3), (2, 40, 56, 3)])  # CIFAR and ImageNet tables
def test_type_shape_and_values_preserved_across_input_types(name, shape):
    images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    from_numpy = corrupt(images, name, 5, seed=3)
    from_tensor = corrupt(torch.from_numpy(images), name, 5, seed=3)
    assert isinstance(from_numpy, np.ndarray) and isinstance(from_tensor, torch.Tensor)
    assert from_numpy.shape == shape and from_numpy.dtype == np.uint8
    assert from_tensor.shape == shape and from_tensor.dtype == torch.uint8
    np.testing.assert_array_equal(from_numpy, from_tensor.numpy())
    assert not np.array_equal(from_numpy, images)


@pytest.mark.parametrize(("images", "name", "severity", "message"), [
    (np.zeros((2, 32, 32, 3), np.uint8), "not_a_corruption", 1, "unknown corruption 'not_a_corruption'; allowed:"),
    (np.zeros((2, 32, 32, 3), np.uint8), "brightness", 0, "severity must be one of 1..5, got 0"),
    (np.zeros((2, 32, 32, 3), np.uint8), "brightness", 6, "severity must be one of 1..5, got 6"),
    (np.zeros((2, 32, 32, 3), np.uint8), "brightness", 1.0, "severity must be one of 1..5, got 1.0"),
    (np.zeros((2, 32, 32, 3), np.float32), "brightness", 1, "images must be uint8, got torch.float32"),
    (np.zeros((2, 32, 32, 1), np.uint8), "brightness", 1, r"images must have shape \(N, H, W, 3\)"),
    (np.zeros((0, 32, 32, 3), np.uint8), "brightness", 1, "images is an empty batch"),
], ids=["unknown-name", "severity-0", "severity-6", "float-severity", "float32", "one-channel", "empty"])
@pytest.mark.bad_input
def test_corrupt_rejects_bad_input(images, name, severity, message):
    with pytest.raises(ValueError, match=message):
        corrupt(images, name, severity)
