import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import rankdata

from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS
from ppsearch.robustness.metrics import (
    ALEXNET_CIFAR10,
    ALEXNET_CIFAR10_P,
    ALEXNET_IMAGENET_C,
    P_PERTURBATIONS,
    Normaliser,
    ce_table,
    check_protocol,
    corruption_errors,
    flip_probability,
    fr_table,
    get_protocol,
    mce,
    mfr,
    relative_mce,
    summary,
    top5_distance,
)
from ppsearch.robustness.perturbations import ALL_PERTURBATIONS


def _errors(mean_errors, spread=0.0):
    """A corruption_errors table whose 5 severities average to the given errors."""
    offsets = np.linspace(-spread, spread, 5)
    return corruption_errors({(c, s + 1): e + offsets[s] for c, e in mean_errors.items() for s in range(5)})


# ---------------------------------------------------------------- CE by hand


HAND = Normaliser("hand-made baseline", clean_error=0.1, corruption_errors={"fog": 0.4, "snow": 0.3})


def test_ce_and_relative_ce_by_hand():
    errors = corruption_errors({**{("fog", s): e for s, e in zip(range(1, 6), [.1, .2, .3, .4, .5])},
                                **{("snow", s): .2 for s in range(1, 6)}})
    table = ce_table(errors, clean_error=0.05, normaliser=HAND)
    assert table["corruption"].tolist() == ["fog", "snow"]
    # fog: sum 1.5 / (5 * .4) = .75; relative (1.5 - 5 * .05) / (5 * (.4 - .1)) = 1.25 / 1.5
    # snow: 1.0 / 1.5; relative (1.0 - .25) / (5 * (.3 - .1)) = .75
    np.testing.assert_allclose(table["error"], [0.3, 0.2])
    np.testing.assert_allclose(table["ce"], [0.75, 2 / 3])
    np.testing.assert_allclose(table["relative_ce"], [1.25 / 1.5, 0.75])
    assert table["benchmark"].tolist() == [True, True]
    assert set(table["normaliser"]) == {"hand-made baseline"}


def test_corruption_errors_from_correct_counts():
    table = corruption_errors({("fog", 1): 7, ("fog", 2): 10}, num_images=10)
    assert list(table.columns) == ["corruption", "severity", "error"]
    assert table["error"].tolist() == pytest.approx([0.3, 0.0])
    with pytest.raises(ValueError, match=r"\(fog, 1\) must be in \[0, 10\]"):
        corruption_errors({("fog", 1): 11}, num_images=10)
    with pytest.raises(ValueError, match="must be one of 1..5"):
        corruption_errors({("fog", 6): 0.5})


def test_ce_needs_every_severity_once():
    errors = corruption_errors({("fog", s): 0.3 for s in (1, 2, 3)})
    with pytest.raises(ValueError, match=r"fog lack severities \[4, 5\]"):
        ce_table(errors, 0.05, HAND)
    doubled = pd.concat([_errors({"fog": 0.3}), _errors({"fog": 0.3})])
    with pytest.raises(ValueError, match="fog repeat severities"):
        ce_table(doubled, 0.05, HAND)


def test_normaliser_without_the_corruption():
    with pytest.raises(ValueError, match="has no baseline error for speckle_noise"):
        ce_table(_errors({"speckle_noise": 0.3}), 0.05, Normaliser.from_name("alexnet-imagenet"))


def test_mce_requires_the_15_benchmark_corruptions():
    table = ce_table(_errors({"fog": 0.3, "snow": 0.2}), 0.05, HAND)
    with pytest.raises(ValueError, match="missing: gaussian_noise, shot_noise, impulse_noise"):
        mce(table)
    with pytest.raises(ValueError, match="relative mCE needs all of 15"):
        relative_mce(table)


# ---------------------------------------------------------------- against published numbers


@pytest.mark.parametrize("name, table", [("alexnet-cifar10", ALEXNET_CIFAR10),
                                         ("alexnet-imagenet", ALEXNET_IMAGENET_C)])
def test_alexnet_against_itself_is_one(name, table):
    normaliser = Normaliser.from_name(name)
    errors = _errors({c: e for c, e in table.items() if c != "clean"}, spread=0.05)
    ce = ce_table(errors, table["clean"], normaliser)
    assert mce(ce) == pytest.approx(1.0, abs=1e-12)
    assert relative_mce(ce) == pytest.approx(1.0, abs=1e-12)
    if name == "alexnet-cifar10":
        fr = fr_table(ALEXNET_CIFAR10_P, normaliser)
        assert mfr(fr) == pytest.approx(1.0, abs=1e-12)


