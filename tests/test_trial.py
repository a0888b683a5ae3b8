"""A trial end to end at the smoke budget, `ppsearch train`, search-space presets and overrides."""
import json
import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from ppsearch.cli import main
from ppsearch.models.model_file import load_model
from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS
from ppsearch.robustness.evaluate import Predictor
from ppsearch.robustness.perturbations import TEST_PERTURBATIONS
from ppsearch.rundir import read_record
from ppsearch.search.space import load_space, parse_override
from ppsearch.selection.statistics import mean_ci, seed_summary
from ppsearch.training.budgets import BUDGETS, get_budget, parse_budget_overrides
from ppsearch.training.trial import TrialConfig, evaluation_sets, measure_test, run_trial, trial_dataset

SPLIT = {"validation_fraction": 0.1, "validation_seed": 0}  # as a search's trials


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    config = TrialConfig.create({}, dataset="fashion-mnist", budget="smoke", **SPLIT)
    return evaluation_sets(tmp_path_factory.mktemp("run") / "sets", config, trial_dataset("fashion-mnist"),
                           progress=False)


@pytest.fixture(scope="module")
def smoke_record(sets, tmp_path_factory):
    config = TrialConfig.create({"placement": "b1"}, dataset="fashion-mnist", budget="smoke", seed=3, **SPLIT)
    epochs = []
    record = run_trial(config, tmp_path_factory.mktemp("trial"), sets, on_epoch=epochs.append)
    return config, record, epochs


def test_budgets_are_defined_in_one_place():
    assert list(BUDGETS) == ["smoke", "demo", "short", "paper"]
    paper = get_budget("paper")
    assert (paper.epochs, paper.train_images, paper.c_images, paper.recipe) == (200, None, None, "paper")
    with pytest.raises(ValueError, match="unknown budget 'huge'; allowed: smoke, demo, short, paper"):
        get_budget("huge")
    changed = get_budget("demo", parse_budget_overrides(["epochs=5", "c_images=null", "recipe=paper"]))
    assert (changed.epochs, changed.c_images, changed.train_images, changed.recipe) == (5, None, 800, "paper")
    with pytest.raises(ValueError, match="unknown recipe 'adamw'"):
        get_budget("demo", {"recipe": "adamw"})


def test_spaces_give_their_families_the_papers_schedules():
    densenet = TrialConfig.create({}, dataset="cifar10", budget="paper",
                                  budget_overrides=load_space("densenet-cifar").budget("paper"))
    assert (densenet.epochs, densenet.recipe) == (350, "paper-densenet")
    imagenet = load_space("resnet-imagenet").budget("paper")
    assert imagenet == {"epochs": 90, "recipe": "paper-imagenet"}
    from ppsearch.training.recipes import get_recipe
    schedule = get_recipe("paper-imagenet")
    assert (schedule.batch_size, schedule.weight_decay) == (256, 5e-4)
    assert [schedule.learning_rate(e, 90) for e in (29, 30, 60, 85)] == pytest.approx([0.1, 0.01, 1e-3, 1e-4])


def test_a_trial_returns_one_flat_record(smoke_record):
    config, record, _ = smoke_record
    assert record["status"] == "completed" and record["failure_reason"] == ""
    assert record["validation_fraction"] == 0.1 and record["validation_seed"] == 0
    # the summary measured on both splits: validation (what a search selects on) and test (what it reports)
    for metric in ("clean_error", "mce", "mfr", "relative_mce", "corruption_error", "mt5d"):
        assert math.isfinite(record[f"val_{metric}"]) and math.isfinite(record[metric])
    assert record["val_mce"] != record["mce"]
    assert {k: record[k] for k in TrialConfig.columns()} == config.to_dict()
    assert tuple(config.to_dict()) == TrialConfig.columns()
    assert record["placement"] == "b1" and record["seed"] == 3 and record["epochs_completed"] == 2
    errors = [k for k in record if k.startswith("error/")]
    assert len(errors) == len(BENCHMARK_CORRUPTIONS) * 5
    assert sorted(k[3:] for k in record if k.startswith("ce/")) == sorted(BENCHMARK_CORRUPTIONS)
    assert sorted(k[3:] for k in record if k.startswith("fp/")) == sorted(TEST_PERTURBATIONS)
    assert record["mce"] == pytest.approx(sum(record[f"ce/{c}"] for c in BENCHMARK_CORRUPTIONS) / 15)
    assert record["corruption_error"] == pytest.approx(sum(record[k] for k in errors) / len(errors))
    assert record["ce_normaliser"].startswith("seed paper CIFAR-10 AlexNet")
    assert 0 <= record["clean_error"] <= 1 and record["mfr"] > 0
    assert record["params"] == 272_186 and record["flops"] > 0
    assert record["latency_ms"] > 0 and record["latency_spread_ms"] >= 0 and record["latency_batch"] == 1
    assert record["latency_device"] == "cpu" and record["latency_threads"] == torch.get_num_threads()
    assert record["train_seconds"] > 0 and record["images_per_second"] > 0
    assert 0 < record["first_layer_weight_sparsity"] < 1
    assert pd.Series(record).to_frame().T.to_parquet() is not None  # the record is a table row as it is


