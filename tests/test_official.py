import os

import numpy as np
import pytest
import torch
from PIL import Image

from ppsearch.errors import UserError
from ppsearch.robustness.corruptions import SEVERITIES
from ppsearch.robustness.official import (
    OfficialDataError,
    check_cifar_set,
    check_imagenet_c,
    imagenet_c_chunks,
    load_cifar_c,
    load_cifar_p,
)

ROWS = 4  # images per severity in the fake files (the official ones have 10000)


@pytest.fixture
def cifar_c(tmp_path):
    """A fake CIFAR-10-C folder: fog.npy with 5 * ROWS rows whose first pixel holds the row index."""
    images = np.random.default_rng(0).integers(0, 256, (5 * ROWS, 32, 32, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(5 * ROWS)
    np.save(tmp_path / "fog.npy", images)
    np.save(tmp_path / "labels.npy", np.tile(np.arange(ROWS, dtype=np.uint8) + 3, 5))
    return tmp_path, images


@pytest.mark.parametrize("severity", [1, 2, 5])
def test_cifar_c_returns_the_severity_rows(cifar_c, severity):
    root, expected = cifar_c
    images, labels = load_cifar_c(root, "fog", severity)
    assert images.dtype == torch.uint8 and images.shape == (ROWS, 32, 32, 3)
    assert labels.dtype == torch.int64 and labels.tolist() == [3, 4, 5, 6]
    np.testing.assert_array_equal(images.numpy(), expected[(severity - 1) * ROWS:severity * ROWS])
    images += 1  # an in-memory copy, not the read-only memory map


def _truncate(path, size):
    path.write_bytes(path.read_bytes()[:size])


@pytest.mark.parametrize("damage, message", [
    (lambda root: _truncate(root / "fog.npy", 5000), r"fog\.npy is truncated or not a \.npy array"),
    (lambda root: _truncate(root / "fog.npy", 40), r"fog\.npy is truncated or not a \.npy array"),
    (lambda root: (root / "fog.npy").write_bytes(b"<html>not found</html>"), r"fog\.npy is truncated"),
    (lambda root: np.save(root / "fog.npy", np.zeros((20, 32, 32, 3), np.float32)), "dtype float32; expected uint8"),
    (lambda root: np.save(root / "fog.npy", np.zeros((19, 32, 32, 3), np.uint8)), r"shape \(19, 32, 32, 3\)"),
    (lambda root: np.save(root / "fog.npy", np.zeros((20, 28, 28, 1), np.uint8)), r"expected \(5 \* N, H, W, 3\)"),
    (lambda root: (root / "labels.npy").unlink(), r"labels\.npy not found"),
    (lambda root: np.save(root / "labels.npy", np.zeros(19, np.int64)), r"labels\.npy has int64 \(19,\)"),
    (lambda root: np.save(root / "labels.npy", np.zeros(20, np.float32)), "expected integer labels"),
])
@pytest.mark.bad_input
def test_cifar_c_bad_files_are_named_in_one_line(cifar_c, damage, message):
    root, _ = cifar_c
    damage(root)
    with pytest.raises(OfficialDataError, match=message) as info:
        load_cifar_c(root, "fog", 1)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert str(root) in str(info.value)


@pytest.mark.bad_input
def test_cifar_c_missing_corruption_lists_what_is_there(cifar_c):
    root, _ = cifar_c
    with pytest.raises(OfficialDataError, match=r"snow\.npy not found; available in .*: fog$"):
        load_cifar_c(root, "snow", 1)


def test_cifar_c_severity_is_checked(cifar_c):
    with pytest.raises(ValueError, match="severity must be one of 1..5"):
        load_cifar_c(cifar_c[0], "fog", 0)


def test_an_unchanged_set_is_opened_once_per_process(cifar_c, monkeypatch):
    """Every trial of a search worker reads the run's sets: each file is mapped once, not per
    trial, per check or per severity."""
    root, _ = cifar_c
    opened = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda path, **kwargs: opened.append(path.name) or real_load(path, **kwargs))
    for _ in range(2):  # two trials
        check_cifar_set(root, ["fog"], False, (32, 32), CLASSES)
        for severity in SEVERITIES:
            load_cifar_c(root, "fog", severity)
    assert sorted(opened) == ["fog.npy", "labels.npy"]


def test_a_set_written_again_under_the_same_name_is_read_again(cifar_c):
    """The open maps never go stale: a set written beside and renamed over (as ``write_sets``
    does) or rewritten in place is read as it is now."""
    root, images = cifar_c
    np.testing.assert_array_equal(load_cifar_c(root, "fog", 1)[0].numpy(), images[:ROWS])
    renamed = images[::-1].copy()
    np.save(root / "fog.partial.npy", renamed)
    os.replace(root / "fog.partial.npy", root / "fog.npy")
    np.testing.assert_array_equal(load_cifar_c(root, "fog", 1)[0].numpy(), renamed[:ROWS])
    np.save(root / "fog.npy", images)  # in place, the same size
    np.testing.assert_array_equal(load_cifar_c(root, "fog", 1)[0].numpy(), images[:ROWS])
    np.save(root / "fog.npy", images[:3 * ROWS])  # in place, another shape
    with pytest.raises(OfficialDataError, match=r"shape \(12, 32, 32, 3\)"):
        load_cifar_c(root, "fog", 1)


def test_only_the_evaluated_rows_are_read(cifar_c, tmp_path):
    root, images = cifar_c
    subset, labels = load_cifar_c(root, "fog", 2, subset=3)
    np.testing.assert_array_equal(subset.numpy(), images[ROWS:ROWS + 3])
    assert labels.tolist() == [3, 4, 5]
    assert len(load_cifar_c(root, "fog", 2, subset=2 * ROWS)[0]) == ROWS  # never past the severity's rows
    frames = np.random.default_rng(1).integers(0, 256, (6, 3, 32, 32, 3), dtype=np.uint8)
    p_dir = tmp_path / "p"
    p_dir.mkdir()
    np.save(p_dir / "rotate.npy", frames)
    np.save(p_dir / "labels.npy", np.arange(6))
    sequences, labels = load_cifar_p(p_dir, "rotate", subset=2)
    np.testing.assert_array_equal(sequences.numpy(), frames[:2])
    assert labels.tolist() == [0, 1]


def test_cifar_p_frames_and_labels(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (6, 5, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "rotate.npy", frames)
    np.save(tmp_path / "labels.npy", np.arange(6, dtype=np.int64))
    loaded, labels = load_cifar_p(tmp_path, "rotate")
    assert loaded.shape == (6, 5, 32, 32, 3) and loaded.dtype == torch.uint8
    np.testing.assert_array_equal(loaded.numpy(), frames)
    assert labels.tolist() == list(range(6))

    np.save(tmp_path / "rotate.npy", frames[:, 0])
    with pytest.raises(OfficialDataError, match=r"expected \(N, T >= 2, H, W, 3\)"):
        load_cifar_p(tmp_path, "rotate")
    np.save(tmp_path / "rotate.npy", frames[:5])
    with pytest.raises(OfficialDataError, match=r"labels\.npy has int64 \(6,\); expected integer labels \(5,\)"):
        load_cifar_p(tmp_path, "rotate")


CLASSES = tuple(f"class{i}" for i in range(10))


@pytest.mark.parametrize("labels, message", [
    (np.full(5 * ROWS, 99, np.int64), "holds label 99; the test set's 10 classes are labelled 0 to 9"),
    (np.r_[np.zeros(5 * ROWS - 1, np.int64), -1], "holds label -1; the test set's 10 classes are labelled 0 to 9"),
    (np.full(5 * ROWS, 10, np.uint8), "holds label 10; the test set's 10 classes are labelled 0 to 9"),
    (np.zeros(5 * ROWS, np.float32), "has float32 (20,); expected integer labels (20,)"),
    (np.zeros(5 * ROWS - 1, np.int64), "has int64 (19,); expected integer labels (20,)"),
    (np.zeros((5 * ROWS, 1), np.int64), "has int64 (20, 1); expected integer labels (20,)"),
])
def test_cifar_c_labels_are_checked_before_any_set_is_evaluated(cifar_c, labels, message):
    root, _ = cifar_c
    np.save(root / "labels.npy", labels)
    with pytest.raises(OfficialDataError) as info:
        check_cifar_set(root, ["fog"], False, (32, 32), CLASSES)
    assert str(info.value) == f"CIFAR-C file {root / 'labels.npy'} {message}"


def test_cifar_p_labels_are_checked_against_the_classes(tmp_path):
    np.save(tmp_path / "rotate.npy", np.zeros((6, 3, 32, 32, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.array([0, 1, 2, 9, 10, 3]))
    with pytest.raises(OfficialDataError) as info:
        check_cifar_set(tmp_path, ["rotate"], True, (32, 32), CLASSES)
    assert str(info.value) == (f"CIFAR-P file {tmp_path / 'labels.npy'} holds label 10; the test set's 10 classes "
                               f"are labelled 0 to 9")
    check_cifar_set(tmp_path, ["rotate"], True, (32, 32), CLASSES + ("class10",))  # 11 classes: 10 is one
    np.save(tmp_path / "labels.npy", np.arange(5))
    with pytest.raises(OfficialDataError, match=r"has int64 \(5,\); expected integer labels \(6,\)$"):
        check_cifar_set(tmp_path, ["rotate"], True, (32, 32), CLASSES)


@pytest.mark.parametrize("label", [99, -1])
@pytest.mark.bad_input
def test_eval_refuses_official_labels_outside_the_test_sets_classes(capsys, tmp_path, label):
    from ppsearch.cli import main
    from ppsearch.config import Design
    from ppsearch.models.model_file import ModelSpec, save_model
    from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS

    spec = ModelSpec("resnet8", Design().to_dict(), 1, 10, "fashion-mnist", (0.286,), (0.353,))
    model = save_model(tmp_path / "model.safetensors", spec.build(), spec)
    folder = tmp_path / "Fashion-MNIST-C"
    folder.mkdir()
    for name in BENCHMARK_CORRUPTIONS:
        np.save(folder / f"{name}.npy", np.zeros((5 * ROWS, 32, 32, 3), np.uint8))
    np.save(folder / "labels.npy", np.r_[np.arange(5 * ROWS - 1) % 10, label])
    assert main(["eval", "--checkpoint", str(model), "--dataset", "fashion-mnist", "--subset", str(ROWS),
                 "--c-source", f"official:{folder}", "--p-source", "none", "--quiet",
                 "--out", str(tmp_path / "eval")]) == 2
    assert capsys.readouterr().err == (f"ppsearch: error: CIFAR-C file {folder / 'labels.npy'} holds label {label}; "
                                       f"the test set's 10 classes are labelled 0 to 9\n")
    assert not (tmp_path / "eval").exists()


@pytest.fixture
def imagenet_c(tmp_path):
    """A fake ImageNet-C tree fog/3/<wnid>/<image>.JPEG with 20x20 images, 2 per class."""
    rng = np.random.default_rng(2)
    for wnid in ("n02", "n01"):
        (tmp_path / "fog" / "3" / wnid).mkdir(parents=True)
        for k in range(2):
            image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "fog" / "3" / wnid / f"{k}.JPEG", quality=95)
    return tmp_path


def _cell(root, classes=("n01", "n02"), **kwargs):
    chunks = list(imagenet_c_chunks(root, "fog", 3, classes, **kwargs))
    return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks]), len(chunks)


def test_imagenet_c_reads_images_at_their_size_in_chunks(imagenet_c):
    images, labels, chunks = _cell(imagenet_c, image_size=20, chunk=3)
    assert images.shape == (4, 20, 20, 3) and images.dtype == torch.uint8 and chunks == 2
    assert labels.tolist() == [0, 1, 0, 1]  # sorted wnids, class-balanced order
    # Already a centre crop: at its own size the image is only decoded, never resampled.
    expected = np.asarray(Image.open(imagenet_c / "fog" / "3" / "n02" / "0.JPEG").convert("RGB"))
    np.testing.assert_array_equal(images[1].numpy(), expected)

    small, small_labels, _ = _cell(imagenet_c, image_size=10, subset=3)
    assert small.shape == (3, 10, 10, 3) and small_labels.tolist() == [0, 1, 0]
    # labels index the classes the model was trained on, which may be more than the tree holds
    assert _cell(imagenet_c, ("n00", "n01", "n02"), image_size=20)[1].tolist() == [1, 2, 1, 2]


@pytest.mark.bad_input
def test_imagenet_c_missing_or_broken(imagenet_c):
    with pytest.raises(OfficialDataError, match=r"fog/1 not found \(there: 3\)"):
        check_imagenet_c(imagenet_c, ["fog"], ("n01", "n02"))
    with pytest.raises(OfficialDataError, match=r"snow/1 not found \(there: corruptions fog\)"):
        check_imagenet_c(imagenet_c, ["snow"], ("n01", "n02"))
    for severity in (1, 2, 4, 5):
        (imagenet_c / "fog" / str(severity) / "n01").mkdir(parents=True)
    check_imagenet_c(imagenet_c, ["fog"], ("n01", "n02"))
    (imagenet_c / "fog" / "3" / "n99").mkdir()
    with pytest.raises(OfficialDataError, match=r"fog/3/n99 is not a class of the test set \(its 2 classes"):
        check_imagenet_c(imagenet_c, ["fog"], ("n01", "n02"))
    (imagenet_c / "fog" / "3" / "n99").rmdir()
    (imagenet_c / "fog" / "3" / "n01" / "9.JPEG").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(UserError, match=r"cannot decode image .*n01/9\.JPEG"):
        _cell(imagenet_c, image_size=20)
