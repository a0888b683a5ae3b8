"""Generated sets on disk, official-layout loading, checkpoints and evaluation, end to end on
real Fashion-MNIST test images."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from ppsearch import Design
from ppsearch.cli import main
from ppsearch.data.datasets import load_dataset
from ppsearch.data.preprocess import normalisation
from ppsearch.models.model_file import ModelSpec, load_model, save_model
from ppsearch.robustness.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, corrupt
from ppsearch.robustness.evaluate import Predictor, batched_logits, evaluate
from ppsearch.robustness.generate import write_sets
from ppsearch.robustness.metrics import ALEXNET_CIFAR10, get_protocol
from ppsearch.robustness.perturbations import ALL_PERTURBATIONS
from ppsearch.training.sparsity import ResponseSparsity, sparsity_table

N = 12


@pytest.fixture(scope="module")
def test_split():
    data = load_dataset("fashion-mnist", channels=3, subset=N)
    return data.test_images, data.test_labels


@pytest.fixture(scope="module")
def generated(tmp_path_factory, test_split):
    out = tmp_path_factory.mktemp("sets") / "fmnist"
    return write_sets(*test_split, out, "fashion-mnist", progress=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    spec = ModelSpec("resnet20", Design(placement="pp").to_dict(), 1, 10, "fashion-mnist",
                     *normalisation("fashion-mnist", 1))
    model = spec.build()
    return save_model(tmp_path_factory.mktemp("ckpt") / "model.safetensors", model, spec), model


def test_generated_sets_use_the_official_layout(generated, test_split):
    c_dir, p_dir = generated / "Fashion-MNIST-C", generated / "Fashion-MNIST-P"
    assert np.array_equal(np.load(c_dir / "labels.npy"), np.tile(test_split[1].numpy(), 5))
    fog = np.load(c_dir / "fog.npy")
    assert fog.shape == (5 * N, 32, 32, 3) and fog.dtype == np.uint8
    # severity s occupies rows [(s-1) N, s N)
    assert np.array_equal(fog[2 * N:3 * N], corrupt(test_split[0].numpy(), "fog", 3, seed=0))
    assert sorted(p.stem for p in c_dir.glob("*.npy")) == sorted([*ALL_CORRUPTIONS, "labels"])
    translate = np.load(p_dir / "translate.npy")
    assert translate.shape == (N, 16, 32, 32, 3)
    manifest = json.loads((generated / "manifest.json").read_text())
    assert manifest["generated"] and manifest["images"] == N and manifest["seed"] == 0
    assert manifest["frost_textures"].startswith("procedural")
    assert set(manifest["perturbations"]) == set(ALL_PERTURBATIONS)
    assert not generated.with_name(generated.name + ".partial").exists()


def test_existing_output_is_never_overwritten(generated, test_split):
    with pytest.raises(ValueError, match="already exists"):
        write_sets(*test_split, generated, "fashion-mnist", progress=False)


def test_checkpoint_round_trip_rebuilds_the_model(checkpoint):
    path, model = checkpoint
    loaded = load_model(path)
    spec = loaded.ppsearch_spec
    assert spec.arch == "resnet20" and spec.design["placement"] == "pp" and spec.in_chans == 1
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_evaluation_on_official_files_equals_generation_on_the_fly(checkpoint, generated, test_split):
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    predictor = Predictor(model, spec.mean, spec.std)
    on_the_fly = evaluate(predictor, *test_split, progress=False)
    from_files = evaluate(predictor, *test_split, progress=False,
                          c_source=f"official:{generated / 'Fashion-MNIST-C'}",
                          p_source=f"official:{generated / 'Fashion-MNIST-P'}")
    assert on_the_fly.clean_error == from_files.clean_error
    assert on_the_fly.corruption_errors.equals(from_files.corruption_errors)
    assert on_the_fly.flip_probabilities == from_files.flip_probabilities
    assert set(on_the_fly.flip_probabilities) == {"gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow",
                                                  "brightness", "translate", "rotate", "tilt", "scale"}
    assert on_the_fly.summary["ce_normaliser"].startswith("seed paper CIFAR-10 AlexNet")
    assert on_the_fly.summary["protocol"] == "seed-paper"
    assert set(on_the_fly.top5_distances) == set(on_the_fly.flip_probabilities)  # 10 classes: T5D measured
    assert on_the_fly.summary["mt5d"] == pytest.approx(np.mean(list(on_the_fly.top5_distances.values())))
    assert on_the_fly.summary["corruption_error"] == pytest.approx(on_the_fly.corruption_errors["error"].mean())


def test_the_hendrycks_protocol_fixes_its_frame_rule_perturbations_and_normalisers(checkpoint, generated,
                                                                                  test_split):
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    predictor = Predictor(model, spec.mean, spec.std)
    result = evaluate(predictor, *test_split, progress=False, protocol="hendrycks", dataset="fashion-mnist",
                      c_source=f"official:{generated / 'Fashion-MNIST-C'}",
                      p_source=f"official:{generated / 'Fashion-MNIST-P'}")
    assert "spatter" in result.flip_probabilities and "snow" not in result.flip_probabilities
    # no published AlexNet for 32x32 images under this protocol: unnormalised, and said so
    assert result.summary["ce_normaliser"].startswith("none: unnormalised")
    assert result.summary["mce"] == pytest.approx(result.summary["corruption_error"])  # CE = mean error
    assert result.fr["fr"].tolist() == result.fr["fp"].tolist()
    assert "protocol         hendrycks" in result.render()


def test_evaluation_never_runs_in_reduced_precision(checkpoint, test_split):
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    logits = Predictor(model, spec.mean, spec.std).logits(test_split[0][:8])
    assert logits.dtype == torch.float32


def test_a_model_left_training_is_measured_in_eval_mode_and_left_as_it_was(checkpoint, test_split):
    """A trainer hands over its model in training mode: the measurement still normalises with the
    running statistics, leaves them as they were (in training mode BatchNorm would fold the measured
    images, corrupted ones too, into them) and hands the model back training."""
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    predictor = Predictor(model, spec.mean, spec.std)
    evaluated = predictor.logits(test_split[0])
    statistics = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    assert torch.equal(predictor.logits(test_split[0]), evaluated) and model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in statistics.items()) and statistics

def test_clean_error_counts_wrong_predictions(checkpoint, test_split):
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    images, labels = test_split
    result = evaluate(Predictor(model, spec.mean, spec.std), images, labels, c_source="none", p_source="none",
                      progress=False)
    x = (images[..., :1].permute(0, 3, 1, 2).float() / 255 - spec.mean[0]) / spec.std[0]
    with torch.no_grad():
        expected = (model.eval()(x).argmax(1) != labels).double().mean().item()
    assert result.clean_error == pytest.approx(expected)
    assert result.ce is None and result.fr is None


def test_sparsity_shares_the_clean_pass_and_changes_no_number(checkpoint, generated, test_split):
    """Sparsity measured inside the evaluation's clean pass (which grows to cover its images, in
    batches) is the table of a pass of its own, and the evaluation's metrics stay what they were."""
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    predictor = Predictor(model, spec.mean, spec.std, batch_size=5)
    sizes = {"clean_images": 4, "c_images": 3, "p_images": 2, "progress": False,
             "c_source": f"official:{generated / 'Fashion-MNIST-C'}",
             "p_source": f"official:{generated / 'Fashion-MNIST-P'}"}
    alone = evaluate(predictor, *test_split, **sizes)
    sparsity = ResponseSparsity(model, 8)
    shared = evaluate(predictor, *test_split, **sizes, watch_clean=sparsity)
    assert sparsity.table().equals(sparsity_table(model, test_split[0][:8], spec.mean, spec.std))
    assert shared.clean_error == alone.clean_error and shared.images == alone.images == 4
    assert shared.corruption_errors.equals(alone.corruption_errors) and shared.ce.equals(alone.ce)
    assert shared.flip_probabilities == alone.flip_probabilities and shared.top5_distances == alone.top5_distances
    assert shared.summary == alone.summary