def test_epochs_are_reported_and_the_model_is_saved(smoke_record):
    _, record, epochs = smoke_record
    assert [e.report.epoch for e in epochs] == [1, 2]
    assert all(0 <= e.clean_error <= 1 and e.report.images == 256 for e in epochs)
    assert all((e.checkpoint / "state.json").is_file() for e in epochs[-1:])
    model = load_model(f"{record['trial_dir']}/model.safetensors")
    spec = model.ppsearch_spec
    assert spec.design["placement"] == "b1" and spec.dataset == "fashion-mnist"


def test_measuring_a_trained_model_leaves_it_as_trained(smoke_record):
    """The model a trial saves is the one its last epoch trained: measuring it on the validation,
    -C/-P and test images changes none of its tensors (BatchNorm's running statistics included),
    and its validation clean error is the one the saved model has."""
    config, record, epochs = smoke_record
    saved = load_file(f"{record['trial_dir']}/model.safetensors")
    trained = load_file(str(epochs[-1].checkpoint / "model.safetensors"))
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in saved)
    model = load_model(f"{record['trial_dir']}/model.safetensors")
    validation = config.splits(trial_dataset("fashion-mnist"))[1]
    predict = Predictor(model, model.ppsearch_spec.mean, model.ppsearch_spec.std)
    images = validation.images[:config.eval_images]
    assert record["val_clean_error"] == (predict(images) != validation.labels[:config.eval_images]).double().mean().item()


def test_sparsity_is_saved_with_the_record(smoke_record):
    _, record, _ = smoke_record
    table = pd.read_csv(f"{record['trial_dir']}/sparsity.csv")
    assert len(table) == 21  # ResNet-20: the stem, 18 block convs, 2 projection shortcuts
    assert table["kind"].value_counts()["push_pull"] == 7  # stem + the six convs of stage 1
    assert table.iloc[0]["layer"] == "stem.0"
    assert record["first_layer_weight_sparsity"] == pytest.approx(table.iloc[0]["weight_sparsity"])
    assert (table["weight_abs_q10"] <= table["weight_abs_q90"]).all()


def test_test_values_measured_later_from_the_saved_model_equal_those_measured_in_the_trial(smoke_record, sets,
                                                                                            tmp_path):
    """A search trial measures the validation split only; its test values, measured later from
    its saved model (nothing retrained), are the ones the trial would have measured itself; a
    second measurement changes nothing."""
    config, inline, _ = smoke_record
    deferred = run_trial(config, tmp_path, sets, with_test=False)
    assert "clean_error" not in deferred and "test_eval_seconds" not in deferred and "mce" not in deferred
    assert deferred["val_mce"] == inline["val_mce"] and deferred["eval_seconds"] > 0
    measured = measure_test(config, tmp_path, sets)
    tested = [k for k in inline if k not in deferred and k != "test_eval_seconds"]
    assert len(tested) > 100 and {k: measured[k] for k in tested} == {k: inline[k] for k in tested}
    assert measured["test_eval_seconds"] > 0 and read_record(tmp_path) == json.loads(json.dumps(measured))
    written = (tmp_path / "record.json").stat().st_mtime_ns
    assert measure_test(config, tmp_path, sets) == measured and (tmp_path / "record.json").stat().st_mtime_ns == written


def test_a_finished_trial_is_not_trained_again(smoke_record, sets):
    config, record, _ = smoke_record
    epochs = []
    again = run_trial(config, record["trial_dir"], sets, on_epoch=epochs.append)
    assert again == json.loads(json.dumps(record)) and epochs == []


@pytest.mark.bad_input
def test_a_nan_loss_is_a_failed_trial(sets, tmp_path):
    config = TrialConfig.create({"placement": "pp", "alpha": 1e38}, dataset="fashion-mnist", budget="smoke")
    record = run_trial(config, tmp_path, sets)
    assert record["status"] == "failed"
    assert record["failure_reason"].startswith("NonFiniteLoss: non-finite training loss")
    assert "clean_error" not in record and record["epochs_completed"] == 0


