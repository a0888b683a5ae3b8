import os
import pickle

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from ppsearch.data.datasets import DATASETS, DEBIAN_FASHION_MNIST, DatasetNotFoundError, load_dataset

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist")


def test_fashion_mnist_shapes_and_types(fashion):
    assert fashion.name == "fashion-mnist"
    assert fashion.train_images.shape == (60000, 32, 32, 1)
    assert fashion.test_images.shape == (10000, 32, 32, 1)
    assert fashion.train_images.dtype == torch.uint8 and fashion.train_images.is_contiguous()
    assert fashion.train_labels.dtype == torch.int64 and fashion.test_labels.shape == (10000,)
    assert fashion.classes == FASHION_CLASSES and fashion.num_classes == 10


def test_fashion_mnist_contents_match_the_published_dataset(fashion):
    # Balanced classes, the well-known first training labels and the usual normalisation mean.
    assert fashion.train_labels.bincount().tolist() == [6000] * 10
    assert fashion.test_labels.bincount().tolist() == [1000] * 10
    assert fashion.train_labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert fashion.train_images[:, 2:30, 2:30].double().mean().item() / 255 == pytest.approx(0.2860, abs=1e-4)


def test_fashion_mnist_is_padded_with_zeros(fashion):
    for images in (fashion.train_images, fashion.test_images):
        border = torch.ones(32, 32, dtype=torch.bool)
        border[2:30, 2:30] = False
        assert images[:, border].max() == 0
        assert images[:, 2:30, 2:30].amax(dim=(0, 3)).min() > 0  # every interior pixel is used


def test_fashion_mnist_three_channels_replicate(fashion):
    rgb = load_dataset("fashion-mnist", channels=3, subset=100)
    assert rgb.train_images.shape == (100, 32, 32, 3) and rgb.train_images.is_contiguous()
    assert torch.equal(rgb.train_images, fashion.train_images[:100].expand(-1, -1, -1, 3))
    assert torch.equal(rgb.test_labels, fashion.test_labels[:100])


def test_fashion_mnist_from_a_torchvision_layout(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        (raw / path.name).symlink_to(path)
    data = load_dataset("fashion-mnist", data_dir=tmp_path, subset=10)
    assert data.train_images.shape == (10, 32, 32, 1)
    assert data.train_labels.tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_truncated_idx_file_is_reported(tmp_path):
    for path in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        (tmp_path / path.name).symlink_to(path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x27\x10" + bytes(100))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte is truncated"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert str(tmp_path) in message and "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "download" in message


def test_cifar10_in_torchvision_layout(tmp_path, monkeypatch):
    # Files in CIFAR's own format (rows of 1024 R, 1024 G, 1024 B values); torchvision's md5 check
    # is bypassed because the files are fakes.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    row = np.arange(3072) % 251
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        batch = {"data": np.stack([row, 255 - row]).astype(np.uint8), "labels": [k, 9 - k]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))

    data = load_dataset("cifar10", data_dir=tmp_path)
    assert data.train_images.shape == (10, 32, 32, 3) and data.train_images.is_contiguous()
    assert data.train_labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert data.test_labels.tolist() == [5, 4] and data.num_classes == 10
    h, w, c = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(data.test_images[0].numpy(), (c * 1024 + h * 32 + w) % 251)
    assert data.classes[3] == "class3"


def test_missing_cifar_names_the_expected_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", data_dir=tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="mnist"), "allowed: " + ", ".join(DATASETS)),
    (dict(name="fashion-mnist", channels=2), "channels must be 1 or 3"),
    (dict(name="cifar10", channels=1), "fashion-mnist only"),
    (dict(name="fashion-mnist", image_size=64), "imagenet only"),
    (dict(name="fashion-mnist", subset=0), "positive"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(**kwargs)


def _image_folder(root, sizes):
    """An ImageFolder tree with classes n01, n02; sizes[split] lists (h, w) per image and class."""
    rng = np.random.default_rng(0)
    for split, shapes in sizes.items():
        for wnid in ("n01", "n02"):
            (root / split / wnid).mkdir(parents=True)
            for k, shape in enumerate(shapes):
                Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(
                    root / split / wnid / f"{k}.png")


def test_imagenet_image_folder(tmp_path):
    _image_folder(tmp_path, {"train": [(40, 60), (50, 30), (24, 24)], "val": [(36, 48), (20, 20)]})
    data = load_dataset("imagenet", data_dir=tmp_path, image_size=16)
    assert data.classes == ("n01", "n02")
    assert data.train_images.shape == (6, 16, 16, 3) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (4, 16, 16, 3)
    # Round-robin over classes: the k-th image of each class before any (k+1)-th.
    assert data.train_labels.tolist() == [0, 1, 0, 1, 0, 1]
    # Shorter side to 16 * 8 / 7 = 18, then a centre crop: the usual ImageNet evaluation transform.
    reference = transforms.Compose([transforms.Resize(18), transforms.CenterCrop(16)])
    for i, path in enumerate(["n01/0.png", "n02/0.png", "n01/1.png"]):
        expected = np.asarray(reference(Image.open(tmp_path / "train" / path)))
        np.testing.assert_array_equal(data.train_images[i].numpy(), expected)

    subset = load_dataset("imagenet", data_dir=tmp_path, image_size=16, subset=3)
    assert subset.train_labels.tolist() == [0, 1, 0]
    assert torch.equal(subset.train_images, data.train_images[:3])


def test_imagenet_converts_grayscale_and_reports_bad_files(tmp_path):
    _image_folder(tmp_path, {"train": [(20, 20)], "val": [(20, 20)]})
    Image.fromarray(np.full((20, 20), 77, np.uint8)).save(tmp_path / "val" / "n02" / "gray.png")
    data = load_dataset("imagenet", data_dir=tmp_path, image_size=20)
    assert (data.test_images[-1] == 77).all()
    (tmp_path / "val" / "n01" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png"):
        load_dataset("imagenet", data_dir=tmp_path, image_size=20)


def test_imagenet_missing_split(tmp_path):
    _image_folder(tmp_path, {"train": [(20, 20)]})
    with pytest.raises(DatasetNotFoundError, match="val"):
        load_dataset("imagenet", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="--data-dir"):
        load_dataset("imagenet")