C_IMAGES = 4


def test_relative_ce_subtracts_the_clean_error_of_the_corrupted_images(checkpoint, test_split):
    """Corrupted errors on the first C images, clean error on all of them: relative CE subtracts the
    clean error of those C images, not the reported one."""
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    predictor = Predictor(model, spec.mean, spec.std)
    images, _ = test_split
    predicted = predictor(images)
    labels = predicted.clone()
    labels[C_IMAGES:] = (predicted[C_IMAGES:] + 1) % 10  # right on the first C images, wrong on the others
    result = evaluate(predictor, images, labels, c_images=C_IMAGES, p_source="none", dataset="fashion-mnist",
                      progress=False)
    assert result.clean_error == pytest.approx((N - C_IMAGES) / N)
    assert result.summary["rce_clean_error"] == 0.0 and result.summary["rce_images"] == C_IMAGES
    # by hand: (mean error over severities - 0) / (AlexNet's mean error - AlexNet's clean error)
    fog = result.corruption_errors.query("corruption == 'fog'")["error"].mean()
    hand = fog / (ALEXNET_CIFAR10["fog"] - ALEXNET_CIFAR10["clean"])
    assert result.ce.set_index("corruption").loc["fog", "relative_ce"] == pytest.approx(hand)
    assert f"clean error 0.0000 of the first {C_IMAGES} images" in result.render()



