"""The validation split: stratified, drawn from the seed, and never trained on."""
import pytest
import torch

from ppsearch.cli import main
from ppsearch.data.datasets import Dataset
from ppsearch.data.splits import validation_split
from ppsearch.errors import UserError
from ppsearch.training.trial import TrialConfig


def _indexed_dataset(n=1000, classes=10):
    """Images that carry their own index in two pixels, so a split can be checked by index."""
    index = torch.arange(n)
    images = torch.zeros(n, 4, 4, 1, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = (index % 256).to(torch.uint8), (index // 256).to(torch.uint8)
    labels = (index * 7 % classes).long()  # classes interleaved, unequal runs
    labels[:30] = 0  # and one class larger than the others
    return Dataset("indexed", images, labels, images[:10], labels[:10], tuple(str(c) for c in range(classes)))


def _indices(images):
    return (images[:, 0, 0, 0].long() + 256 * images[:, 0, 1, 0].long()).tolist()


def test_the_split_is_stratified_disjoint_and_drawn_from_the_seed():
    labels = _indexed_dataset().train_labels
    train, validation = validation_split(labels, 0.1, seed=3)
    assert sorted(train.tolist() + validation.tolist()) == list(range(len(labels)))
    for c in range(10):
        assert (labels[validation] == c).sum() == round(0.1 * (labels == c).sum().item())
    assert torch.equal(validation, validation_split(labels, 0.1, seed=3)[1])
    assert not torch.equal(validation, validation_split(labels, 0.1, seed=4)[1])


def test_training_never_sees_a_validation_image():
    data = _indexed_dataset()
    config = TrialConfig.create({}, dataset="fashion-mnist", budget="smoke", validation_fraction=0.2,
                                validation_seed=5, budget_overrides={"train_images": None})
    train, validation = config.splits(data)
    held_out = set(validation_split(data.train_labels, 0.2, seed=5)[1].tolist())
    assert set(_indices(validation.images)) == held_out and 190 <= len(held_out) <= 210
    assert not set(_indices(train.images)) & held_out and len(train.images) + len(held_out) == 1000
    assert torch.equal(train.labels, data.train_labels[_indices(train.images)])
    limited = TrialConfig.create({}, dataset="fashion-mnist", budget="smoke", validation_fraction=0.2,
                                 validation_seed=5).splits(data)[0]  # the smoke budget's first 256 of the rest
    assert _indices(limited.images) == _indices(train.images)[:256]


def test_without_a_validation_fraction_the_trial_trains_on_the_first_images():
    data = _indexed_dataset()
    train, validation = TrialConfig.create({}, dataset="fashion-mnist", budget="smoke").splits(data)
    assert validation is None and _indices(train.images) == list(range(256))


@pytest.mark.parametrize("fraction", [0, -0.1, 0.51, float("nan"), True])
@pytest.mark.bad_input
def test_a_fraction_outside_the_range_is_refused(fraction):
    with pytest.raises(UserError, match=r"the validation fraction must be in \(0, 0.5\]"):
        TrialConfig.create({}, dataset="fashion-mnist", budget="smoke", validation_fraction=fraction)


def _labels(*sizes):
    """Labels of classes 0, 1, ... with ``sizes`` images, interleaved."""
    return torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])[torch.randperm(sum(sizes), generator=torch.Generator().manual_seed(0))]


@pytest.mark.bad_input
def test_a_fraction_that_leaves_a_class_without_a_validation_image_is_refused_with_the_smallest_that_works():
    labels = _labels(16, 5, 40)  # 0.1 of 5 rounds to none (round half to even)
    for fraction in (0.05, 0.1):
        with pytest.raises(UserError, match=rf"^validation fraction {fraction} holds out no image of class 1 \(5 training images, "
                                            r"the fewest of 3 classes\); the smallest fraction that holds out an image of every class is 0\.101$"):
            validation_split(labels, fraction, seed=0)
    train, validation = validation_split(labels, 0.101, seed=0)
    assert labels[validation].bincount().tolist() == [2, 1, 4] and labels[train].bincount().tolist() == [14, 4, 36]


@pytest.mark.parametrize(("size", "below", "smallest"), [(5000, 0.0001, 0.000101), (6000, 8.33e-05, 8.34e-05), (3, 0.166, 0.167)])
def test_the_suggested_fraction_is_the_smallest_of_three_digits_that_works(size, below, smallest):
    """0.0001 of 5000 is exactly half an image, which rounds to none: the suggestion is above it."""
    with pytest.raises(UserError, match=f"is {smallest:g}$"):
        validation_split(_labels(size, size + 1), below, seed=0)
    assert len(validation_split(_labels(size, size + 1), smallest, seed=0)[1]) >= 2


def test_a_class_of_one_image_cannot_be_split():
    with pytest.raises(UserError, match=r"class 2 \(1 training images, the fewest of 3 classes\); no fraction up to 0\.5 holds out a class's only image$"):
        validation_split(_labels(4, 3, 1), 0.5, seed=0)


def test_every_class_keeps_a_training_image_at_the_largest_fraction():
    labels = _labels(2, 3, 4, 5)
    train, validation = validation_split(labels, 0.5, seed=0)
    assert labels[validation].bincount().tolist() == [1, 2, 2, 2] and labels[train].bincount().tolist() == [1, 1, 2, 3]


@pytest.mark.parametrize("command", [["train"], ["run", "--trials", "1"]])
@pytest.mark.bad_input
def test_the_command_line_refuses_such_a_fraction_before_anything_is_written(tmp_path, capsys, command):
    out = tmp_path / "out"
    assert main([*command, "--dataset", "fashion-mnist", "--validation-fraction", "0.00001", "--budget", "smoke",
                 "--quiet", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("ppsearch: error: validation fraction 1e-05 holds out no image of class 0 (6000 training images, "
                                       "the fewest of 10 classes); the smallest fraction that holds out an image of every class is 8.34e-05\n")
    assert not out.exists()
