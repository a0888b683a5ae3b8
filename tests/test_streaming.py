"""The streaming data source: ImageNet-layout JPEG trees read from their files, with the same
batches as in memory, a memory budget, and an explicit policy for unreadable files."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ppsearch.cli import main
from ppsearch.data.datasets import load_dataset
from ppsearch.data.streaming import (
    PREFETCH_BATCHES,
    DataAccess,
    ImageFiles,
    LoaderPlan,
    UnreadableImage,
    epoch_batches,
    plan_loader,
)
from ppsearch.errors import UserError
from ppsearch.models.model_file import ModelSpec
from ppsearch.search.cluster import Resources, connect_ray
from ppsearch.training.recipes import get_recipe
from ppsearch.training.trainer import Checkpointing, fit

WNIDS = ("n01440764", "n01443537", "n01484850")
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def write_jpeg_tree(root, per_class: dict[str, int]):
    """An ImageNet ImageFolder of JPEGs of assorted sizes whose classes differ in brightness
    (learnable), ``per_class[split]`` images per class."""
    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for c, wnid in enumerate(WNIDS):
            (root / split / wnid).mkdir(parents=True)
            for k in range(count):
                h, w = (int(v) for v in rng.integers(40, 80, 2))
                image = rng.normal(60 + 60 * c, 30, (h, w, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(image).save(root / split / wnid / f"{k}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("imagenet"), {"train": 16, "val": 4})


def test_auto_streams_what_is_over_the_memory_budget(tree):
    in_memory = load_dataset("imagenet", tree, image_size=24)
    tiny = load_dataset("imagenet", tree, image_size=24, access=DataAccess(memory_budget_gib=5e-5))
    assert not in_memory.streamed and tiny.streamed  # 60 images of 24x24x3: 104 kB; 5e-5 GiB: 54 kB
    assert isinstance(tiny.train_images, ImageFiles) and tiny.train_images.shape == (48, 24, 24, 3)
    assert load_dataset("imagenet", tree, image_size=24, access=DataAccess(stream="always")).streamed
    assert not load_dataset("imagenet", tree, image_size=24,
                            access=DataAccess(stream="never", memory_budget_gib=5e-5)).streamed
    # the same images either way: indexing selects files, .to() decodes them
    assert torch.equal(tiny.train_labels, in_memory.train_labels)
    assert torch.equal(tiny.test_images.to("cpu"), in_memory.test_images)
    index = torch.tensor([5, 0, 17])
    assert torch.equal(tiny.train_images[index].to("cpu"), in_memory.train_images[index])
    assert torch.equal(tiny.train_images[3:9].to("cpu"), in_memory.train_images[3:9])


class Interrupt(Exception):
    pass


def _fit(images, labels, epochs=2, checkpoint=None, stop_after=None):
    spec = ModelSpec("resnet18", {}, 3, len(WNIDS), "imagenet", MEAN, STD)
    torch.manual_seed(0)
    model = spec.build()
    recipe = dataclasses.replace(get_recipe("fast"), batch_size=8)

    def on_epoch(report, _):
        if report.epoch == stop_after:
            raise Interrupt

    history = fit(model, images, labels, recipe, epochs=epochs, augmentation="standard", mean=MEAN, std=STD, seed=3,
                  on_epoch=on_epoch, checkpointing=checkpoint and Checkpointing(checkpoint, spec, {"seed": 3}))
    return model, history


def test_streaming_trains_exactly_as_in_memory(tree):
    """Same seed, same batches in the same order, same augmentation: the same weights, bit for bit."""
    in_memory = load_dataset("imagenet", tree, image_size=24)
    streamed = load_dataset("imagenet", tree, image_size=24, access=DataAccess(stream="always"))
    model_a, history_a = _fit(in_memory.train_images, in_memory.train_labels)
    model_b, history_b = _fit(streamed.train_images, streamed.train_labels)
    assert [r.train_loss for r in history_a] == [r.train_loss for r in history_b]
    assert [r.images for r in history_b] == [48, 48] and history_b[-1].skipped_images == 0
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_streamed_run_resumes_from_its_epoch_checkpoint_exactly(tree, tmp_path):
    streamed = load_dataset("imagenet", tree, image_size=24, access=DataAccess(stream="always"))
    straight, _ = _fit(streamed.train_images, streamed.train_labels)
    with pytest.raises(Interrupt):
        _fit(streamed.train_images, streamed.train_labels, checkpoint=tmp_path / "ckpt", stop_after=1)
    resumed, history = _fit(streamed.train_images, streamed.train_labels, checkpoint=tmp_path / "ckpt")
    assert len(history) == 2
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_epoch_batches_follow_the_order_with_workers(tree):
    streamed = load_dataset("imagenet", tree, image_size=24, access=DataAccess(stream="always"))
    in_memory = load_dataset("imagenet", tree, image_size=24)
    order = torch.randperm(48, generator=torch.Generator().manual_seed(1))
    batches = list(epoch_batches(streamed.train_images, streamed.train_labels, order, 10, 4, torch.device("cpu"),
                                 workers=2))
    assert len(batches) == 4  # full batches only, as in memory
    for step, (x, y, skipped) in enumerate(batches):
        index = order[step * 10:(step + 1) * 10]
        assert torch.equal(x, in_memory.train_images[index]) and torch.equal(y, in_memory.train_labels[index])
        assert skipped == 0


@pytest.fixture
def damaged(tmp_path):
    """A tree whose one training JPEG is damaged after the files were listed (as on a flaky disk)."""
    root = write_jpeg_tree(tmp_path, {"train": 8, "val": 2})
    return root, root / "train" / WNIDS[1] / "3.JPEG"


@pytest.mark.bad_input
def test_a_bad_image_mid_epoch_fails_or_is_skipped_and_counted(damaged):
    root, bad = damaged
    streamed = {policy: load_dataset("imagenet", root, image_size=24, access=DataAccess(stream="always",
                                                                                       bad_images=policy))
                for policy in ("fail", "skip")}
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    with pytest.raises(UnreadableImage, match=f"cannot decode image {bad}.*--bad-images skip"):
        _fit(streamed["fail"].train_images, streamed["fail"].train_labels, epochs=1)
    _, history = _fit(streamed["skip"].train_images, streamed["skip"].train_labels)
    assert [(r.images, r.skipped_images) for r in history] == [(23, 1), (23, 1)]


@pytest.mark.bad_input
def test_a_budget_too_small_for_two_batches_is_refused(tree):
    files = load_dataset("imagenet", tree, image_size=24, access=DataAccess(stream="always")).train_images
    batch_bytes = 8 * 24 * 24 * 3
    assert plan_loader(files, 8, workers=4) == LoaderPlan(4, PREFETCH_BATCHES)
    # the budget holds the batch being trained on plus the workers' prefetched ones
    tight = ImageFiles(files.paths, 24, memory_budget=5 * batch_bytes, bad_images="fail")
    assert plan_loader(tight, 8, workers=4) == LoaderPlan(4, 1)
    assert plan_loader(tight, 8, workers=2) == LoaderPlan(2, 2)
    assert plan_loader(ImageFiles(files.paths, 24, memory_budget=3 * batch_bytes), 8, workers=4) == LoaderPlan(2, 1)
    small = ImageFiles(files.paths, 24, memory_budget=batch_bytes, bad_images="fail")
    with pytest.raises(UserError, match=r"too small to stream batches of 8 images at 24x24 .*--memory-budget"):
        plan_loader(small, 8)
    assert plan_loader(torch.zeros(4, 24, 24, 3, dtype=torch.uint8), 8) is None


def test_a_search_shares_a_nodes_budget_between_its_concurrent_trials(local_ray):
    """Each concurrent trial on a node holds its own copy of data in memory."""
    assert DataAccess(memory_budget_gib=1, sharers=4).memory_budget == 2**30 // 4
    assert list(connect_ray(Resources(cpus_per_trial=1)).values()) == [2]  # the test cluster: one node, 2 CPUs
    assert list(connect_ray(Resources(cpus_per_trial=0.5)).values()) == [4]
    assert list(connect_ray(Resources(cpus_per_trial=0.5, max_concurrent=3)).values()) == [3]


@pytest.mark.parametrize(("args", "message"), [
    (["--stream", "sometimes"], "argument --stream: unknown stream mode 'sometimes'; allowed: auto, always, never"),
    (["--bad-images", "ignore"], "argument --bad-images: unknown bad-images policy 'ignore'; allowed: fail, skip"),
    (["--image-size", "24", "--stream", "always", "--memory-budget", "0.00001"],
     "memory budget 1e-05 GiB (per process) is too small to stream batches of 48 images at 24x24"),
    (["--dataset", "fashion-mnist", "--stream", "always"],
     "streaming applies to image-folder datasets (imagenet); fashion-mnist is read into memory"),
    (["--dataset", "fashion-mnist", "--image-size", "64"], "image size applies to imagenet only"),
])
@pytest.mark.bad_input
def test_streaming_bad_input_is_one_line_exit_2_before_anything_is_written(tree, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["train", "--space", "resnet-imagenet", "--data-dir", str(tree), "--budget", "smoke",
                 "--out", str(out), *args]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not out.exists()


def test_resnet_imagenet_smoke_search_streams_a_jpeg_tree(tmp_path, tree, local_ray, capsys):
    """The resnet-imagenet space end to end on a JPEG tree, streamed: every paper configuration and
    a searched trial complete, at the requested image size, with -C/-P sets made from it."""
    out = tmp_path / "run"
    code = main(["run", "--space", "resnet-imagenet", "--data-dir", str(tree), "--image-size", "32", "--stream", "always",
                 "--budget", "smoke", "--budget-set", "train_images=32", "eval_images=6", "c_images=2", "p_images=1",
                 "--trials", "1", "--validation-fraction", "0.25", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err[-3000:]
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 13 and set(table["status"]) == {"completed"}, table[["trial_id", "failure_reason"]]
    assert set(table["image_size"]) == {32} and set(table["dataset"]) == {"imagenet"}
    assert (table["skipped_images"] == 0).all() and table["mce"].between(0, 5).all()