def test_normaliser_tables_cover_the_benchmarks():
    assert set(ALEXNET_CIFAR10) == {"clean", *BENCHMARK_CORRUPTIONS, *EXTRA_CORRUPTIONS}
    assert set(ALEXNET_IMAGENET_C) == {"clean", *BENCHMARK_CORRUPTIONS}
    assert len(P_PERTURBATIONS) == 10 and "snow" in P_PERTURBATIONS


SEED_CIFAR = get_protocol("seed-paper").setup("cifar10", 32)

# Seed paper Table 4 (clean error and mean errors per corruption, in BENCHMARK order) and
# Table 7 (flip probabilities, in P_PERTURBATIONS order) for six models, with their Table 1
# summary (mCE, rCE, mFR), which is printed to 2 decimals.
PAPER = {
    "ResNet-20": (7.56, [57.41, 45.75, 41.88, 21.43, 58.82, 30.62, 27.54, 25.06, 31.39, 16.56, 9.73, 29.59,
                         20.37, 32.33, 23.81],
                  [.082, .111, .119, .008, .037, .009, .046, .053, .018, .065], (1.07, 1.79, 1.06)),
    "ResNet-20-pp": (8.29, [49.90, 39.98, 37.20, 22.30, 58.56, 29.50, 29.68, 25.59, 31.29, 17.58, 10.34, 30.50,
                            20.65, 32.70, 22.16],
                     [.076, .097, .123, .008, .039, .014, .053, .055, .019, .067], (1.04, 1.68, 1.07)),
    "ResNet-20-b1": (8.32, [47.60, 37.31, 38.05, 22.31, 51.64, 29.76, 28.95, 24.00, 26.92, 18.04, 10.29, 31.15,
                            19.56, 27.95, 20.35],
                     [.062, .081, .114, .007, .034, .014, .053, .051, .018, .066], (0.98, 1.52, 0.96)),
    "ResNet-56": (6.64, [56.72, 44.02, 44.68, 20.02, 59.22, 26.54, 26.73, 21.99, 29.08, 14.55, 8.30, 24.89,
                         18.52, 29.79, 22.88],
                  [.0706, .0943, .1048, .0063, .0333, .0076, .0354, .0458, .0139, .0523], (1.00, 1.72, 0.90)),
    "ResNet-56-pp": (7.01, [44.92, 35.74, 33.14, 20.88, 50.46, 27.67, 26.58, 22.32, 27.28, 15.93, 8.68, 26.94,
                            18.57, 29.06, 19.82],
                     [.0577, .0762, .1080, .0059, .0304, .0106, .0365, .0465, .0147, .0579], (0.93, 1.54, 0.85)),
    "ResNet-56-b1": (7.76, [40.17, 31.88, 29.56, 18.56, 45.53, 25.36, 23.36, 22.51, 25.49, 16.31, 9.78, 29.30,
                            17.95, 25.94, 17.73],
                     [.0517, .0654, .1007, .0061, .0297, .0130, .0429, .0438, .0158, .0573], (0.86, 1.31, 0.82)),
}


@pytest.mark.parametrize("model", PAPER)
def test_reproduces_the_seed_papers_table_1(model):
    clean, errors, fps, (paper_mce, paper_rce, paper_mfr) = PAPER[model]
    normaliser = Normaliser.from_name("alexnet-cifar10")
    ce = ce_table(_errors({c: e / 100 for c, e in zip(BENCHMARK_CORRUPTIONS, errors)}, spread=0.02),
                  clean / 100, normaliser)
    fr = fr_table(dict(zip(P_PERTURBATIONS, fps)), normaliser)
    result = summary(SEED_CIFAR, ce, fr)
    # Inputs and outputs are rounded in the paper: agreement to its last printed digit.
    assert result["mce"] == pytest.approx(paper_mce, abs=0.006)
    assert result["relative_mce"] == pytest.approx(paper_rce, abs=0.006)
    assert result["mfr"] == pytest.approx(paper_mfr, abs=0.006)
    assert result["ce_normaliser"] == result["fr_normaliser"] == "seed paper CIFAR-10 AlexNet (Table 4/8)"