def test_tiny_imagenet_parameter_sets_are_unnormalised_and_say_so(imagenet_tree):
    """64 px imagenet sets are made with Tiny-ImageNet-C's parameters: no published AlexNet."""
    model = load_model(imagenet_tree[3])
    spec = model.ppsearch_spec
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    result = evaluate(Predictor(model, spec.mean, spec.std), images, torch.tensor([0, 1]), p_source="none",
                      protocol="hendrycks", dataset="imagenet", progress=False)
    assert result.summary["ce_normaliser"].endswith("no published AlexNet for Tiny-ImageNet-C-parameter sets at 64 px")
    assert result.summary["mce"] == pytest.approx(result.summary["corruption_error"])  # CE = mean error


@pytest.mark.bad_input
def test_an_unknown_protocol_is_refused_before_anything_is_written(imagenet_tree, tmp_path, capsys):
    from ppsearch.training.trial import TrialConfig

    root, _, _, model = imagenet_tree
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(model), "--dataset", "imagenet", "--data-dir", str(root),
                 "--image-size", "32", "--protocol", "reference", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "reference" in err and "\n" not in err and not out.exists()
    with pytest.raises(ValueError, match="unknown protocol 'reference'"):  # what `run` and `train` check first
        TrialConfig.create({}, dataset="imagenet", budget="smoke", image_size=32, protocol="reference")
    assert TrialConfig.create({}, dataset="imagenet", budget="smoke", image_size=32).protocol == "hendrycks"


def test_small_pieces_share_batches_and_keep_their_shapes(checkpoint, test_split, monkeypatch):
    """-C cells of a few images and -P sequences run as full batches; every piece gets the logits
    it would get alone, in its own shape."""
    model = load_model(checkpoint[0])
    spec = model.ppsearch_spec
    predictor = Predictor(model, spec.mean, spec.std, batch_size=8)
    images = test_split[0]
    cells = [(("cell", i), images[i:i + 3]) for i in range(5)]  # 15 images in pieces of 3
    sequences = [("sequence", images[:4].unsqueeze(1).expand(-1, 2, -1, -1, -1))]  # (4, 2, H, W, C)
    passes = []
    real_logits = predictor.logits
    monkeypatch.setattr(predictor, "logits", lambda x: passes.append(len(x)) or real_logits(x))
    logits = batched_logits(predictor, cells + sequences, pass_images=12)
    assert passes == [12, 11]  # four cells, then the fifth with the sequences' eight frames
    for key, piece in cells:
        torch.testing.assert_close(logits[key], real_logits(piece), rtol=1e-5, atol=1e-5)
    assert logits["sequence"].shape == (4, 2, 10)
    torch.testing.assert_close(logits["sequence"][:, 1], real_logits(images[:4]), rtol=1e-5, atol=1e-5)


def ppsearch(*args):
    return subprocess.run([sys.executable, "-m", "ppsearch", *args], capture_output=True, text=True, timeout=600)


