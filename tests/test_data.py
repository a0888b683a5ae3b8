import gzip
import os
import pickle

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from ppsearch.data.datasets import DATASETS, DEBIAN_FASHION_MNIST, DatasetNotFoundError, load_dataset
from ppsearch.errors import UserError

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


def _idx(dims, data_bytes):
    """An uncompressed uint8 idx file's bytes: the header of ``dims``, then ``data_bytes`` zeros."""
    return b"\x00\x00\x08" + bytes([len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(data_bytes)


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("t10k-labels-idx1-ubyte.gz", None, "is a directory, not a Fashion-MNIST idx file"),
    ("t10k-labels-idx1-ubyte.gz", lambda real: real[:100], "is damaged: Compressed file ended before the end-of-stream marker was reached"),
    ("t10k-labels-idx1-ubyte.gz", lambda real: b"garbage", "is damaged: Not a gzipped file (b'ga')"),
    ("t10k-labels-idx1-ubyte.gz", lambda real: gzip.compress(b"\x00\x00\x08\x09" + bytes(7)), "is not a uint8 idx file"),
    ("t10k-labels-idx1-ubyte.gz", lambda real: gzip.compress(_idx([5], 5)),
     "holds labels of shape (5,); t10k-images-idx3-ubyte.gz holds 10000 images"),
    ("t10k-images-idx3-ubyte.gz", lambda real: gzip.compress(_idx([10000, 1, 1], 10000)),
     "holds an array of shape (10000, 1, 1); Fashion-MNIST images are (N, 28, 28)"),
])
@pytest.mark.bad_input
def test_a_damaged_fashion_mnist_file_is_named(tmp_path, name, content, problem):
    for path in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        (tmp_path / path.name).symlink_to(path)
    target = tmp_path / name
    target.unlink()
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content((DEBIAN_FASHION_MNIST / name).read_bytes()))
    with pytest.raises(UserError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(info.value) == f"{target} {problem}"


@pytest.mark.bad_input
def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert str(tmp_path) in message and "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "download" in message


def _stand_in_cifar10(root, monkeypatch=None):
    """A cifar-10-batches-py folder of two-image batches in CIFAR's own format (rows of 1024 R,
    1024 G, 1024 B values). With ``monkeypatch``, torchvision's md5 check is bypassed (the files are
    fakes); without, the check runs and the fakes fail it, as a damaged download would."""
    if monkeypatch is not None:
        monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    row = np.arange(3072) % 251
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        batch = {"data": np.stack([row, 255 - row]).astype(np.uint8), "labels": [k, 9 - k]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return folder


def test_cifar10_in_torchvision_layout(tmp_path, monkeypatch):
    _stand_in_cifar10(tmp_path, monkeypatch)
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert data.train_images.shape == (10, 32, 32, 3) and data.train_images.is_contiguous()
    assert data.train_labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert data.test_labels.tolist() == [5, 4] and data.num_classes == 10
    h, w, c = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(data.test_images[0].numpy(), (c * 1024 + h * 32 + w) % 251)
    assert data.classes[3] == "class3"


@pytest.mark.bad_input
def test_missing_cifar_names_the_expected_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", data_dir=tmp_path)


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda path: path.write_bytes(path.read_bytes()[:100]), "is damaged (not a readable pickle: pickle data was truncated)"),
    (lambda path: path.write_bytes(b"garbage"), "is damaged (not a readable pickle: "),
    (lambda path: path.write_bytes(b""), "is damaged (not a readable pickle: Ran out of input)"),
    (lambda path: path.write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]})),
     "is damaged (it holds no uint8 (N, 3072) images with N labels)"),
    (lambda path: (path.unlink(), path.mkdir()), "is a directory, not a CIFAR file"),
])
@pytest.mark.bad_input
def test_a_damaged_cifar_batch_is_named_not_reported_missing(tmp_path, monkeypatch, damage, problem):
    batch = _stand_in_cifar10(tmp_path, monkeypatch) / "data_batch_3"
    damage(batch)
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert not isinstance(info.value, DatasetNotFoundError)
    assert str(info.value).startswith(f"cifar10: {batch} {problem}") and "\n" not in str(info.value)


@pytest.mark.bad_input
def test_a_cifar_file_that_fails_its_checksum_is_named_as_damaged(tmp_path):
    _stand_in_cifar10(tmp_path)  # torchvision's md5 check runs: the first batch fails it
    with pytest.raises(UserError, match=r"^cifar10: .*/cifar-10-batches-py/data_batch_1 is damaged \(its MD5 checksum is not "
                                        r"the published file's\); replace it with a fresh copy, or allow download$"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.bad_input
def test_damaged_cifar_metadata_and_a_missing_batch_are_named(tmp_path, monkeypatch):
    folder = _stand_in_cifar10(tmp_path, monkeypatch)
    (folder / "batches.meta").write_bytes(pickle.dumps({"names": []}))
    with pytest.raises(UserError, match=f"^cifar10: {folder / 'batches.meta'} is damaged \\(it holds no label_names\\)"):
        load_dataset("cifar10", data_dir=tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"^cifar10 not found: {folder / 'test_batch'} is missing"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="mnist"), "allowed: " + ", ".join(DATASETS)),
    (dict(name="fashion-mnist", channels=2), "channels must be 1 or 3"),
    (dict(name="cifar10", channels=1), "fashion-mnist only"),
    (dict(name="fashion-mnist", image_size=64), "imagenet only"),
    (dict(name="fashion-mnist", subset=0), "positive"),
])
@pytest.mark.bad_input
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


@pytest.mark.bad_input
def test_imagenet_files_where_folders_should_be_are_named(tmp_path):
    _image_folder(tmp_path, {"train": [(20, 20)]})
    (tmp_path / "val").write_text("not a folder")
    with pytest.raises(UserError, match=f"^{tmp_path / 'val'} is a file, not an ImageFolder directory$"):
        load_dataset("imagenet", data_dir=tmp_path)
    with pytest.raises(UserError, match=f"^ImageFolder {tmp_path / 'val' / 'train'}: {tmp_path / 'val'} is a file, not a directory$"):
        load_dataset("imagenet", data_dir=tmp_path / "val")


@pytest.mark.bad_input
def test_imagenet_images_that_cannot_be_read_or_are_too_large_are_named(tmp_path, monkeypatch):
    _image_folder(tmp_path, {"train": [(40, 60)], "val": [(20, 20)]})
    link = tmp_path / "val" / "n01" / "link.png"
    link.symlink_to(link.name)
    with pytest.raises(UserError, match=f"^cannot read image {link}: Too many levels of symbolic links$"):
        load_dataset("imagenet", data_dir=tmp_path, image_size=16)
    link.unlink()
    # PIL refuses an image of over twice its pixel limit as a decompression bomb
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(UserError, match=f"^cannot decode image {tmp_path / 'train' / 'n01' / '0.png'}: Image size \\(2400 pixels\\) exceeds"):
        load_dataset("imagenet", data_dir=tmp_path, image_size=16)


@pytest.mark.bad_input
def test_imagenet_missing_split(tmp_path):
    _image_folder(tmp_path, {"train": [(20, 20)]})
    with pytest.raises(DatasetNotFoundError, match="val"):
        load_dataset("imagenet", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="--data-dir"):
        load_dataset("imagenet")
