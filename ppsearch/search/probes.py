"""The cheap probes MO-ASHA ranks a rung on: one per objective of the run, measured on the
selection split's -C/-P sets with a few images and sequences. Noisy, and enough to rank trials."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..robustness.corruptions import BENCHMARK_CORRUPTIONS
from ..robustness.evaluate import Predictor, batched_logits
from ..robustness.metrics import flip_probability, fr_table, get_protocol
from ..robustness.official import load_cifar_c
from ..robustness.perturbations import ALL_PERTURBATIONS
from ..rundir import Column, RunSettings
from ..training.trial import EvaluationSets, TrialEpoch
from .moasha import rung_metrics

PROBE_IMAGES = 20  # per corruption, at severity 3: the cheap robustness estimate at MO-ASHA rungs
PROBE_SEVERITY = 3
PROBE_SEQUENCES = 3  # per perturbation (some 30 frames each): the cheap flip rate at MO-ASHA rungs


def rung_probes(epoch: TrialEpoch, sets: EvaluationSets, settings: RunSettings) -> dict[str, float]:
    """What MO-ASHA ranks a rung on: a cheap probe of each error objective of the run, measured on
    the selection split's sets, each cost objective's value, and the clean error in any case
    (reports place a pruned trial at it)."""
    wanted = {Column.RUNG_CLEAN_ERROR, *rung_metrics(settings.objectives)}
    c_dir, p_dir = sets.selection
    values = {Column.RUNG_CLEAN_ERROR: epoch.clean_error, **epoch.cost}
    if wanted & {Column.RUNG_CORRUPTION_ERROR, Column.RUNG_CORRUPTION_INCREASE}:
        corruption = probe_corruption_error(epoch.predict, c_dir)
        values.update({Column.RUNG_CORRUPTION_ERROR: corruption,
                       Column.RUNG_CORRUPTION_INCREASE: corruption - epoch.clean_error})
    if Column.RUNG_FLIP_RATE in wanted:
        values[Column.RUNG_FLIP_RATE] = probe_flip_rate(epoch.predict, p_dir, settings.protocol, settings.dataset)
    return {k: v for k, v in values.items() if k in wanted}


def probe_corruption_error(predict: Predictor, c_dir: Path) -> float:
    """Mean error over the benchmark corruptions at one severity on a few images."""
    wrong = total = 0
    for name in BENCHMARK_CORRUPTIONS:
        images, labels = load_cifar_c(c_dir, name, PROBE_SEVERITY)
        wrong += (predict(images[:PROBE_IMAGES]) != labels[:PROBE_IMAGES]).sum().item()
        total += len(labels[:PROBE_IMAGES])
    return wrong / total


def probe_flip_rate(predict: Predictor, p_dir: Path, protocol: str, dataset: str) -> float:
    """Mean flip rate over the perturbations that ``protocol``'s mFR averages, each on its first
    few sequences of the -P set in ``p_dir`` (normalised as mFR is, so that no perturbation's
    scale outweighs the others)."""
    # memory-mapped, so that only the probed sequences are read (load_cifar_p reads every one)
    files = {name: np.load(p_dir / f"{name}.npy", mmap_mode="r") for name in ALL_PERTURBATIONS}
    chosen = get_protocol(protocol).setup(dataset, max(files[ALL_PERTURBATIONS[0]].shape[2:4]))
    sequences = {name: torch.from_numpy(np.array(files[name][:PROBE_SEQUENCES])) for name in chosen.perturbations}
    flips = {name: flip_probability(logits.argmax(-1), name, protocol)
             for name, logits in batched_logits(predict, sequences.items()).items()}
    return float(fr_table(flips, chosen.fr_normaliser)["fr"].mean())
