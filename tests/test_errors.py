"""User mistakes apart from bugs: a UserError is one line and exit code 2; anything else raised
inside the library keeps its traceback and exits 1, even a ValueError."""
import subprocess
import sys

import pytest

from ppsearch.cli import main
from ppsearch.errors import UserError


def _models_raising(error: str) -> subprocess.CompletedProcess:
    """`ppsearch models --arch resnet20` with the profiler replaced by one that raises ``error``."""
    code = ("import sys, ppsearch.models.profile as profile\n"
            f"def broken(*args, **kwargs): raise {error}\n"
            "profile.profile_model = broken\n"
            "from ppsearch.cli import main\n"
            "sys.exit(main(['models', '--arch', 'resnet20']))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("error", ["RuntimeError('deliberate bug')", "ValueError('deliberate bug')"])
def test_a_bug_inside_the_library_shows_its_traceback_and_exits_1(error):
    result = _models_raising(error)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "deliberate bug" in result.stderr


@pytest.mark.bad_input
def test_a_user_error_inside_the_library_is_one_line_and_exit_2():
    result = _models_raising("UserError('you asked for something impossible')".replace(
        "UserError", "__import__('ppsearch.errors').errors.UserError"))
    assert result.returncode == 2
    assert result.stderr == "ppsearch: error: you asked for something impossible\n"


def test_user_errors_are_value_errors_for_api_callers():
    assert issubclass(UserError, ValueError)


def test_reading_a_run_does_not_import_torch(tmp_path):
    from run_dirs import write_run

    rows = [{"trial_id": "a", "origin": "paper:resnet20", "status": "completed", "placement": "none",
             "clean_error": 0.1, "mce": 1.0, "mfr": 1.0, "val_clean_error": 0.1, "val_mce": 1.0, "val_mfr": 1.0}]
    run = write_run(tmp_path / "run", rows)
    code = ("import sys\nfrom ppsearch.cli import main\n"
            f"assert main(['pick', {str(run)!r}]) == 0\n"
            "assert main(['report', " + repr(str(run)) + "]) == 0\n"
            "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("torch not imported")


@pytest.mark.bad_input
def test_argparse_mistakes_are_user_errors(capsys):
    assert main(["models", "--in-chans", "three"]) == 2
    assert "argument --in-chans: must be an integer >= 1, got 'three'" in capsys.readouterr().err