def test_cli_corrupt_and_eval(tmp_path, checkpoint):
    result = ppsearch("corrupt", "--dataset", "fashion-mnist", "--out", str(tmp_path / "sets"), "--subset", "4",
                      "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sets" / "Fashion-MNIST-C" / "jpeg_compression.npy").exists()
    result = ppsearch("eval", "--checkpoint", str(checkpoint[0]), "--subset", "4", "--quiet",
                      "--c-source", f"official:{tmp_path / 'sets' / 'Fashion-MNIST-C'}", "--p-source", "generated",
                      "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr
    assert "mCE" in result.stdout and "mFR" in result.stdout
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["images"] == 4 and 0 <= summary["clean_error"] <= 1
    assert (tmp_path / "eval" / "ce.csv").exists() and (tmp_path / "eval" / "fr.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["corrupt", "--dataset", "mnist", "--out", "x"], "unknown dataset 'mnist'"),
    (["corrupt", "--dataset", "fashion-mnist", "--out", "x", "--data-dir", "/nonexistent"], "fashion-mnist not found"),
    (["corrupt", "--dataset", "fashion-mnist", "--out", "x", "--device", "cuda"], "no such CUDA device"),
    (["eval", "--checkpoint", "/nonexistent.safetensors"], "does not exist"),
    (["eval", "--checkpoint", "CHECKPOINT", "--c-source", "offical:/x"], "source must be 'generated', 'none' or"),
    (["eval", "--checkpoint", "GARBAGE"], "is not a readable safetensors file"),
    (["eval", "--checkpoint", "CHECKPOINT", "--c-source", "official:/nonexistent", "--subset", "2"], "/nonexistent"),
])
@pytest.mark.bad_input
def test_cli_bad_input_is_one_line(tmp_path, checkpoint, args, message):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    args = [str(checkpoint[0]) if a == "CHECKPOINT" else str(garbage) if a == "GARBAGE" else a for a in args]
    result = ppsearch(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_random_corruptions_do_not_repeat_across_chunks(monkeypatch, test_split):
    import ppsearch.robustness.generate as generate

    monkeypatch.setattr(generate, "CHUNK", 4)
    twice = torch.cat([test_split[0][:4], test_split[0][:4]])
    first, second = generate.in_chunks(twice, lambda x, s: corrupt(x, "gaussian_noise", 3, s), 0, "cpu")
    assert torch.equal(first, corrupt(twice[:4], "gaussian_noise", 3, 0))  # the first chunk keeps the seed
    assert not torch.equal(first, second)


@pytest.fixture(scope="module")
def imagenet_tree(tmp_path_factory):
    """An ImageNet ImageFolder (train/ and val/, two wnids, JPEGs of several sizes), a model file
    for it, and an ImageNet-C tree whose every cell holds the validation images' own 224 px centre
    crops (lossless), so that every cell's error must equal the clean error."""
    from PIL import Image

    from ppsearch.data.datasets import image_folder_samples
    from ppsearch.data.streaming import decode_images

    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            (root / split / wnid).mkdir(parents=True)
            for k in range(2):
                size = (int(rng.integers(150, 300)), int(rng.integers(150, 300)))
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                    root / split / wnid / f"{k}.JPEG", quality=90)
    paths, labels, classes = image_folder_samples(root / "val")
    crops = decode_images(paths, 224)
    tree = root / "imagenet-c"
    for corruption in BENCHMARK_CORRUPTIONS:
        for severity in range(1, 6):
            for i, (crop, label) in enumerate(zip(crops.numpy(), labels.tolist())):
                folder = tree / corruption / str(severity) / classes[label]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(folder / f"{i}.png")
    videos = root / "imagenet-p"
    for perturbation in get_protocol("hendrycks").setup("imagenet", 224).perturbations:
        for i, (crop, label) in enumerate(zip(crops.numpy(), labels.tolist())):
            write_video(videos / perturbation / classes[label] / f"{i}.mp4", [crop] * 3)  # a still: no flip
    torch.manual_seed(0)
    spec = ModelSpec("resnet8", Design().to_dict(), 3, 2, "imagenet", *normalisation("imagenet", 3))
    model = save_model(root / "model.safetensors", spec.build(), spec)
    return root, tree, videos, model