def test_space_presets_and_overrides():
    space = load_space("resnet-cifar")
    assert space.dataset == "cifar10" and len(space.paper_configs) == 14
    assert space.config(["paper:resnet20-b1"]) == {"arch": "resnet20", "augmentation": "standard", "placement": "b1"}
    assert space.config(["paper:resnet20-pp-lpf3", "alpha=0.5", "trainable_alpha=true"])["antialias"] == "tri3"
    assert parse_override("alpha=1") == {"alpha": 1.0}
    assert parse_override("alpha=1e-3") == {"alpha": 0.001}
    assert parse_override("pull_kernel_size=null") == {"pull_kernel_size": None}
    assert parse_override("antialias=3") == {"antialias": 3}


@pytest.mark.parametrize("token, message", [
    ("alpha=abc", "malformed override 'alpha=abc': alpha must be a finite number"),
    ("trainable_alpha=5", "trainable_alpha must be true or false"),
    ("alpha", "malformed override 'alpha': expected key=value or paper:NAME"),
    ("depth=3", "unknown key 'depth'"),
])
@pytest.mark.bad_input
def test_malformed_overrides(token, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_override(token)


def test_mean_and_95_percent_ci_over_seeds():
    mean, half = mean_ci([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302652729911275 * 0.1 / 3 ** 0.5)  # t(0.975, 2 dof) * s / sqrt(n)
    table = seed_summary(pd.DataFrame({"mce": [1.0, 1.2], "clean_error": [0.1, None]}), ["clean_error", "mce"])
    assert table.set_index("metric")["seeds"].to_dict() == {"clean_error": 1, "mce": 2}
    assert pd.isna(table.set_index("metric").loc["clean_error", "ci95"])


def _train(tmp_path, *extra):
    return main(["train", "--config", "paper:resnet20-pp", "--dataset", "fashion-mnist", "--budget", "smoke",
                 "--out", str(tmp_path), "--quiet", *extra])


def test_train_command_writes_records_and_resumes(tmp_path, capsys):
    assert _train(tmp_path, "--seeds", "2", "--budget-set", "epochs=1") == 0
    out = capsys.readouterr().out
    assert "resnet-cifar paper:resnet20-pp on fashion-mnist, budget smoke (1 epochs" in out
    assert "clean_error" in out and "+-" in out
    records = pd.read_parquet(tmp_path / "records.parquet")
    assert records["seed"].tolist() == [0, 1] and (records["status"] == "completed").all()
    assert pd.read_csv(tmp_path / "records.csv").shape == records.shape
    first = records.loc[0, "clean_error"]
    # a third seed on the same run directory: the two finished seeds are read back, not retrained
    assert _train(tmp_path, "--seeds", "3", "--budget-set", "epochs=1") == 0
    records = pd.read_parquet(tmp_path / "records.parquet")
    assert records["seed"].tolist() == [0, 1, 2] and records.loc[0, "clean_error"] == first


@pytest.mark.parametrize("args, message", [
    (["--config", "paper:resnet99"], "unknown preset 'paper:resnet99' in space resnet-cifar; allowed: paper:resnet20,"),
    (["--config", "alpha=abc"], "malformed override 'alpha=abc': alpha must be a finite number"),
    (["--budget", "huge"], "unknown budget 'huge'"),
    (["--space", "nowhere"], "unknown space 'nowhere'; embedded spaces: densenet-cifar, resnet-cifar, resnet-imagenet, wrn-cifar"),
    (["--config", "augmentation=mixup"], "unknown augmentation 'mixup'"),
    (["--seeds", "0"], "argument --seeds: must be an integer >= 1"),
    (["--budget-set", "epochs=0"], "budget field epochs must be a positive integer, got 0"),
    (["--budget-set", "epochs=many"], "malformed budget override 'epochs=many': epochs must be an integer"),
    (["--budget-set", "lr=3"], "unknown budget field 'lr'; allowed: train_images, epochs,"),
])
@pytest.mark.bad_input
def test_train_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert main(["train", "--dataset", "fashion-mnist", "--budget", "smoke", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.bad_input
def test_a_run_directory_of_another_configuration_is_refused(tmp_path, capsys):
    assert _train(tmp_path, "--budget-set", "epochs=1") == 0
    capsys.readouterr()
    assert main(["train", "--config", "paper:resnet20-b1", "--dataset", "fashion-mnist", "--budget", "smoke",
                 "--out", str(tmp_path), "--budget-set", "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a finished trial of another configuration" in err
