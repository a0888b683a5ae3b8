"""analysis/table1.py on the seed paper authors' published results (their repository's results/
layout), on stand-ins written here and, when $PPSEARCH_SEED_RESULTS points at their results/
folder, on the real files."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppsearch.robustness.metrics import Normaliser

ANALYSIS = Path(__file__).parents[1] / "analysis"
SEED_RESULTS_VARIABLE = "PPSEARCH_SEED_RESULTS"
ALEXNET = Normaliser.from_name("alexnet-cifar10")
BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
             "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
             "jpeg_compression")
# what the authors evaluated beyond mCE's 15 corruptions and mFR's 10 perturbations
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEED_PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness",
                      "translate", "rotate", "tilt", "scale")
EXTRA_PERTURBATIONS = ("speckle_noise", "gaussian_blur", "spatter", "shear")


@pytest.fixture(scope="module")
def table1_module():
    sys.path.insert(0, str(ANALYSIS))  # the script imports its sibling script.py
    try:
        spec = importlib.util.spec_from_file_location("table1", ANALYSIS / "table1.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ANALYSIS))
    return module


def _write_model(folder: Path, mean_errors: dict[str, float], flips: dict[str, float]) -> None:
    """One model folder as the authors' test_corruption.py / test_perturbation.py write it; the
    5 severities spread around each mean so that only their mean matters."""
    folder.mkdir(parents=True)
    with open(folder / "C_details.txt", "w") as f:
        for name, mean in mean_errors.items():
            f.write(f"{name}: " + " ".join(str(mean + d) for d in (-0.02, -0.01, 0.0, 0.01, 0.02)) + "\n")
    with open(folder / "P_flipprob.txt", "w") as f:
        for name, fp in flips.items():
            f.write(f"Perturbation: {name:15s}  | Flip Prob: {fp:.5f}\n")


@pytest.fixture
def results(tmp_path):
    """Two stand-ins. "net": every benchmark corruption at twice AlexNet's error and E twice
    AlexNet's 13.87%, so every CE and relative CE is 2; every FP 1.5 AlexNet's, so mFR 1.5.
    "net-pp": AlexNet's errors (mCE 1) with E = 13.87 - 10 = 3.87%, so relative CE_c =
    1 + 0.1 / (E^AlexNet_c - 0.1387), whose mean over the 15 is 1.971628 (by hand from the
    AlexNet table); AlexNet's FPs, so mFR 1. The extras are far off, to show they stay out."""
    root = tmp_path / "results"
    extras = dict.fromkeys(EXTRA_CORRUPTIONS, 0.9)
    extra_flips = dict.fromkeys(EXTRA_PERTURBATIONS, 0.5)
    base = {c: ALEXNET.corruption_errors[c] for c in BENCHMARK}
    base_fp = {p: ALEXNET.flip_probabilities[p] for p in SEED_PERTURBATIONS}
    _write_model(root / "resnet" / "net", {c: 2 * e for c, e in base.items()} | extras,
                 {p: 1.5 * fp for p, fp in base_fp.items()} | extra_flips)
    _write_model(root / "resnet" / "net-pp", base | extras, base_fp | extra_flips)
    return root


def test_stand_ins_give_the_hand_computed_table(table1_module, results):
    table = table1_module.seed_table1(results, {"net": 27.74, "net-pp": 3.87}).set_index("configuration")
    assert list(table.index) == ["net", "net-pp"] and list(table.columns) == ["E", "mCE", "rCE", "mFR"]
    assert table.loc["net"].tolist() == pytest.approx([27.74, 2.0, 2.0, 1.5])
    assert table.loc["net-pp"].tolist() == pytest.approx([3.87, 1.0, 1.971628, 1.0], abs=1e-6)


def test_a_model_without_clean_error_has_no_e_or_rce(table1_module, results):
    table = table1_module.seed_table1(results, {}).set_index("configuration")
    assert table[["E", "rCE"]].isna().all().all()
    assert table["mCE"].tolist() == pytest.approx([2.0, 1.0]) and table["mFR"].tolist() == pytest.approx([1.5, 1.0])


