"""CIFAR-10-P perturbation sequences against the reference generator's outputs and recipes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppsearch.robustness.perturbations import (
    ALL_PERTURBATIONS,
    CIFAR_P,
    IMAGENET_P,
    TEST_PERTURBATIONS,
    VALIDATION_PERTURBATIONS,
    flow_down,
    perturb,
    recipe_for,
)

DETERMINISTIC = ("brightness", "translate", "rotate", "tilt", "scale", "shear", "zoom_blur", "gaussian_blur")
STOCHASTIC = ("gaussian_noise", "shot_noise", "speckle_noise", "snow", "spatter")
FRAMES = {"translate": 16, "motion_blur": 21}  # 31 for all others


@pytest.fixture(scope="module")
def reference(testdata) -> dict[str, np.ndarray]:
    with np.load(testdata / "cifar10p_reference.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def clean(reference) -> np.ndarray:
    return reference["clean"]


def mean_abs_change(frames: np.ndarray, clean: np.ndarray) -> float:
    return float(np.abs(frames.astype(np.float64) - clean[:, None]).mean())


def test_perturbation_sets():
    assert len(TEST_PERTURBATIONS) == 10 and len(VALIDATION_PERTURBATIONS) == 4
    assert ALL_PERTURBATIONS == TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS


@pytest.mark.parametrize("name", ALL_PERTURBATIONS)
def test_shape_frame_count_and_type(clean, name):
    frames = perturb(clean[:3], name)
    assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8
    assert frames.shape == (3, FRAMES.get(name, 31), 32, 32, 3)
    tensor_frames = perturb(torch.from_numpy(clean[:3]), name)
    assert isinstance(tensor_frames, torch.Tensor) and tensor_frames.device.type == "cpu"
    np.testing.assert_array_equal(tensor_frames.numpy(), frames)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_perturbations_match_reference(reference, name):
    diff = np.abs(perturb(reference["clean"], name).astype(np.int16) - reference[name])
    assert (diff <= 1).mean() >= 0.99
    assert (diff == 0).mean() >= 0.99  # measured: 100% except tilt 99.998%, gaussian_blur 99.74%


@pytest.mark.parametrize("name", STOCHASTIC)
def test_seed_decides_the_frames(clean, name):
    first = perturb(clean[:4], name, seed=3)
    np.testing.assert_array_equal(perturb(clean[:4], name, seed=3), first)
    assert not np.array_equal(perturb(clean[:4], name, seed=4), first)


@pytest.mark.parametrize("name, noisy", [
    ("gaussian_noise", lambda x, rng: x + 0.02 * rng.standard_normal(x.shape)),
    ("shot_noise", lambda x, rng: rng.poisson(x * 700) / 700),
    ("speckle_noise", lambda x, rng: x + x * 0.05 * rng.standard_normal(x.shape)),
])
def test_noise_sequences_start_clean_then_match_the_recipe(clean, name, noisy):
    frames = perturb(clean, name)
    np.testing.assert_array_equal(frames[:, 0], clean)
    rng = np.random.default_rng(0)
    recipe = np.stack([np.uint8(255 * np.clip(noisy(clean / 255, rng), 0, 1)) for _ in range(30)], 1)
    # 16 images x 30 frames: the statistic varies by ~0.2% between seeds
    assert mean_abs_change(frames[:, 1:], clean) == pytest.approx(mean_abs_change(recipe, clean), rel=0.03)
    assert not np.array_equal(frames[:, 1], frames[:, 2])  # every frame draws fresh noise


def test_motion_blur_angles_run_from_minus_180_to_0(clean):
    """ImageMagick's blur trails along the angle: -180 degrees mirrors 0, -90 is 180 transposed."""
    images = clean[:4]
    frames = perturb(images, "motion_blur")
    mirrored = perturb(np.ascontiguousarray(images[:, :, ::-1]), "motion_blur")
    np.testing.assert_array_equal(mirrored[:, 20], frames[:, 0, :, ::-1])
    transposed = perturb(np.ascontiguousarray(images.transpose(0, 2, 1, 3)), "motion_blur")
    np.testing.assert_array_equal(transposed[:, 0], frames[:, 10].transpose(0, 2, 1, 3))
    assert not np.array_equal(frames[:, 0], images)


