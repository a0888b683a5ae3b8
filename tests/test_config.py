"""The configuration schema: one declaration that the space loader, overrides, the command line's
design flags and the results table all read."""
import argparse
import math

import numpy as np
import pytest

from ppsearch.cli import add_design_arguments, design_from_args
from ppsearch.config import CONFIG_KEYS, DESIGN_KEYS, KEYS, Design, check_config, parse_override, typed_config
from ppsearch.errors import UserError


def test_every_key_is_declared_once_with_a_default_that_passes_its_own_check():
    assert CONFIG_KEYS == ("arch", "augmentation", "recipe", "placement", "variant", "scale", "pull_kernel_size",
                           "alpha", "trainable_alpha", "avg_kernel_size", "antialias", "antialias_position")
    for name, key in KEYS.items():
        assert key.check(key.default) == key.default, name
    assert Design().to_dict() == {name: KEYS[name].default for name in DESIGN_KEYS}


@pytest.mark.parametrize("key, value, message", [
    ("placement", "b7", "unknown placement 'b7'; allowed: none, pp, b1, b2, all"),
    ("scale", 0.5, "scale must be a number >= 1 (the upsampling factor h), got 0.5"),
    ("alpha", -1.0, "alpha must be a finite number >= 0 (the inhibition strength), got -1.0"),
    ("alpha", math.inf, "alpha must be a finite number >= 0"),
    ("alpha", True, "alpha must be a finite number >= 0"),
    ("pull_kernel_size", 4, "pull_kernel_size must be an odd integer >= 3, or null (from scale), got 4"),
    ("avg_kernel_size", 2, "avg_kernel_size must be 0 or an odd integer >= 3"),
    ("trainable_alpha", 1, "trainable_alpha must be true or false"),
    ("augmentation", "mixup", "unknown augmentation 'mixup'; allowed: none, standard, cutout"),
    ("antialias", "box", "unknown antialias 'box'; allowed: none, rect2, tri3, bin5, 1, 2, 3, 4, 5, 6, 7"),
    ("recipe", 3, "recipe must be the name of a training recipe, or null"),
    ("arch", None, "arch must be a ppsearch architecture"),
])
def test_a_value_outside_the_declaration_names_the_key_the_value_and_what_is_allowed(key, value, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        KEYS[key].check(value)


def test_values_take_their_declared_types():
    assert KEYS["alpha"].check(1) == 1.0 and isinstance(KEYS["alpha"].check(1), float)
    assert KEYS["pull_kernel_size"].check(7.0) == 7 and KEYS["pull_kernel_size"].check(None) is None
    assert parse_override("alpha=1e-3") == {"alpha": 0.001}  # YAML 1.1 reads 1e-3 as a string
    assert parse_override("antialias=3") == {"antialias": 3} and parse_override("antialias=tri3") == {"antialias": "tri3"}
    assert parse_override("placement=none") == {"placement": "none"}


def test_cross_key_rules_are_checked_without_building_anything():
    with pytest.raises(UserError, match="avg_kernel_size applies to variant='minmax_avg' only"):
        check_config({"avg_kernel_size": 3})
    with pytest.raises(UserError, match="pull_kernel_size applies to variant='upsample' only"):
        check_config({"variant": "minmax_avg", "pull_kernel_size": 5})
    with pytest.raises(UserError, match="unknown configuration key 'depth'; allowed: arch, augmentation"):
        check_config({"depth": 3})


def test_a_results_table_row_reads_back_with_its_declared_types():
    row = {"placement": "pp", "pull_kernel_size": math.nan, "avg_kernel_size": 3.0, "alpha": np.float64(0.5),
           "trainable_alpha": np.bool_(True), "clean_error": 0.1, "trial_id": "x"}
    config = typed_config(row)
    assert config == {"placement": "pp", "pull_kernel_size": None, "avg_kernel_size": 3, "alpha": 0.5,
                      "trainable_alpha": True}
    assert type(config["avg_kernel_size"]) is int and type(config["trainable_alpha"]) is bool


def test_the_command_line_design_flags_are_the_schema():
    parser = argparse.ArgumentParser()
    add_design_arguments(parser)
    flags = {action.dest for action in parser._actions if action.dest != "help"}
    assert flags == set(DESIGN_KEYS)
    args = parser.parse_args(["--placement", "b1", "--alpha", "0.5", "--pull-kernel-size", "5", "--trainable-alpha"])
    # the keys given, parsed; the rest are left to the schema's defaults where the design is built
    assert design_from_args(args) == {"placement": "b1", "alpha": 0.5, "pull_kernel_size": 5, "trainable_alpha": True}
    with pytest.raises(UserError, match="alpha must be a finite number >= 0"):
        design_from_args(parser.parse_args(["--alpha", "-2"]))


@pytest.mark.parametrize("key, value, message", [
    ("arch", "resnet21", "CIFAR ResNet depth must be 6n\\+2"),
    ("arch", "vgg16", "unknown architecture 'vgg16'; allowed: resnet20"),
    ("recipe", "adamw", "unknown recipe 'adamw'; allowed: paper"),
])
def test_architectures_and_recipes_are_checked_against_what_exists(key, value, message):
    from ppsearch.training.trial import check_value

    with pytest.raises(UserError, match=message):
        check_value(key, value)