def _script(*args):
    return subprocess.run([sys.executable, str(ANALYSIS / "table1.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_script_prints_the_table_at_the_papers_rounding(results):
    result = _script("--seed-results", results, "--clean-error", "net=27.74")
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): [v.strip() for v in line.split("|")[2:6]]
            for line in result.stdout.splitlines() if line.startswith("| net")}
    assert rows == {"net": ["27.74", "2.00", "2.00", "1.50"], "net-pp": ["", "1.00", "", "1.00"]}
    assert "no clean error given for net-pp" in result.stderr


def test_help_names_the_seed_results_mode():
    result = _script("--help")
    assert result.returncode == 0 and "--seed-results RESULTS_DIR" in result.stdout
    assert "nicstrisc/Push-Pull-CNN-layer" in result.stdout


def _one_line_error(result) -> str:
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.mark.bad_input
def test_a_missing_corruption_file_is_a_one_line_error(results):
    (results / "resnet" / "net" / "C_details.txt").unlink()
    assert "net lacks C_details.txt" in _one_line_error(_script("--seed-results", results))


@pytest.mark.bad_input
def test_a_missing_corruption_is_a_one_line_error(results):
    details = results / "resnet" / "net-pp" / "C_details.txt"
    details.write_text("".join(line for line in details.read_text().splitlines(True) if not line.startswith("fog:")))
    assert "mCE needs all of 15 corruptions; missing: fog" in _one_line_error(_script("--seed-results", results))


@pytest.mark.bad_input
def test_a_malformed_line_is_a_one_line_error(results):
    details = results / "resnet" / "net" / "C_details.txt"
    details.write_text(details.read_text() + "contrast: 0.1 0.2 oops 0.4 0.5\n")
    error = _one_line_error(_script("--seed-results", results))
    assert "C_details.txt line 20: expected 'corruption: e1 e2 e3 e4 e5'" in error


@pytest.mark.bad_input
def test_a_malformed_flip_probability_is_a_one_line_error(results):
    (results / "resnet" / "net" / "P_flipprob.txt").write_text("Perturbation: snow | Flip Prob: 1.5\n")
    assert "P_flipprob.txt line 1: expected 'Perturbation: name | Flip Prob: p'" in _one_line_error(
        _script("--seed-results", results))


@pytest.mark.bad_input
def test_bad_clean_errors_and_folders_are_one_line_errors(results, tmp_path):
    assert "not a model folder" in _one_line_error(_script("--seed-results", results, "--clean-error", "resnet-20=7.56"))
    assert "expected NAME=PERCENT" in _one_line_error(_script("--seed-results", results, "--clean-error", "net=seven"))
    (tmp_path / "empty").mkdir()
    assert "holds no model folder" in _one_line_error(_script("--seed-results", tmp_path / "empty"))
    assert "is not a directory" in _one_line_error(_script("--seed-results", tmp_path / "nowhere"))


def test_runs_and_seed_results_do_not_mix(results, tmp_path):
    assert "either RUN_DIRs or --seed-results" in _one_line_error(_script(tmp_path, "--seed-results", results))
    assert "--clean-error goes with --seed-results" in _one_line_error(_script(tmp_path, "--clean-error", "net=5"))
    assert "give RUN_DIR" in _one_line_error(_script())


def test_the_authors_resnet20_results_give_table1(table1_module):
    path = os.environ.get(SEED_RESULTS_VARIABLE)
    if not path:
        pytest.skip(f"set {SEED_RESULTS_VARIABLE} to the results/ folder of nicstrisc/Push-Pull-CNN-layer")
    table = table1_module.seed_table1(path, {"resnet-20": 7.56, "resnet-20-pp": 8.29}).set_index("configuration")
    # the paper's Table 1: E (%), mCE, rCE, mFR
    assert table.loc["resnet-20"].round(2).tolist() == [7.56, 1.07, 1.79, 1.06]
    assert table.loc["resnet-20-pp"].round(2).tolist() == [8.29, 1.04, 1.68, 1.07]