def test_from_result_normalises_the_baseline_to_one():
    clean, errors, fps, _ = PAPER["ResNet-56"]
    errors = _errors({c: e / 100 for c, e in zip(BENCHMARK_CORRUPTIONS, errors)}, spread=0.03)
    fr_alexnet = fr_table(dict(zip(P_PERTURBATIONS, fps)), Normaliser.from_name("alexnet-cifar10"))
    baseline = Normaliser.from_result("ResNet-56", clean / 100, errors=errors, flips=fr_alexnet)
    assert baseline.source == "baseline: ResNet-56 from this study"
    ce = ce_table(errors, clean / 100, baseline)
    np.testing.assert_allclose(ce["ce"], 1.0)
    np.testing.assert_allclose(ce["relative_ce"], 1.0)
    fr = fr_table(dict(zip(P_PERTURBATIONS, fps)), baseline)
    np.testing.assert_allclose(fr["fr"], 1.0)
    assert summary(SEED_CIFAR, ce, fr) == {"protocol": "seed-paper", "mce": pytest.approx(1.0),
                                             "relative_mce": pytest.approx(1.0), "ce_normaliser": baseline.source,
                                             "mfr": pytest.approx(1.0), "fr_normaliser": baseline.source}


@pytest.mark.bad_input
def test_unknown_normaliser_name():
    with pytest.raises(ValueError, match="unknown normaliser 'alexnet'; allowed: alexnet-cifar10, alexnet-imagenet, none"):
        Normaliser.from_name("alexnet")


def test_fr_needs_baseline_and_all_perturbations():
    with pytest.raises(ValueError, match="no flip probability for rotate"):
        fr_table({"rotate": 0.05}, Normaliser.from_name("alexnet-imagenet"))
    table = fr_table({"rotate": 0.05}, Normaliser.from_name("alexnet-cifar10"))
    assert table["fr"].tolist() == pytest.approx([0.05 / 0.0894])
    with pytest.raises(ValueError, match="mFR needs all of 10 perturbations; missing: gaussian_noise"):
        mfr(table)


# ---------------------------------------------------------------- flips and top-5 distance

# Sequence A flips at the first step only; B at the last.
PREDICTIONS = [[0, 1, 1, 1], [2, 2, 2, 5]]


@pytest.mark.parametrize("protocol", ["seed-paper", "hendrycks"])
def test_flip_probability_consecutive_frames(protocol):
    # A: 1 flip in 3 consecutive comparisons, B: 1 in 3 (not noise: both protocols pair frames so).
    assert flip_probability(np.array(PREDICTIONS), "rotate", protocol) == pytest.approx(1 / 3)


def test_flip_probability_of_noise_depends_on_the_protocol():
    # hendrycks: frames against frame 0. A: frames 1, 2, 3 all differ from frame 0 -> 3/3; B: only frame 3 -> 1/3.
    assert flip_probability(torch.tensor(PREDICTIONS), "shot_noise", "hendrycks") == pytest.approx((1 + 1 / 3) / 2)
    # seed paper (its flip_prob is called with noise_perturbation=False): consecutive frames, 1/3 each
    assert flip_probability(torch.tensor(PREDICTIONS), "shot_noise", "seed-paper") == pytest.approx(1 / 3)
    assert flip_probability(torch.tensor(PREDICTIONS), "shot_noise") == pytest.approx(1 / 3)  # the default
    with pytest.raises(ValueError, match="unknown protocol 'imagenet'; allowed: seed-paper, hendrycks"):
        flip_probability(torch.tensor(PREDICTIONS), "shot_noise", "imagenet")


@pytest.mark.bad_input
def test_flip_probability_rejects_bad_input():
    with pytest.raises(ValueError, match="integer classes"):
        flip_probability(np.zeros((2, 4), np.float32), "rotate")
    with pytest.raises(ValueError, match=r"\(N, T >= 2\)"):
        flip_probability(np.zeros((2, 1), np.int64), "rotate")


# One sequence over 6 classes: frame 1 is frame 0 with classes 0 and 1 swapped, frame 2 is frame 0
# with classes 4 and 5 swapped.
T5_LOGITS = torch.tensor([[[6., 5, 4, 3, 2, 1],
                           [5., 6, 4, 3, 2, 1],
                           [6., 5, 4, 3, 1, 2]]])


def test_top5_distance_consecutive_by_hand():
    # Frames 0 -> 1: top-5 (0,1,2,3,4) get ranks (1,0,2,3,4): |0-1| + |1-0| = 2.
    # Frames 1 -> 2: top-5 (1,0,2,3,4) get ranks (1,0,2,3,5): 1 + 1 + 0 + 0 + 1 = 3.
    assert top5_distance(T5_LOGITS, "rotate") == pytest.approx(2.5)


