import pytest
import torch
import torch.nn.functional as nnf
from torchvision.transforms import v2

from ppsearch.config import AUGMENTATIONS
from ppsearch.data.datasets import load_dataset
from ppsearch.training.augment import augment, augmix, autoaugment, cutout, random_crop_flip

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def gray():
    return load_dataset("fashion-mnist", subset=64).train_images


@pytest.fixture(scope="module", params=[1, 3], ids=["gray", "rgb"])
def images(request, gray):
    return gray if request.param == 1 else load_dataset("fashion-mnist", subset=64, channels=3).train_images


def _generator(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def _windows(image: torch.Tensor) -> torch.Tensor:
    """All 4-pixel-padded 32x32 crops of one (H, W, C) image, unflipped then flipped: (162, H, W, C)."""
    h, w, _ = image.shape
    padded = nnf.pad(image, (0, 0, 4, 4, 4, 4))
    crops = torch.stack([padded[y:y + h, x:x + w] for y in range(9) for x in range(9)])
    return torch.cat([crops, crops.flip(2)])


def _fingerprint(x: torch.Tensor) -> torch.Tensor:
    """A hash per image (a random integer combination of its pixels), to look images up among candidates.

    Exact in float64: every partial sum is an integer below 3072 * 255 * 2**20 < 2**53.
    """
    weights = torch.randint(2**20, (x[0].numel(),), generator=_generator(123), dtype=torch.float64)
    return x.flatten(1).double() @ weights


@pytest.mark.bad_input
def test_unknown_name_and_bad_images_raise(images):
    with pytest.raises(ValueError, match="allowed: none, standard, cutout, autoaugment"):
        augment(images, "randaugment", _generator(0))
    with pytest.raises(ValueError, match="uint8"):
        augment(images.float(), "standard", _generator(0))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        augment(images[..., :1].expand(-1, -1, -1, 2), "standard", _generator(0))


def test_none_is_the_identity(images):
    assert augment(images, "none", _generator(0)) is images


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", AUGMENTATIONS[1:])
def test_output_keeps_dtype_shape_device_and_depends_only_on_the_seed(images, name, device):
    x = images.to(device)
    out = augment(x, name, _generator(0, device))
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.device == x.device
    assert torch.equal(out, augment(x, name, _generator(0, device)))
    assert not torch.equal(out, augment(x, name, _generator(1, device)))
    assert (out != x).flatten(1).any(1).float().mean() > 0.9  # nearly every image changes


@pytest.mark.parametrize("name", AUGMENTATIONS[1:])
def test_each_image_in_a_batch_gets_its_own_draw(images, name):
    out = augment(images[:1].expand(512, -1, -1, -1), name, _generator(0))
    distinct = len(set(_fingerprint(out).tolist()))
    assert distinct > 100  # 162 crops x flips alone; one shared draw would give 1


def test_named_pipelines_compose_the_building_blocks(images):
    def replay(*steps):
        g, out = _generator(5), images
        for step in steps:
            out = step(out, g)
        return out

    assert torch.equal(augment(images, "standard", _generator(5)), replay(random_crop_flip))
    assert torch.equal(augment(images, "cutout", _generator(5)), replay(random_crop_flip, cutout))
    assert torch.equal(augment(images, "autoaugment", _generator(5)), replay(random_crop_flip, autoaugment))
    assert torch.equal(augment(images, "autoaugment+cutout", _generator(5)),
                       replay(random_crop_flip, autoaugment, cutout))
    assert torch.equal(augment(images, "augmix", _generator(5)), replay(random_crop_flip, augmix))


def test_crops_are_shifted_windows_of_the_zero_padded_image(images):
    sample = images[:16]
    out = random_crop_flip(sample, _generator(0))
    windows = torch.stack([_windows(image) for image in sample])
    match = _fingerprint(windows.flatten(0, 1)).view(len(sample), -1) == _fingerprint(out)[:, None]
    assert match.any(1).all()
    assert torch.equal(windows[torch.arange(len(sample)), match.int().argmax(1)], out)


def test_crop_offsets_and_flips_are_uniform(gray):
    image = gray[0]  # an ankle boot: no two windows alike
    windows = _windows(image)
    keys = _fingerprint(windows)
    assert len(set(keys.tolist())) == len(windows)
    out = random_crop_flip(image.expand(4096, -1, -1, -1), _generator(0))
    found = (_fingerprint(out)[:, None] == keys).nonzero()[:, 1]
    assert len(found) == len(out) and torch.equal(windows[found], out)
    flipped, offset = found // 81, found % 81
    assert flipped.float().mean().item() == pytest.approx(0.5, abs=0.04)
    for coordinate in (offset // 9, offset % 9):  # 455 expected per value, sd 20
        assert coordinate.bincount(minlength=9).sub(4096 / 9).abs().max() < 100


def test_cutout_zeroes_one_clipped_16x16_square_per_image(images):
    x = images.clamp(min=1).repeat(32, 1, 1, 1)  # no zeros of its own: every zero is cut out
    out = cutout(x, _generator(0))
    zero = out == 0
    assert torch.equal(zero, zero[..., :1].expand_as(zero))  # all channels alike
    assert torch.equal(out[~zero], x[~zero])
    zero = zero[..., 0]
    rows, cols = zero.any(2), zero.any(1)
    assert torch.equal(zero, rows[:, :, None] & cols[:, None, :])  # a rectangle
    for inside in (rows, cols):
        first = inside.int().argmax(1)
        end = first + inside.sum(1)
        assert torch.equal(inside.sum(1), end - first) and (inside.sum(1) > 0).all()  # contiguous, non-empty
        centre = torch.where(first > 0, first + 8, end - 8)
        assert torch.equal(first, (centre - 8).clamp(min=0)) and torch.equal(end, (centre + 8).clamp(max=32))
        assert centre.bincount(minlength=32).sub(len(x) / 32).abs().max() < 40  # uniform: 64 per row, sd 8


def _autoaugment_outcomes(image: torch.Tensor) -> dict[bytes, float]:
    """The probability of every image torchvision's AutoAugment (CIFAR-10 policy) makes of one (C, H, W) image."""
    reference = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    h, w = image.shape[-2:]

    def variants(x, op, p, level):
        magnitudes, signed = reference._AUGMENTATION_SPACE[op]
        values = magnitudes(10, h, w)
        m = 0.0 if values is None else float(values[level])
        signs = (1, -1) if signed else (1,)
        return [(x, 1 - p)] + [(reference._apply_image_or_video_transform(
            x, op, sign * m, interpolation=reference.interpolation, fill=reference._fill), p / len(signs))
            for sign in signs]

    outcomes = {}
    for first, second in reference._policies:
        for x, p_first in variants(image, *first):
            for y, p_second in variants(x, *second):
                key = y.numpy().tobytes()
                outcomes[key] = outcomes.get(key, 0.0) + p_first * p_second / len(reference._policies)
    return outcomes


def test_autoaugment_draws_torchvisions_cifar10_policy_outcomes_at_their_rates(images):
    draws = 1024
    sample = images[:2]
    out = autoaugment(sample.repeat(draws, 1, 1, 1), _generator(0)).permute(0, 3, 1, 2)
    for i, image in enumerate(sample.permute(0, 3, 1, 2)):
        expected = _autoaugment_outcomes(image)
        made = [y.numpy().tobytes() for y in out[i::len(sample)]]
        assert set(made) <= set(expected)
        for outcome, p in expected.items():
            assert abs(made.count(outcome) - draws * p) <= 5 * (draws * p * (1 - p)) ** 0.5 + 1


def test_augmix_ops_act_per_channel_so_gray_and_rgb_agree(gray):
    out = augmix(gray.expand(-1, -1, -1, 3), _generator(0))
    assert torch.equal(out, augmix(gray, _generator(0)).expand(-1, -1, -1, 3))
    # A convex mix of the image and its augmented chains: close to the image, rarely equal to it.
    difference = (out.float() - gray.float()).abs().mean((1, 2, 3))
    assert (difference > 0).all() and difference.mean() < 40
