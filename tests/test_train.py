"""The fast trainer and its recipes: schedules, learning, exact resume, NaN detection."""
import pytest
import torch

from ppsearch.data.preprocess import normalisation, to_model_input
from ppsearch.models import build_model
from ppsearch.models.model_file import ModelSpec
from ppsearch.training.recipes import RECIPES, Recipe, get_recipe
from ppsearch.training.trainer import Checkpointing, NonFiniteLoss, fit
from ppsearch.training.trial import trial_dataset

MEAN, STD = normalisation("fashion-mnist", 1)


@pytest.fixture(scope="module")
def fashion():
    data = trial_dataset("fashion-mnist")
    return data.train_images[:1024], data.train_labels[:1024], data.test_images[:500], data.test_labels[:500]


def test_paper_schedule_divides_by_10_at_40_60_80_percent():
    paper = get_recipe("paper")
    assert (paper.lr, paper.batch_size, paper.weight_decay, paper.momentum) == (0.1, 128, 1e-4, 0.9)
    lrs = [paper.learning_rate(step, 200) for step in (0, 79, 80, 119, 120, 159, 160, 199)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])


def test_fast_schedule_is_one_cycle():
    fast = get_recipe("fast")
    assert fast.learning_rate(0, 100) == pytest.approx(0.005)
    assert fast.learning_rate(20, 100) == pytest.approx(0.05)  # peak at the end of the warm-up
    assert fast.learning_rate(60, 100) == pytest.approx(0.025)
    assert fast.learning_rate(100, 100) == pytest.approx(0.0)
    assert fast.label_smoothing == 0.1


def test_optimizer_is_nesterov_sgd_and_spares_alpha_from_weight_decay():
    model = build_model("resnet8", in_chans=1, placement="pp", trainable_alpha=True)
    optimizer = RECIPES["paper"].optimizer(model)
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in optimizer.param_groups)
    decayed, spared = optimizer.param_groups
    assert decayed["weight_decay"] == 1e-4 and spared["weight_decay"] == 0.0
    assert [p.shape for p in spared["params"]] == [model.stem[0].alpha.shape]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


@pytest.mark.bad_input
def test_unknown_recipe_names_the_choices():
    with pytest.raises(ValueError, match="unknown recipe .adam.; allowed: paper, paper-imagenet, paper-densenet, fast"):
        get_recipe("adam")


def _error(model, images, labels):
    from ppsearch.robustness.evaluate import Predictor
    return (Predictor(model, MEAN, STD)(images) != labels).double().mean().item()


def test_training_learns_fashion_mnist(fashion):
    train_x, train_y, test_x, test_y = fashion
    torch.manual_seed(0)
    model = build_model("resnet8", in_chans=1)
    before = _error(model, test_x, test_y)
    history = fit(model, train_x, train_y, RECIPES["fast"], epochs=4, augmentation="none",
                  mean=MEAN, std=STD, seed=0)
    assert [r.epoch for r in history] == [1, 2, 3, 4] and all(r.images == 1024 for r in history)
    assert history[-1].train_loss < history[0].train_loss
    after = _error(model, test_x, test_y)
    assert before > 0.75 and after < 0.5, (before, after)  # chance is 0.9; 64 steps reach about 0.39


def test_batch_norm_statistics_after_few_steps_are_the_trained_weights_own(fashion):
    """Four steps leave BatchNorm's running averages mostly at their initial values (mean 0,
    variance 1), which describe no model: the trainer recomputes them from the unaugmented training
    images with the trained weights, so the model measured in eval mode is the one trained."""
    train_x, train_y, _, _ = fashion
    torch.manual_seed(0)
    model = build_model("resnet8", in_chans=1)
    fit(model, train_x[:256], train_y[:256], RECIPES["paper"], epochs=2, augmentation="cutout", mean=MEAN, std=STD,
        seed=0)
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    inputs = []
    handle = norm.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    with torch.no_grad():
        model.eval()(to_model_input(train_x[:256], MEAN, STD))
    handle.remove()
    assert torch.allclose(norm.running_mean, inputs[0].mean((0, 2, 3)), atol=1e-4)
    assert norm.momentum == 0.1  # training's own again


@pytest.mark.parametrize("augmentation", ["cutout", "autoaugment", "augmix"])
def test_every_augmentation_trains(fashion, augmentation):
    train_x, train_y, *_ = fashion
    torch.manual_seed(0)
    history = fit(build_model("resnet8", in_chans=1), train_x[:128], train_y[:128], RECIPES["fast"], epochs=1,
                  augmentation=augmentation, mean=MEAN, std=STD, seed=0)
    assert torch.isfinite(torch.tensor(history[0].train_loss))


class Interrupt(Exception):
    pass


def _train(directory, fashion, seed=0, stop_after=None, design=None):
    train_x, train_y, *_ = fashion
    design = design or {"placement": "pp", "trainable_alpha": True}
    spec = ModelSpec("resnet8", design, 1, 10, "fashion-mnist", MEAN, STD)
    torch.manual_seed(seed)
    model = spec.build()

    def on_epoch(report, _):
        if report.epoch == stop_after:
            raise Interrupt

    fit(model, train_x[:256], train_y[:256], RECIPES["paper"], epochs=3, augmentation="autoaugment+cutout",
        mean=MEAN, std=STD, seed=seed, on_epoch=on_epoch,
        checkpointing=Checkpointing(directory, spec, {"design": design, "seed": seed}))
    return model


def test_resume_from_a_mid_training_checkpoint_gives_the_same_weights(tmp_path, fashion):
    straight = _train(tmp_path / "straight", fashion)
    with pytest.raises(Interrupt):
        _train(tmp_path / "resumed", fashion, stop_after=1)
    torch.manual_seed(123)  # a different global RNG state: the checkpoint must restore it
    resumed = _train(tmp_path / "resumed", fashion)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    other_seed = _train(tmp_path / "other", fashion, seed=1)
    assert not torch.equal(other_seed.stem[0].weight, straight.stem[0].weight)


@pytest.mark.bad_input
def test_checkpoint_of_another_configuration_is_refused(tmp_path, fashion):
    with pytest.raises(Interrupt):
        _train(tmp_path / "run", fashion, stop_after=1)
    with pytest.raises(ValueError, match=r"belongs to another configuration \(seed: 0 there, 1 here\)"):
        _train(tmp_path / "run", fashion, seed=1)


def test_non_finite_loss_stops_training(fashion):
    train_x, train_y, *_ = fashion
    exploding = Recipe("exploding", lr=1e12, batch_size=64, weight_decay=0.0)
    with pytest.raises(NonFiniteLoss, match=r"non-finite training loss \(nan\) in epoch \d"):
        fit(build_model("resnet8", in_chans=1), train_x[:128], train_y[:128], exploding, epochs=2,
            augmentation="none", mean=MEAN, std=STD, seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_the_gpu_with_mixed_precision(fashion):
    train_x, train_y, *_ = fashion
    history = fit(build_model("resnet8", in_chans=1), train_x, train_y, RECIPES["fast"], epochs=1,
                  augmentation="augmix", mean=MEAN, std=STD, seed=0, device="cuda")
    assert torch.isfinite(torch.tensor(history[0].train_loss))
