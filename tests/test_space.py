"""Search spaces: the embedded YAML files, conditional sampling, paper points, validation errors."""
import errno
import os
import textwrap
from pathlib import Path

import optuna
import pytest

from ppsearch.errors import UserError
from ppsearch.search.space import load_space, spaces
from ppsearch.training.trial import TrialConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name", ["resnet-cifar", "wrn-cifar", "densenet-cifar", "resnet-imagenet"])
def test_embedded_spaces_load_and_their_paper_configs_are_points_of_the_space(name):
    space = load_space(name)
    assert name in spaces() and space.paper_configs
    for preset in space.paper_configs:
        assert space.paper_name(space.config([f"paper:{preset}"])) == preset


def test_resnet_cifar_holds_the_papers_configurations():
    space = load_space("resnet-cifar")
    assert set(space.paper_configs) >= {f"resnet20{p}{a}" for p in ("", "-pp", "-b1") for a in ("", "-lpf2", "-lpf3", "-lpf5")}
    assert space.paper_configs["pushpull-net-avg5"] == {"placement": "pp", "variant": "minmax_avg", "avg_kernel_size": 5}
    assert space.objectives == ("clean_error", "mce", "mfr")


def test_sampling_respects_the_conditional_structure():
    space = load_space("resnet-cifar")
    study = optuna.create_study(directions=["minimize"] * 3, sampler=optuna.samplers.RandomSampler(seed=0))
    seen_placements = set()
    for _ in range(60):
        trial = study.ask()
        constants = space.suggest(trial)
        config = {**trial.params, **constants}
        seen_placements.add(config["placement"])
        if config["placement"] == "none":
            assert not {"variant", "alpha", "scale", "trainable_alpha"} & set(trial.params)
        if config.get("variant") == "minmax_avg":
            assert "avg_kernel_size" in trial.params and "scale" not in trial.params
        if config.get("trainable_alpha"):
            assert "alpha" not in trial.params
        if "pull_kernel_size" in trial.params and trial.params["pull_kernel_size"] is not None:
            assert "scale" not in trial.params
        TrialConfig.create(config, dataset="cifar10", budget="smoke")  # every sample is a valid trial
    assert seen_placements == {"none", "pp", "b1", "b2", "all"}


def test_an_enqueued_paper_point_samples_back_to_the_paper_configuration():
    space = load_space("resnet-cifar")
    study = optuna.create_study(directions=["minimize"] * 3)
    for config in space.paper_configs.values():
        study.enqueue_trial(space.search_point(config))
    for name in space.paper_configs:
        trial = study.ask()
        constants = space.suggest(trial)
        assert space.paper_name({**trial.params, **constants}) == name


