"""The validation split: stratified, drawn from the seed, and never trained on."""
import pytest
import torch

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
def test_a_fraction_outside_the_range_is_refused(fraction):
    with pytest.raises(UserError, match=r"the validation fraction must be in \(0, 0.5\]"):
        TrialConfig.create({}, dataset="fashion-mnist", budget="smoke", validation_fraction=fraction)