def test_top5_distance_of_noise_depends_on_the_protocol():
    # hendrycks: frames 0 -> 1: 2 as above. Frames 0 -> 2: top-5 (0,1,2,3,4) get ranks (0,1,2,3,5): 1.
    assert top5_distance(T5_LOGITS, "gaussian_noise", "hendrycks") == pytest.approx(1.5)
    # seed paper: consecutive frames, as for rotate above
    assert top5_distance(T5_LOGITS, "gaussian_noise", "seed-paper") == pytest.approx(2.5)


def _literal_top5_distance(logits, noise):
    """The definition, one comparison at a time, with scipy's ordinal ranks (ties by index)."""
    per_sequence = []
    for frames in logits:
        distances = []
        for t in range(1, len(frames)):
            before = frames[0] if noise else frames[t - 1]
            order_before = np.argsort(rankdata(-before, method="ordinal"))
            rank_after = rankdata(-frames[t], method="ordinal") - 1
            distances.append(sum(abs(k - min(rank_after[order_before[k]], 5)) for k in range(5)))
        per_sequence.append(np.mean(distances))
    return np.mean(per_sequence)


@pytest.mark.parametrize("name", ["scale", "speckle_noise"])
@pytest.mark.parametrize("protocol", ["seed-paper", "hendrycks"])
def test_top5_distance_matches_the_literal_definition(name, protocol):
    # Small integer logits make many ties, which must break by class index as ordinal ranks do.
    logits = np.random.default_rng(3).integers(0, 4, (5, 7, 10)).astype(np.float32)
    against_first = protocol == "hendrycks" and "noise" in name
    assert top5_distance(logits, name, protocol) == pytest.approx(_literal_top5_distance(logits, against_first))


# ---------------------------------------------------------------- protocols per benchmark

# The 10 test perturbations of ImageNet-P (hendrycks/robustness README: spatter is a validation
# sequence) and of hendrycks/robustness ImageNet-P/cifar-p-eval.py, which averages spatter.
IMAGENET_P_TEST = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness", "translate",
                   "rotate", "tilt", "scale")
CIFAR_P_EVAL = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter", "brightness", "translate",
                "rotate", "tilt", "scale")


def test_hendrycks_lists_depend_on_the_benchmark():
    imagenet = get_protocol("hendrycks").setup("imagenet", 224)
    assert imagenet.perturbations == IMAGENET_P_TEST and imagenet.benchmark == "ImageNet-P"
    assert "snow" in imagenet.perturbations and "spatter" not in imagenet.perturbations
    for dataset in ("cifar10", "cifar100", "fashion-mnist"):
        cifar = get_protocol("hendrycks").setup(dataset, 32)
        assert cifar.perturbations == CIFAR_P_EVAL and cifar.benchmark == "CIFAR-10-P"
    # 64 px imagenet sets follow ImageNet-P's recipes: its list
    assert get_protocol("hendrycks").setup("imagenet", 64).perturbations == IMAGENET_P_TEST


def test_hendrycks_normalises_by_the_imagenet_alexnet_only_at_imagenet_size():
    assert get_protocol("hendrycks").setup("imagenet", 224).ce_normaliser.source == "ImageNet-C AlexNet"
    tiny = get_protocol("hendrycks").setup("imagenet", 64)
    assert tiny.ce_normaliser.source == ("none: unnormalised (CE = mean error, relative CE = mean error increase, "
                                         "FR = FP): no published AlexNet for Tiny-ImageNet-C-parameter sets at 64 px")
    assert get_protocol("hendrycks").setup("imagenet", 128).ce_normaliser.source.endswith(
        "no published AlexNet for ImageNet-C-parameter sets at 128 px")
    for size in (64, 224):
        fr = get_protocol("hendrycks").setup("imagenet", size).fr_normaliser
        assert fr.source.endswith("no published ImageNet-P AlexNet flip probabilities (hendrycks/robustness)")
    # unnormalised: CE is the mean error, FR the flip probability
    errors = _errors({c: 0.5 for c in BENCHMARK_CORRUPTIONS}, spread=0.1)
    ce = ce_table(errors, 0.2, tiny.ce_normaliser)
    np.testing.assert_allclose(ce["ce"], 0.5)
    np.testing.assert_allclose(ce["relative_ce"], 0.3)
    assert fr_table({"snow": 0.07}, tiny.fr_normaliser)["fr"].tolist() == [0.07]
    cifar = get_protocol("hendrycks").setup("cifar10", 32)
    assert cifar.ce_normaliser.source.endswith("the reference CIFAR evaluators publish no AlexNet baseline")


