"""Blur and weather internals: ImageMagick's motion blur, glass blur's pixel loop, frost textures."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from ppsearch.errors import UserError
from ppsearch.robustness.corruptions import corrupt
from ppsearch.robustness.corruptions.blur import MOTION, _glass_sources, line_blur
from ppsearch.robustness.corruptions.weather import FROST_FILES, frost_source, plasma_fractal


def mean_abs_change(corrupted: np.ndarray, clean: np.ndarray) -> float:
    """Per-image mean absolute change from the clean image, averaged over images."""
    return float(np.abs(corrupted.astype(np.float64) - clean).mean())


def change_per_severity(clean: np.ndarray, name: str, **options) -> np.ndarray:
    return np.array([mean_abs_change(corrupt(clean, name, s, **options), clean) for s in range(1, 6)])


@pytest.mark.parametrize("severity", [1, 5])
def test_line_blur_reproduces_imagemagick_at_some_angle(cifar10c_reference, severity):
    """Every reference motion_blur image is our line_blur at one of the angles: the kernel,
    the pixel offsets, the edge handling and ImageMagick's quantisation all agree."""
    radius, sigma = MOTION[0][severity - 1]
    angles = torch.arange(-45, 45, 0.05, dtype=torch.float64)
    # one angle per distinct set of rounded tap offsets
    taps = torch.arange(2 * math.ceil(radius) + 1, dtype=torch.float64)[:, None]
    rad = torch.deg2rad(angles)
    offsets = torch.cat([torch.ceil(taps * rad.cos() - 0.5), torch.ceil(taps * rad.sin() - 0.5)]).T
    _, first = np.unique(offsets.numpy(), axis=0, return_index=True)
    angles = angles[np.sort(first)]
    clean = torch.from_numpy(cifar10c_reference["clean"][:16]).permute(0, 3, 1, 2).float() / 255
    theirs = torch.from_numpy(cifar10c_reference["motion_blur"][severity - 1, :16]).permute(0, 3, 1, 2).float()
    for image, target in zip(clean, theirs):
        blurred = line_blur(image.expand(len(angles), -1, -1, -1), radius, sigma, angles)
        ours = torch.floor(torch.round(blurred * 65535) / 257)
        exact = (ours == target).float().mean((1, 2, 3)).max()
        assert exact >= 0.99


@pytest.mark.parametrize("delta", [1, 2, 3])
def test_glass_sources_follow_the_sequential_pixel_loop(delta):
    n, h, w = 3, 11, 9
    sources = _glass_sources(n, h, w, delta, torch.Generator().manual_seed(5), torch.device("cpu"))
    # replay the reference loop with the same draws
    rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
    picks = torch.randint((2 * delta) ** 2, (n, len(rows) * len(cols)), generator=torch.Generator().manual_seed(5))
    for image in range(n):
        pixels = np.arange(h * w).reshape(h, w)
        draws = iter(picks[image].tolist())
        for r in rows:
            for c in cols:
                dy, dx = divmod(next(draws), 2 * delta)
                pixels[r, c] = pixels[r + dy - delta, c + dx - delta]
        np.testing.assert_array_equal(sources[image].numpy(), pixels.ravel())


def test_procedural_frost_changes_images_like_the_reference_textures(cifar10c_reference):
    clean = cifar10c_reference["clean"]
    ours = change_per_severity(clean, "frost")
    theirs = np.array([mean_abs_change(cifar10c_reference["frost"][s - 1], clean) for s in range(1, 6)])
    np.testing.assert_allclose(ours, theirs, rtol=0.25)


@pytest.mark.bad_input
def test_frost_texture_dir_missing_files_is_an_error(cifar10c_reference, testdata, tmp_path):
    shutil.copy(testdata / "frost" / "frost1.png", tmp_path)
    with pytest.raises(ValueError, match="frost2.png"):
        corrupt(cifar10c_reference["clean"][:2], "frost", 1, frost_dir=tmp_path)


@pytest.mark.bad_input
def test_a_damaged_frost_texture_is_named(tmp_path):
    for name in FROST_FILES:
        (tmp_path / name).write_bytes(b"not a png")
    with pytest.raises(UserError, match=f"frost texture {tmp_path / FROST_FILES[0]} cannot be read \\(cannot identify"):
        corrupt(torch.zeros(2, 32, 32, 3, dtype=torch.uint8), "frost", 1, frost_dir=tmp_path)


def test_frost_source_describes_the_textures(tmp_path):
    assert frost_source(None) == "procedural (ppsearch)"
    assert frost_source(tmp_path) == f"reference textures from {tmp_path}"


def test_plasma_fractal_spans_unit_range_per_image():
    fractal = plasma_fractal(4, 16, 2.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert fractal.shape == (4, 16, 16)
    torch.testing.assert_close(fractal.amin((1, 2)), torch.zeros(4, dtype=fractal.dtype))
    torch.testing.assert_close(fractal.amax((1, 2)), torch.ones(4, dtype=fractal.dtype))
    assert not torch.equal(fractal[0], fractal[1])
    with pytest.raises(ValueError, match="power of two"):
        plasma_fractal(1, 24, 2.0, torch.Generator(), torch.device("cpu"))


@pytest.mark.bad_input
def test_line_blur_rejects_bad_arguments():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="radius"):
        line_blur(x, 0, 1, torch.zeros(2))
    with pytest.raises(ValueError, match="angle"):
        line_blur(x, 3, 1, torch.zeros(3))