def _space(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text, message", [
    ("colour: red\n", "space.yaml: unknown field 'colour'; allowed: name, description, dataset"),
    ("dataset: mnist\n", "dataset 'mnist' is not one of fashion-mnist"),
    ("dimensions:\n  depth: {choices: [1, 2]}\n", "dimensions.depth: unknown dimension 'depth'; allowed: arch"),
    ("dimensions:\n  placement: {choices: [none, b7]}\n", "dimensions.placement.choices: value 'b7' is not allowed: unknown placement 'b7'"),
    ("dimensions:\n  alpha: {low: 2, high: 1}\n", "dimensions.alpha: needs choices, or numbers low < high; got low=2, high=1"),
    ("dimensions:\n  alpha: {low: 0, high: 1, log: true}\n", "log: true needs low > 0"),
    ("dimensions:\n  scale: {choices: [2.0], size: 3}\n", "dimensions.scale: unknown field 'size'"),
    ("dimensions:\n  scale: {choices: [2.0], when: {variant: [upsample]}}\n  variant: {choices: [upsample]}\n",
     "dimensions.scale.when names 'variant', which must come before 'scale'"),
    ("objectives: [clean_error, accuracy]\n", "objectives: unknown objective 'accuracy'; allowed: clean_error, mce, mfr"),
    ("budgets:\n  demo: {epochs: -1}\n", "budgets.demo: budget field epochs must be a positive integer, got -1"),
    ("paper_configs:\n  odd: {placement: pp, alpha: 3.0}\ndimensions:\n  placement: {choices: [none, pp]}\n"
     "  alpha: {low: 0.5, high: 2.0, when: {placement: [pp]}}\n",
     "paper_configs.odd: alpha=3.0 is outside the space's dimension (in [0.5, 2.0])"),
    ("paper_configs:\n  odd: {placement: pp, scale: 3.0}\ndimensions:\n  placement: {choices: [none, pp]}\n",
     "paper_configs.odd: scale=3.0 cannot be reached: scale is not an active dimension"),
    ("paper_configs:\n  odd: {placement: pp, colour: red}\n", "paper_configs.odd: unknown configuration key 'colour'; allowed: arch, augmentation, recipe, placement"),
    ("dimensions:\n  alpha: {low: 0.5, high: 2.0, step: 0}\n", "dimensions.alpha.step: must be a number > 0, got 0"),
    ("dimensions:\n  alpha: {low: 0.5, high: 2.0, step: -0.5}\n", "dimensions.alpha.step: must be a number > 0, got -0.5"),
    ("dimensions:\n  alpha: {low: 0.5, high: 2.0, step: big}\n", "dimensions.alpha.step: must be a number > 0, got 'big'"),
    ("dimensions:\n  alpha: {low: 0.5, high: 2.0, step: 0.5, log: true}\n",
     "dimensions.alpha: give log: true or a step, not both"),
    ("dimensions:\n  alpha: {low: 0.5, high: 2.0, log: 'no'}\n", "dimensions.alpha.log: must be true or false, got 'no'"),
    ("dimensions:\n  pull_kernel_size: {low: 3, high: 9}\n",
     "dimensions.pull_kernel_size: the range holds 4, which is not allowed: pull_kernel_size must be an odd integer"),
    ("dimensions:\n  pull_kernel_size: {low: 3, high: 9, step: 1.5}\n",
     "dimensions.pull_kernel_size.step: must be an integer > 0, got 1.5"),
    ("dimensions:\n  placement: {choices: [none, pp, none]}\n", "dimensions.placement.choices: 'none' is given twice"),
    ("dimensions:\n  alpha: {choices: [1, 1.0]}\n", "dimensions.alpha.choices: 1.0 is given twice"),
    ("dimensions:\n  placement: {choices: [none, pp]}\n  placement: {choices: [b1]}\n",
     "is not valid YAML at line 3: key 'placement' is given twice"),
    ("paper_configs:\n  plain: {placement: none}\n  plain: {placement: pp}\n",
     "is not valid YAML at line 3: key 'plain' is given twice"),
    ("a: &a [lol, lol, lol]\nb: &b [*a, *a, *a]\ndescription: *b\n",
     "is not valid YAML at line 2: aliases "),
    ("dimensions:\n  placement: {choices: [none, pp]}\n  alpha: {low: 0.5, high: 2.0, when: {placement: [b1]}}\n",
     "dimensions.alpha.when.placement: 'b1' is not one of placement's choices (none, pp)"),
    ("defaults: {placement: pp}\ndimensions:\n  alpha: {low: 0.5, high: 2.0, when: {placement: [b1]}}\n",
     "dimensions.alpha.when.placement: the space does not search placement, which stays 'pp': alpha would never be searched"),
    ("name: ../../etc\n", "name must be letters, digits, '.', '_' or '-' (it names run folders), got '../../etc'"),
    ("description: {a: 1}\n", "description must be text, got a dict"),
    ("- a\n- b\n", "must hold a mapping"),
    ("dimensions: [1, 2\n", "is not valid YAML"),
])
@pytest.mark.bad_input
def test_a_malformed_space_names_the_field_the_value_and_what_is_allowed(tmp_path, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_space(_space(tmp_path, text))


@pytest.mark.bad_input
def test_an_oversized_space_file_is_refused_before_it_is_parsed(tmp_path):
    from ppsearch.files import MAX_YAML_BYTES

    path = _space(tmp_path, "name: big\n" + "# padding\n" * (MAX_YAML_BYTES // 10))
    with pytest.raises(ValueError, match=f"^space file {path} is [0-9,]+ bytes; at most {MAX_YAML_BYTES:,} are read$"):
        load_space(path)


def _not_a_space_file(path, kind):
    """``path`` made into ``kind``: something other than a readable YAML file."""
    if kind == "a directory":
        path.mkdir()
    elif kind == "a symbolic link loop":
        path.symlink_to(path.name)
    elif kind == "a dangling link":
        path.symlink_to("gone.yaml")
    elif kind == "a FIFO":
        os.mkfifo(path)


@pytest.mark.parametrize(("kind", "problem"), [
    ("a directory", "is a directory"),
    ("a symbolic link loop", "is a symbolic link loop"),
    ("a dangling link", "is a symbolic link to gone.yaml, which does not exist"),
    ("a FIFO", "is not a regular file"),  # reading it would wait for a writer forever
    ("missing", "does not exist"),
])
def test_a_space_path_that_is_no_readable_file_says_what_it_is(tmp_path, kind, problem):
    path = tmp_path / "space.yaml"
    _not_a_space_file(path, kind)
    with pytest.raises(UserError, match=f"^space file {path} {problem}$"):
        load_space(path)


def test_an_unreadable_space_file_says_why(tmp_path, monkeypatch):
    path = _space(tmp_path, "name: x\n")

    def denied(self, *args, **kwargs):  # tests run as root, where a chmod denies nothing
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(UserError, match=f"^space file {path} cannot be read: Permission denied$"):
        load_space(path)


def test_numeric_choices_and_steps_are_read_as_numbers(tmp_path):
    """YAML 1.1 reads 1e-3 as text: a float key's choices and steps are numbers all the same, and a
    stepped odd range samples odd sizes only."""
    space = load_space(_space(tmp_path, """
        dimensions:
          alpha: {choices: [1e-3, 2]}
          scale: {low: 1.0, high: 3.0, step: 5e-1}
          pull_kernel_size: {low: 3, high: 9, step: 2}
        """))
    dims = {d.name: d for d in space.dimensions}
    assert dims["alpha"].choices == (0.001, 2.0) and dims["scale"].step == 0.5
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sizes = set()
    for _ in range(40):
        trial = study.ask()
        space.suggest(trial)
        sizes.add(trial.params["pull_kernel_size"])
    assert sizes == {3, 5, 7, 9}


@pytest.mark.bad_input
def test_unknown_space_names_the_embedded_ones():
    with pytest.raises(ValueError, match="unknown space 'vgg'; embedded spaces: densenet-cifar, resnet-cifar, resnet-imagenet, wrn-cifar"):
        load_space("vgg")


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "gp", "random"])
def test_every_sampler_explores_the_conditional_space(sampler):
    from ppsearch.search.strategies import make_sampler

    space = load_space("resnet-cifar")
    study = optuna.create_study(directions=["minimize"] * 3, sampler=make_sampler(sampler, seed=0))
    for i in range(12):  # enough told trials for the model-based samplers to leave their start-up phase
        trial = study.ask()
        config = {**trial.params, **space.suggest(trial)}
        TrialConfig.create(config, dataset="cifar10", budget="smoke")
        study.tell(trial, [0.1 * (i % 4), 1.0 / (i + 1), 0.5])
    assert len(study.best_trials) >= 1


@pytest.mark.bad_input
def test_unknown_sampler():
    from ppsearch.search.strategies import make_sampler

    with pytest.raises(ValueError, match="unknown sampler 'cmaes'; allowed: tpe, nsga2, gp, random"):
        make_sampler("cmaes", 0)


def test_a_space_keeps_its_own_name_beside_budgets_and_paper_configurations():
    """The name names the default --out folder; a budget or a paper configuration must not replace it."""
    assert load_space("densenet-cifar").name == "densenet-cifar" and load_space("wrn-cifar").name == "wrn-cifar"