# Seed paper Table 9 (ImageNet-P flip probabilities, in IMAGENET_P_TEST order) and the FR of its
# Table 3, which divides each model's FPs by its baseline network's (ResNet-18 or ResNet-50).
TABLE_9 = {
    "ResNet-18": [.0979, .1154, .0700, .0504, .0901, .0380, .0689, .0869, .0517, .1560],
    "ResNet-18-pp": [.1009, .1213, .0736, .0527, .0927, .0396, .0797, .0964, .0575, .1662],
    "ResNet-18-b1": [.0968, .1156, .0736, .0518, .0958, .0389, .0837, .0983, .0594, .1710],
    "ResNet-50": [.0748, .0879, .0603, .0437, .0832, .0324, .0486, .0702, .0413, .1149],
    "ResNet-50-pp": [.0717, .0847, .0591, .0416, .0783, .0331, .0527, .0692, .0402, .1148],
    "ResNet-50-b1": [.0715, .0841, .0605, .0421, .0795, .0335, .0538, .0703, .0404, .1171],
}
TABLE_3_FR = {"ResNet-18-pp": 1.069, "ResNet-18-b1": 1.075, "ResNet-50-pp": 0.986, "ResNet-50-b1": 0.998}


def test_seed_paper_on_imagenet_is_raw_as_its_tables():
    setup = get_protocol("seed-paper").setup("imagenet", 224)
    assert setup.perturbations == IMAGENET_P_TEST  # Table 9: snow
    assert not get_protocol("seed-paper").compares_with_first_frame("gaussian_noise")  # Eq. 4: consecutive frames
    for normaliser in (setup.ce_normaliser, setup.fr_normaliser):
        assert normaliser.source.startswith("none: unnormalised")
        assert "seed paper's ImageNet tables" in normaliser.source
    raw = fr_table(dict(zip(setup.perturbations, TABLE_9["ResNet-50"])), setup.fr_normaliser)
    assert summary(setup, fr=raw)["mfr"] == pytest.approx(np.mean(TABLE_9["ResNet-50"]))
    # Its Table 3 FR: a model's raw FPs divided by its baseline network's, from this study
    for model, paper_fr in TABLE_3_FR.items():
        baseline = Normaliser.from_result(model[:9], 0.0, flips=fr_table(dict(zip(setup.perturbations,
                                                                               TABLE_9[model[:9]])), setup.fr_normaliser))
        fr = fr_table(dict(zip(setup.perturbations, TABLE_9[model])), baseline)
        assert summary(setup, fr=fr)["mfr"] == pytest.approx(paper_fr, abs=0.0006)
    # CIFAR keeps the seed paper's CIFAR-10 AlexNet
    assert get_protocol("seed-paper").setup("cifar10", 32).ce_normaliser.source.startswith("seed paper CIFAR-10 AlexNet")


@pytest.mark.bad_input
def test_the_dataset_decides_the_benchmark_and_an_unknown_protocol_is_refused():
    # imagenet at 32 px: its sets follow CIFAR-10-P's recipes, its mFR is still ImageNet-P's test list
    small = get_protocol("hendrycks").setup("imagenet", 32)
    assert small.benchmark == "ImageNet-P" and "snow" in small.perturbations and "spatter" not in small.perturbations
    assert small.ce_normaliser.source.startswith("none: unnormalised")
    assert check_protocol("hendrycks", "imagenet", 32) == "hendrycks"
    assert check_protocol("seed-paper", "imagenet", 32) == "seed-paper"
    with pytest.raises(ValueError, match="unknown protocol 'imagenet'; allowed: seed-paper, hendrycks") as error:
        check_protocol("imagenet", "cifar10", 32)
    assert "\n" not in str(error.value)


def test_mt5d_says_it_is_unnormalised():
    setup = get_protocol("hendrycks").setup("imagenet", 224)
    result = summary(setup, top5_distances=dict.fromkeys(ALL_PERTURBATIONS, 0.5))
    assert result["mt5d"] == pytest.approx(0.5)
    assert result["t5d_normaliser"] == "none: unnormalised (mean top-5 distance; no published baseline distances)"