def write_video(path, frames):
    """An .mp4 of uint8 RGB ``frames``, lossless (libx264rgb at qp 0): decoding gives them back."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=10, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_eval_reads_an_imagenet_c_tree(imagenet_tree, tmp_path):
    root, tree, _, model = imagenet_tree
    common = ["eval", "--checkpoint", str(model), "--dataset", "imagenet", "--data-dir", str(root),
              "--c-source", f"official:{tree}", "--p-source", "none", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "all")]) == 0
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    errors = pd.read_csv(tmp_path / "all" / "corruption_errors.csv")
    assert len(errors) == 75 and (errors["error"] == summary["clean_error"]).all()
    assert summary["ce_normaliser"].startswith("ImageNet-C AlexNet") and summary["protocol"] == "hendrycks"
    assert main([*common, "--subset", "2", "--out", str(tmp_path / "two")]) == 0
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["images"] == 2


def test_eval_reads_imagenet_p_videos(imagenet_tree, tmp_path):
    root, _, videos, model = imagenet_tree
    assert main(["eval", "--checkpoint", str(model), "--dataset", "imagenet", "--data-dir", str(root),
                 "--c-source", "none", "--p-source", f"official:{videos}", "--quiet", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["protocol"] == "hendrycks" and summary["fr_normaliser"].startswith("none: unnormalised")
    assert sorted(summary["flip_probabilities"]) == sorted(get_protocol("hendrycks").setup("imagenet", 224).perturbations)
    assert "snow" in summary["flip_probabilities"] and "spatter" not in summary["flip_probabilities"]
    assert set(summary["flip_probabilities"].values()) == {0.0} and summary["mfr"] == 0.0  # stills never flip


def _truncate(path):
    path.write_bytes(path.read_bytes()[:2000])


@pytest.mark.parametrize("source, damage, message", [
    ("c", lambda tree: shutil.rmtree(tree / "fog" / "4"), "ImageNet-C folder {dir}/fog/4 not found (there: 1, 2, 3, 5)"),
    ("c", lambda tree: (tree / "snow" / "2" / "n99999999").mkdir(),
     "ImageNet-C folder {dir}/snow/2/n99999999 is not a class of the test set"),
    ("c", lambda tree: (tree / "fog" / "1" / "n01440764" / "0.png").write_bytes(b"not an image"),
     "cannot decode image {dir}/fog/1/n01440764/0.png"),
    ("p", lambda videos: shutil.rmtree(videos / "tilt"), "ImageNet-P folder {dir}/tilt not found (there: perturbations "),
    ("p", lambda videos: _truncate(videos / "rotate" / "n01443537" / "1.mp4"),
     "ImageNet-P video {dir}/rotate/n01443537/1.mp4 cannot be read"),
    ("p", lambda videos: write_video(videos / "rotate" / "n01443537" / "1.mp4", [np.zeros((224, 224, 3), np.uint8)] * 2),
     "ImageNet-P video {dir}/rotate/n01443537/1.mp4 is truncated: 2 frames where the other rotate videos have 3"),
    ("p", lambda videos: write_video(videos / "scale" / "n01440764" / "0.mp4", [np.zeros((96, 96, 3), np.uint8)] * 3),
     "ImageNet-P video {dir}/scale/n01440764/0.mp4 has 96x96 frames; the test images are 224x224"),
])
@pytest.mark.bad_input
def test_eval_refuses_damaged_imagenet_c_and_p_sets_in_one_line(imagenet_tree, tmp_path, capsys, source, damage,
                                                                 message):
    root, tree, videos, model = imagenet_tree
    copy = tmp_path / "damaged"
    shutil.copytree(tree if source == "c" else videos, copy)
    damage(copy)
    sources = {"c": "none", "p": "none", source: f"official:{copy}"}
    out = tmp_path / "out"
    assert main(["eval", "--checkpoint", str(model), "--dataset", "imagenet", "--data-dir", str(root), "--c-source",
                 sources["c"], "--p-source", sources["p"], "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(dir=copy) in err and "\n" not in err
    assert not out.exists()


def test_eval_warns_of_a_model_at_chance_level(tmp_path, capsys):
    """A model that predicts one class for every image (as an untrained one nearly does) never flips:
    its low mFR would read as stability. eval says the model is at chance level instead."""
    spec = ModelSpec("resnet8", Design().to_dict(), 1, 10, "fashion-mnist", *normalisation("fashion-mnist", 1))
    model = spec.build()
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.arange(10.0))  # always class 9
    checkpoint = save_model(tmp_path / "constant.safetensors", model, spec)
    assert main(["eval", "--checkpoint", str(checkpoint), "--subset", str(N), "--quiet", "--c-source", "none",
                 "--p-source", "generated", "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    labels = load_dataset("fashion-mnist", subset=N).test_labels
    error = (labels != 9).float().mean().item()
    assert "mFR              0.0000" in printed  # no flip at all: "perfectly stable"
    assert (f"warning: clean error {error:.4f} is at chance level for 10 classes (accuracy {1 - error:.4f}, within "
            f"0.0500 of a uniform guess's 0.1000): the model has not learnt the task, so its mCE and mFR say nothing "
            f"about robustness") in printed


@pytest.mark.parametrize("clean_error, classes, warned", [
    (0.90, 10, True), (0.86, 10, True), (0.84, 10, False), (0.30, 10, False),  # margin 0.05: half a guess's 0.1
    (0.999, 1000, True), (0.998, 1000, False),  # 0.0005
    (0.5, 2, True), (0.46, 2, True), (0.44, 2, False), (0.3, 2, False),  # at most 0.05, not half of 0.5
])
def test_chance_level_is_an_accuracy_within_a_margin_of_a_guess(clean_error, classes, warned):
    from ppsearch.cli.commands import chance_level_warning

    assert (chance_level_warning(clean_error, classes) is not None) == warned
