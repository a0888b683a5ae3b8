"""Corruption and perturbation robustness metrics: CE, relative CE, mCE, FP, FR, mFR, mT5D.

Definitions (Hendrycks & Dietterich, ICLR 2019; seed paper appendix B), with E the clean error,
E_cs the error on corruption c at severity s and "base" a baseline model's errors:

* CE_c = sum_s E_cs / sum_s E^base_cs; mCE = mean of CE_c over the 15 benchmark corruptions.
* relative CE_c = sum_s (E_cs - E) / sum_s (E^base_cs - E^base); relative mCE = its mean.
* FP_p: per sequence, the fraction of frame comparisons whose prediction changed, averaged over
  sequences; FR_p = FP_p / FP^base_p; mFR = mean of FR_p over the perturbations.
* T5D_p (top-5 distance): how far the top-5 ranking moves between compared frames; mT5D its mean.

Which frames are compared, which perturbations mFR averages and which baseline divides are fixed
together by a named :class:`Protocol`, per benchmark: CIFAR-10-P (the CIFAR-size datasets, whose
sets follow CIFAR-10-P's recipes) or ImageNet-P (imagenet, whose sets above 32 px follow
ImageNet-P's). :meth:`Protocol.setup` resolves a protocol for a dataset and image size into a
:class:`Setup`, and every result names the protocol it was measured under:

* ``seed-paper``: the seed paper's evaluation. Frames: consecutive for every perturbation, noise
  included (its Eq. 4; nicstrisc/Push-Pull-CNN-layer test_perturbation.py calls flip_prob with
  noise_perturbation=False). mFR over its 10 perturbations with snow, on CIFAR-10-P (Table 7) and
  ImageNet-P (Table 9) alike. CIFAR: CE and FR divided by its CIFAR-10 AlexNet. ImageNet: its
  Table 3 reports the raw mean corruption error and divides mCE and FR by the study's own baseline
  network, never by an AlexNet: values here are raw (divide by a baseline of this study with
  :meth:`Normaliser.from_result`), and say so.
* ``hendrycks``: the reference evaluators of hendrycks/robustness, noise sequences against frame
  0 and the others frame to frame in both. CIFAR-10-P (``ImageNet-P/cifar-p-eval.py``): its 10
  perturbations with spatter instead of snow; no published CIFAR AlexNet, so unnormalised.
  ImageNet-P: the 10 test perturbations, with snow (the README: "The spatter perturbation sequence
  is a validation sequence"); CE divided by the ImageNet-C AlexNet only for 224 px images (the
  official ImageNet-C, or sets made with ImageNet-C's parameters at ImageNet size), otherwise
  unnormalised (Tiny-ImageNet-C-parameter sets at 64 px have no published AlexNet); FR = FP, as
  neither the README nor ``ImageNet-P/test.py`` publishes AlexNet flip probabilities.

The dataset decides the benchmark: imagenet at 32 px averages ImageNet-P's list, though its sets
follow CIFAR-10-P's recipes (they hold every perturbation of both lists). Top-5 distances are never
normalised (no published baseline) and say so too.

A :class:`Normaliser` holds the baseline numbers and says where they come from. Every table
carries its normaliser's ``source`` in a ``normaliser`` column, and :func:`summary` repeats it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..data.datasets import IMAGENET_SIZE
from ..data.names import IMAGENET
from ..errors import UserError
from ..rundir import Column
from .corruptions.params import table_name
from .names import (
    ALL_CORRUPTIONS,
    ALL_PERTURBATIONS,
    BENCHMARK_CORRUPTIONS,
    HENDRYCKS,
    SEED_PAPER,
    SEVERITIES,
    TEST_PERTURBATIONS,
)
from .perturbations import CIFAR_P, IMAGENET_P, recipe_for

# The seed paper's CIFAR-10 AlexNet (the authors' own model; there is no official one), errors
# as fractions averaged over the 5 severities (Table 4). Because every corruption has the same 5
# severities, CE_c = sum_s E_cs / sum_s E^base_cs = mean_s E_cs / mean_s E^base_cs, and likewise
# for relative CE, so these averages are all a normaliser needs. The 4 extras (held out of mCE)
# are not in the seed paper; they are an earlier paper's numbers, as the project's reference
# notes (robustness-benchmarks.md) give them.
ALEXNET_CIFAR10 = {
    "clean": 0.1387,
    "gaussian_noise": 0.3844, "shot_noise": 0.3182, "impulse_noise": 0.4613,
    "defocus_blur": 0.2353, "glass_blur": 0.4097, "motion_blur": 0.2932, "zoom_blur": 0.2689,
    "snow": 0.2694, "frost": 0.2826, "fog": 0.3031, "brightness": 0.1784,
    "contrast": 0.4677, "elastic_transform": 0.2225, "pixelate": 0.1836, "jpeg_compression": 0.1848,
    "speckle_noise": 0.3126, "gaussian_blur": 0.2778, "spatter": 0.2519, "saturate": 0.2215,
}
# Its flip probabilities on CIFAR-10-P (seed paper Table 8, the 4-decimal copy of Table 7). The
# seed paper's set has snow where the reference evaluator averaged spatter.
ALEXNET_CIFAR10_P = {
    "gaussian_noise": 0.0411, "shot_noise": 0.0507, "motion_blur": 0.0842, "zoom_blur": 0.0059,
    "snow": 0.0364, "brightness": 0.0160, "translate": 0.1364, "rotate": 0.0894,
    "tilt": 0.0326, "scale": 0.1050,
}
# torchvision's AlexNet on ImageNet-C, mean over severities (hendrycks/robustness); its clean
# top-1 error is 1 - 0.56522 (torchvision's published accuracy).
ALEXNET_IMAGENET_C = {
    "clean": 0.43478,
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640,
    "defocus_blur": 0.819880, "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360,
    "snow": 0.866816, "frost": 0.826572, "fog": 0.819324, "brightness": 0.564592,
    "contrast": 0.853204, "elastic_transform": 0.646056, "pixelate": 0.717840, "jpeg_compression": 0.606500,
}
P_PERTURBATIONS = tuple(ALEXNET_CIFAR10_P)
# hendrycks/robustness ImageNet-P/cifar-p-eval.py averages spatter where the benchmark has snow
CIFAR_P_EVAL_PERTURBATIONS = tuple("spatter" if p == "snow" else p for p in P_PERTURBATIONS)
UNNORMALISED = "none: unnormalised (CE = mean error, relative CE = mean error increase, FR = FP)"
T5D_UNNORMALISED = "none: unnormalised (mean top-5 distance; no published baseline distances)"


@dataclass(frozen=True)
class Normaliser:
    """Baseline errors that CE, relative CE and FR divide by, and where they come from.

    ``corruption_errors`` are per-corruption errors averaged over the 5 severities;
    ``flip_probabilities`` are per-perturbation FPs.
    """

    source: str
    clean_error: float
    corruption_errors: Mapping[str, float] = field(default_factory=dict)
    flip_probabilities: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_name(cls, name: str) -> Normaliser:
        """A published AlexNet baseline: one of :data:`NORMALISERS`."""
        if name not in NORMALISERS:
            raise UserError(f"unknown normaliser {name!r}; allowed: {', '.join(NORMALISERS)}")
        source, errors, flips = NORMALISERS[name]
        return cls(source, errors["clean"], {c: e for c, e in errors.items() if c != "clean"}, dict(flips))

    @classmethod
    def from_result(
        cls,
        name: str,
        clean_error: float,
        errors: pd.DataFrame | None = None,
        flips: pd.DataFrame | None = None,
    ) -> Normaliser:
        """A baseline model of this study: its clean error, its :func:`corruption_errors` table
        and/or a table with ``perturbation`` and ``fp`` columns (e.g. :func:`fr_table`'s)."""
        corruption = _mean_over_severities(errors).to_dict() if errors is not None else {}
        if flips is not None and not {"perturbation", "fp"} <= set(flips.columns):
            raise UserError(f"flips table needs columns perturbation and fp, got {', '.join(flips.columns)}")
        fp = dict(zip(flips["perturbation"], flips["fp"].astype(float))) if flips is not None else {}
        return cls(f"baseline: {name} from this study", float(clean_error), corruption, fp)

    @classmethod
    def unnormalised(cls, reason: str) -> Normaliser:
        """Every baseline 1 (and the clean one 0), its source saying why no published one applies."""
        none = cls.from_name("none")
        return dataclasses.replace(none, source=f"{none.source}: {reason}")


NORMALISERS = {
    "alexnet-cifar10": ("seed paper CIFAR-10 AlexNet (Table 4/8)", ALEXNET_CIFAR10, ALEXNET_CIFAR10_P),
    "alexnet-imagenet": ("ImageNet-C AlexNet", ALEXNET_IMAGENET_C, {}),
    # every baseline 1 and the clean one 0: CE is the mean error, relative CE the mean increase
    "none": (UNNORMALISED, {"clean": 0.0, **dict.fromkeys(ALL_CORRUPTIONS, 1.0)},
             dict.fromkeys(ALL_PERTURBATIONS, 1.0)),
}


@dataclass(frozen=True)
class Setup:
    """A protocol resolved for one dataset and image size: what mFR averages, what divides."""

    protocol: str
    benchmark: str  # the -P benchmark whose list applies: CIFAR-10-P or ImageNet-P
    perturbations: tuple[str, ...]
    ce_normaliser: Normaliser
    fr_normaliser: Normaliser


@dataclass(frozen=True)
class Protocol:
    """How robustness is measured: the frame rule of FP and T5D (the same on both benchmarks in
    each protocol's reference code), the perturbations mFR averages per -P benchmark, and how the
    normalisers are chosen (see the module's docstring)."""

    name: str
    noise_against_first_frame: bool
    perturbation_lists: Mapping[str, tuple[str, ...]]  # what mFR averages, per benchmark: CIFAR-10-P, ImageNet-P
    source: str

    def compares_with_first_frame(self, perturbation: str) -> bool:
        return self.noise_against_first_frame and "noise" in perturbation

    def setup(self, dataset: str | None, image_size: int) -> Setup:
        """This protocol for ``dataset`` at ``image_size`` pixels. The dataset names the benchmark
        whose list mFR averages (imagenet: ImageNet-P's, at any size, even where its small sets are
        made with CIFAR-10-P's recipes, which hold every perturbation of both lists); without a
        dataset, the benchmark whose recipes make sets of this size."""
        if dataset is None:
            benchmark = recipe_for(image_size, image_size).name
        else:
            benchmark = IMAGENET_P.name if dataset == IMAGENET else CIFAR_P.name
        return Setup(self.name, benchmark, self.perturbation_lists[benchmark], *self._normalisers(benchmark, image_size))

    def _normalisers(self, benchmark: str, image_size: int) -> tuple[Normaliser, Normaliser]:
        """The (corruption, perturbation) baselines: by protocol, benchmark and the parameter table
        the -C sets of this size are made with."""
        if benchmark == CIFAR_P.name:
            if self.name == SEED_PAPER:
                return Normaliser.from_name("alexnet-cifar10"), Normaliser.from_name("alexnet-cifar10")
            none = Normaliser.unnormalised("the reference CIFAR evaluators publish no AlexNet baseline")
            return none, none
        if self.name == SEED_PAPER:
            none = Normaliser.unnormalised("raw, as the seed paper's ImageNet tables report them (they divide "
                                           "by the study's own baseline network, not an AlexNet)")
            return none, none
        fr = Normaliser.unnormalised("no published ImageNet-P AlexNet flip probabilities (hendrycks/robustness)")
        if image_size == IMAGENET_SIZE:  # ImageNet-C's parameters, at the size its AlexNet was measured at
            return Normaliser.from_name("alexnet-imagenet"), fr
        table = table_name(image_size, image_size)
        return Normaliser.unnormalised(f"no published AlexNet for {table}-parameter sets at {image_size} px"), fr


CIFAR_IMAGE_SIZE = 32
PROTOCOLS = {p.name: p for p in (
    Protocol(SEED_PAPER, False, {CIFAR_P.name: P_PERTURBATIONS, IMAGENET_P.name: P_PERTURBATIONS},
             "seed paper: consecutive frames for every perturbation, mFR over its 10 (snow); its CIFAR-10 "
             "AlexNet for CIFAR, raw values for ImageNet"),
    Protocol(HENDRYCKS, True, {CIFAR_P.name: CIFAR_P_EVAL_PERTURBATIONS, IMAGENET_P.name: TEST_PERTURBATIONS},
             "hendrycks/robustness: noise against frame 0, others consecutive; mFR over CIFAR-10-P's evaluator's 10 "
             "(spatter) or ImageNet-P's 10 test perturbations (snow); ImageNet-C AlexNet for 224 px ImageNet, "
             "else unnormalised"),
)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UserError(f"unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def default_protocol(dataset: str) -> str:
    """The protocol a dataset's numbers are usually compared under: ImageNet's reference
    evaluators, the seed paper's for CIFAR-size data."""
    return HENDRYCKS if dataset == IMAGENET else SEED_PAPER


def check_protocol(name: str, dataset: str, image_size: int) -> str:
    """``name`` when it is a protocol that resolves for ``dataset`` at ``image_size`` pixels, else
    a one-line :class:`UserError`: what run, train and eval check before any work."""
    return get_protocol(name).setup(dataset, image_size).protocol


# ---------------------------------------------------------------- corruptions


def corruption_errors(values: Mapping[tuple[str, int], float], num_images: int | None = None) -> pd.DataFrame:
    """Tidy table (corruption, severity, error) from ``{(corruption, severity): value}``.

    Values are errors in [0, 1] or, when ``num_images`` is given, numbers of correct predictions
    out of ``num_images``.
    """
    rows = []
    for (corruption, severity), value in values.items():
        if severity not in SEVERITIES:
            raise UserError(f"severity of {corruption} must be one of 1..5, got {severity!r}")
        limit = num_images if num_images is not None else 1
        if not 0 <= value <= limit:
            raise UserError(f"value for ({corruption}, {severity}) must be in [0, {limit}], got {value!r}")
        error = 1 - value / num_images if num_images is not None else float(value)
        rows.append((corruption, int(severity), error))
    return pd.DataFrame(rows, columns=["corruption", "severity", "error"])


def ce_table(errors: pd.DataFrame, clean_error: float, normaliser: Normaliser) -> pd.DataFrame:
    """One row per corruption in ``errors``: mean error over severities, CE and relative CE.

    ``benchmark`` marks the 15 corruptions that mCE averages; the extras are reported only.
    """
    mean_errors = _mean_over_severities(errors)
    missing = [c for c in mean_errors.index if c not in normaliser.corruption_errors]
    if missing:
        raise UserError(f"normaliser {normaliser.source!r} has no baseline error for {', '.join(missing)}; "
                         f"it covers {', '.join(normaliser.corruption_errors) or 'no corruptions'}")
    base = pd.Series(normaliser.corruption_errors)[mean_errors.index]
    return pd.DataFrame({
        "corruption": mean_errors.index,
        "error": mean_errors.to_numpy(),
        "ce": (mean_errors / base).to_numpy(),
        "relative_ce": ((mean_errors - clean_error) / (base - normaliser.clean_error)).to_numpy(),
        "benchmark": mean_errors.index.isin(BENCHMARK_CORRUPTIONS),
        "normaliser": normaliser.source,
    })


def mce(table: pd.DataFrame) -> float:
    """Mean CE over the 15 benchmark corruptions of a :func:`ce_table`."""
    return _mean_over(table, "corruption", "ce", BENCHMARK_CORRUPTIONS, "mCE")


def relative_mce(table: pd.DataFrame) -> float:
    """Mean relative CE over the same corruptions as :func:`mce`."""
    return _mean_over(table, "corruption", "relative_ce", BENCHMARK_CORRUPTIONS, "relative mCE")


def _mean_over_severities(errors: pd.DataFrame) -> pd.Series:
    """Mean error per corruption (in order of appearance), requiring each of the 5 severities once."""
    missing_columns = {"corruption", "severity", "error"} - set(errors.columns)
    if missing_columns:
        raise UserError(f"errors table lacks columns {', '.join(sorted(missing_columns))}")
    for corruption, severities in errors.groupby("corruption", sort=False)["severity"]:
        if sorted(severities) != list(SEVERITIES):
            lacking = sorted(set(SEVERITIES) - set(severities))
            problem = f"lack severities {lacking}" if lacking else f"repeat severities {sorted(severities)}"
            raise UserError(f"errors for {corruption} {problem}; CE needs each of 1..5 once")
    return errors.groupby("corruption", sort=False)["error"].mean()


def _mean_over(table: pd.DataFrame, key: str, column: str, names: Sequence[str], metric: str) -> float:
    present = set(table[key])
    missing = [n for n in names if n not in present]
    if missing:
        raise UserError(f"{metric} needs all of {len(names)} {key}s; missing: {', '.join(missing)}")
    return float(table.set_index(key).loc[list(names), column].mean())


# ---------------------------------------------------------------- perturbations


def _frame_pairs(x: torch.Tensor, name: str, protocol: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(reference, compared) frames along dim 1 under ``protocol``: every frame against frame 0
    (the clean image) where the protocol does so for perturbation ``name``, else consecutive frames."""
    first = get_protocol(protocol).compares_with_first_frame(name)
    reference = x[:, :1].expand_as(x[:, 1:]) if first else x[:, :-1]
    return reference, x[:, 1:]


def flip_probability(predictions: np.ndarray | torch.Tensor, name: str, protocol: str = SEED_PAPER) -> float:
    """FP of perturbation ``name`` from predicted classes of shape (N sequences, T frames), with
    frames paired as ``protocol`` does.

    Every sequence makes T - 1 comparisons, so the mean over sequences of each sequence's flip
    fraction equals the mean over all comparisons.
    """
    preds = torch.as_tensor(predictions)
    if preds.ndim != 2 or preds.shape[1] < 2 or preds.is_floating_point():
        raise UserError(f"predictions must be integer classes of shape (N, T >= 2), got "
                         f"{preds.dtype} {tuple(preds.shape)}")
    reference, compared = _frame_pairs(preds, name, protocol)
    return (compared != reference).double().mean().item()


def top5_distance(logits: np.ndarray | torch.Tensor, name: str, protocol: str = SEED_PAPER) -> float:
    """Mean top-5 distance (T5D, ImageNet-P) of perturbation ``name`` from (N, T, K) logits.

    For each compared frame pair, the reference frame's top-5 classes (in rank order) are looked
    up in the other frame; with r_k the 0-based rank there of the reference's k-th class, the
    distance is sum_k |k - min(r_k, 5)|. Ties rank the lower class index first. Frames are paired
    as for :func:`flip_probability` under ``protocol``. Memory grows as N * T * 5 * K: pass
    ImageNet-P in chunks.
    """
    x = torch.as_tensor(logits)
    if x.ndim != 3 or x.shape[1] < 2 or x.shape[2] < 5 or not x.is_floating_point():
        raise UserError(f"logits must be floats of shape (N, T >= 2, K >= 5), got {x.dtype} {tuple(x.shape)}")
    reference, compared = _frame_pairs(x, name, protocol)
    top5 = torch.sort(reference, dim=-1, descending=True, stable=True).indices[..., :5]
    value = compared.gather(-1, top5).unsqueeze(-1)
    classes = torch.arange(x.shape[2], device=x.device)
    others = compared.unsqueeze(-2)
    ahead = (others > value) | ((others == value) & (classes < top5.unsqueeze(-1)))
    ranks = ahead.sum(-1).clamp(max=5)
    distance = (ranks - torch.arange(5, device=x.device)).abs().sum(-1)
    return distance.double().mean().item()


def fr_table(flip_probabilities: Mapping[str, float], normaliser: Normaliser) -> pd.DataFrame:
    """One row per perturbation: FP and flip rate FR = FP / baseline FP."""
    missing = [p for p in flip_probabilities if p not in normaliser.flip_probabilities]
    if missing:
        raise UserError(f"normaliser {normaliser.source!r} has no flip probability for {', '.join(missing)}; "
                         f"it covers {', '.join(normaliser.flip_probabilities) or 'no perturbations'}")
    names = list(flip_probabilities)
    fp = np.array([flip_probabilities[p] for p in names], dtype=float)
    base = np.array([normaliser.flip_probabilities[p] for p in names], dtype=float)
    return pd.DataFrame({"perturbation": names, "fp": fp, "fr": fp / base, "normaliser": normaliser.source})


def mfr(table: pd.DataFrame, perturbations: Sequence[str] = P_PERTURBATIONS) -> float:
    """Mean FR of an :func:`fr_table` over ``perturbations`` (default: the seed paper's 10)."""
    return _mean_over(table, "perturbation", "fr", perturbations, "mFR")


# ---------------------------------------------------------------- summary


def summary(setup: Setup, ce: pd.DataFrame | None = None, fr: pd.DataFrame | None = None,
            top5_distances: Mapping[str, float] | None = None) -> dict[str, float | str]:
    """mCE, relative mCE, mFR and/or mT5D over ``setup``'s perturbations, with the sources of the
    normalisers they were divided by and the protocol they were measured under."""
    result: dict[str, float | str] = {Column.PROTOCOL: setup.protocol}
    if ce is not None:
        result.update({Column.MCE: mce(ce), Column.RELATIVE_MCE: relative_mce(ce), Column.CE_NORMALISER: _source(ce)})
    if fr is not None:
        result.update({Column.MFR: mfr(fr, setup.perturbations), Column.FR_NORMALISER: _source(fr)})
    if top5_distances:
        result.update({Column.MT5D: float(np.mean([top5_distances[p] for p in setup.perturbations])),
                       Column.T5D_NORMALISER: T5D_UNNORMALISED})
    return result


def _source(table: pd.DataFrame) -> str:
    sources = table["normaliser"].unique()
    if len(sources) != 1:
        raise ValueError(f"table mixes normalisers: {', '.join(sources)}")
    return str(sources[0])
