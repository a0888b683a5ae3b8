"""The command line as users run it: real subprocesses, one-line errors, exit code 2."""
import subprocess
import sys

import pytest


def ppsearch(*args):
    return subprocess.run([sys.executable, "-m", "ppsearch", *args], capture_output=True, text=True, timeout=300)


def test_models_lists_architectures():
    result = ppsearch("models")
    assert result.returncode == 0
    assert "resnet20" in result.stdout and "densenet-bc-100-24" in result.stdout and "timm:NAME" in result.stdout


def test_models_profiles_a_design():
    result = ppsearch("models", "--arch", "resnet20", "--placement", "b1", "--variant", "upsample")
    assert result.returncode == 0, result.stderr
    assert "parameters       272,474" in result.stdout
    assert "push-pull layers 7" in result.stdout and "stages.0.2.conv2" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["models", "--arch", "resnet20", "--placement", "b9"], "unknown placement 'b9'"),
    (["models", "--arch", "alexnet"], "unknown architecture 'alexnet'"),
    (["models", "--arch", "resnet20", "--scale", "0.5"], "scale must be a number >= 1"),
    (["models", "--arch", "resnet20", "--pull-kernel-size", "8"], "pull_kernel_size must be an odd integer"),
    (["models", "--arch", "resnet20", "--variant", "dog"], "unknown variant 'dog'"),
    (["models", "--arch", "resnet20", "--scale", "abc"], "scale must be a number >= 1 (the upsampling factor h), got 'abc'"),
    (["models", "--arch", "resnet20", "--alpha", "-1"], "alpha must be a finite number >= 0"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = ppsearch(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