def test_snow_brightens_and_moves_slowly(clean):
    frames = perturb(clean, "snow").astype(np.int16)
    x = clean / 255
    gray = x @ np.array([0.299, 0.587, 0.114])
    base = np.uint8(255 * (0.85 * x + 0.15 * np.maximum(x, gray[..., None] * 1.5 + 0.5)))
    assert (frames >= base[:, None] - 1).all()  # snow only adds to the greyed-up image
    assert (frames - base[:, None]).mean() > 5  # measured: ~15 grey levels
    # the same snow layer turns a little each frame
    assert np.abs(np.diff(frames, axis=1)).mean() < 0.1 * np.abs(frames - clean[:, None]).mean()


def test_spatter_adds_water_that_flows_down(clean):
    frames = perturb(clean, "spatter").astype(np.int16)
    change = frames - clean[:, None]
    assert (change >= 0).all()  # pale turquoise water only adds
    assert (change[:, 0] > 0).any()
    per_row = change.sum((0, 3, 4))  # (T, H)
    centre = (per_row * np.arange(32)).sum(1) / per_row.sum(1)
    assert centre[-1] > centre[0] + 5  # measured: ~10 rows over the 31 frames


@pytest.mark.parametrize("images, match", [
    (np.zeros((2, 32, 32, 3), np.float32), "uint8"),
    (np.zeros((2, 32, 32), np.uint8), "shape"),
    (np.zeros((2, 32, 32, 4), np.uint8), "shape"),
    (np.zeros((0, 32, 32, 3), np.uint8), "empty"),
])
@pytest.mark.bad_input
def test_bad_images_raise(images, match):
    with pytest.raises(ValueError, match=match):
        perturb(images, "rotate")


@pytest.mark.bad_input
def test_unknown_name_lists_the_allowed_ones(clean):
    with pytest.raises(ValueError, match="unknown perturbation 'blur'.*gaussian_noise.*shear"):
        perturb(clean, "blur")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", DETERMINISTIC + ("motion_blur",))
def test_cuda_matches_cpu(clean, name):
    cpu = perturb(torch.from_numpy(clean), name)
    cuda = perturb(torch.from_numpy(clean).cuda(), name)
    assert cuda.device.type == "cuda"
    assert ((cuda.cpu().int() - cpu.int()).abs() <= 1).float().mean() >= 0.999


# ---------------------------------------------------------------- ImageNet-P's recipe above 32x32

def test_images_above_32_pixels_get_imagenet_p_recipes():
    assert recipe_for(32, 32) is CIFAR_P and recipe_for(64, 48) is IMAGENET_P
    rng = np.random.default_rng(0)
    small, large = (rng.integers(0, 256, (2, s, s, 3), dtype=np.uint8) for s in (32, 64))
    lengths = {name: (perturb(small, name).shape[1], perturb(large, name).shape[1])
               for name in ("translate", "motion_blur", "rotate", "gaussian_noise")}
    assert lengths == {"translate": (16, 41), "motion_blur": (21, 31), "rotate": (31, 31), "gaussian_noise": (31, 31)}


def test_imagenet_p_translation_shifts_one_pixel_per_frame_from_minus_20():
    images = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    frames = perturb(images, "translate")
    np.testing.assert_array_equal(frames[0, 20], images[0])  # shift 0
    np.testing.assert_array_equal(frames[0, 23][:, 3:], images[0][:, :-3])  # shift +3: content moves right
    np.testing.assert_array_equal(frames[0, 0][:, :-20], images[0][:, 20:])  # shift -20


def test_imagenet_p_noise_and_brightness_levels():
    grey = np.full((1, 64, 64, 3), 128, dtype=np.uint8)
    noise = perturb(grey, "gaussian_noise", seed=3).astype(float)
    assert noise[0, 1:].std() == pytest.approx(0.03 * 255, rel=0.05)  # ImageNet-P sigma 0.03 (CIFAR: 0.02)
    brightest = perturb(grey, "brightness")[0, 30]
    assert brightest.mean() == pytest.approx(128 + 0.30 * 255, abs=1)  # V + 15 steps of 0.02


@pytest.mark.parametrize("kernel", [(0.2, 0.8), (0.05, 0.1, 0.15, 0.7)])
def test_spatter_flows_down_as_numpys_same_convolution(kernel):
    liquid = torch.rand(2, 1, 9, 5, dtype=torch.float64)
    expected = np.apply_along_axis(lambda column: np.convolve(column, kernel, mode="same"), 2, liquid.numpy())
    np.testing.assert_allclose(flow_down(liquid, kernel).numpy(), expected, rtol=1e-12)
