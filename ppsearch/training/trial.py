"""One trial: train one configuration under one budget and seed, measure it, return one flat record.

A trial lives in its own directory::

    <trial_dir>/checkpoint/      the latest training checkpoint (resumed from when present)
    <trial_dir>/model.safetensors the trained model, readable by `ppsearch eval`
    <trial_dir>/sparsity.csv      weight and response sparsity per convolution
    <trial_dir>/record.json       the record, written last: a trial with a record is done

The record's columns: the configuration (``TrialConfig.columns()``) and the columns of
:class:`ppsearch.rundir.Column` (status completed or failed, metrics, costs, sparsity), with
``error/<corruption>/<severity>``, ``ce/<corruption>`` and ``fp/<perturbation>``, all measured on
the test split. A trial with a validation split (every search trial) holds those images out of
training and also records the summary metrics measured on them as ``val_<metric>``: the values a
search selects on. A search's own trials measure the validation split only; the test split is
measured later (:func:`measure_test`, from the saved model) for the configurations a report
states test values for, and added to the record.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..config import DESIGN_KEYS, KEYS, MODEL_KEYS, Design, check_config
from ..constraints import Constraint, excesses
from ..data.datasets import Dataset, load_dataset, native_image_size
from ..data.preprocess import normalisation
from ..data.splits import check_validation_fraction, validation_split
from ..data.streaming import DataAccess, Images, UnreadableImage, plan_loader
from ..errors import UserError
from ..files import read_json
from ..models import architecture_problem, input_problem
from ..models.latency import LatencySetup, cached_latency
from ..models.model_file import ModelSpec, save_model
from ..models.profile import count_flops
from ..robustness.evaluate import Evaluation, Predictor, evaluate
from ..robustness.generate import SETS_MANIFEST, cached_sets, set_dirs
from ..robustness.metrics import check_protocol, default_protocol
from ..rundir import (
    CE_PREFIX,
    CHECKPOINT_DIR,
    ERROR_PREFIX,
    FP_PREFIX,
    MODEL_FILE,
    SUMMARY_METRICS,
    T5D_PREFIX,
    Column,
    RunSettings,
    TrialStatus,
    read_record,
    validation_column,
    write_record,
)
from .budgets import get_budget
from .recipes import get_recipe
from .sparsity import ResponseSparsity
from .trainer import Checkpointing, EpochReport, NonFiniteLoss, fit

SPARSITY_IMAGES = 256


@dataclasses.dataclass(frozen=True)
class TrialEpoch:
    """What a trial hands its observer after every epoch: the trainer's report, where the epoch's
    checkpoint is, and the model's predictor. The clean error on the budget's evaluation images of
    the selection split is measured only when asked for (a search asks at its rungs only)."""

    report: EpochReport
    checkpoint: Path
    predict: Predictor
    selection: Split = dataclasses.field(repr=False)
    cost: Mapping[str, float] = dataclasses.field(default_factory=dict)  # the model's cost metrics (COST_METRICS)

    @functools.cached_property
    def clean_error(self) -> float:
        return (self.predict(self.selection.images) != self.selection.labels).double().mean().item()


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    arch: str
    design: Design
    augmentation: str
    recipe: str
    dataset: str
    image_size: int  # the images' height and width as trained and measured
    budget: str
    epochs: int
    train_images: int | None
    eval_images: int | None
    c_images: int | None
    p_images: int | None
    seed: int
    protocol: str  # the evaluation protocol (ppsearch.robustness.metrics.PROTOCOLS)
    validation_fraction: float | None  # held out of the training split to select on; None: no validation
    validation_seed: int  # draws the validation split (a run's seed: the same split for every trial)

    @classmethod
    def create(cls, config: Mapping[str, Any], *, dataset: str, budget: str, seed: int = 0,
               budget_overrides: Mapping[str, int | None] | None = None, protocol: str | None = None,
               validation_fraction: float | None = None, validation_seed: int = 0,
               image_size: int | None = None) -> TrialConfig:
        """A trial of ``config`` (keys of :data:`ppsearch.config.KEYS`; ``recipe`` defaults to the
        budget's) under the named ``budget``, some of whose sizes ``budget_overrides`` may change,
        measured under ``protocol`` (default: the dataset's usual one), holding out
        ``validation_fraction`` of the training split (drawn from ``validation_seed``) when given,
        on images of ``image_size`` (imagenet only; default: the dataset's own)."""
        config = check_trainable(config)
        design = Design.from_mapping(config)
        model = {key: config.get(key, KEYS[key].default) for key in MODEL_KEYS}
        b = get_budget(budget, budget_overrides)
        protocol = check_protocol(protocol or default_protocol(dataset), dataset, image_size or native_image_size(dataset))
        if validation_fraction is not None:
            check_validation_fraction(validation_fraction, "--validation-fraction")
        return cls(model["arch"], design, model["augmentation"], model["recipe"] or b.recipe, dataset,
                   image_size or native_image_size(dataset), budget, b.epochs, b.train_images, b.eval_images,
                   b.c_images, b.p_images, seed, protocol,
                   validation_fraction, validation_seed)

    @classmethod
    def for_run(cls, settings: RunSettings, configuration: Mapping[str, Any], seed: int) -> TrialConfig:
        """A trial of a search run: ``configuration`` under the run's dataset, budget, protocol and
        validation split (drawn from the run's seed: the same for every trial)."""
        return cls.create(configuration, dataset=settings.dataset, budget=settings.budget, seed=seed,
                          budget_overrides=settings.budget_overrides, protocol=settings.protocol,
                          validation_fraction=settings.validation_fraction, validation_seed=settings.seed,
                          image_size=settings.image_size)

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The record's columns that say how the trial was trained: the configuration keys, then
        the dataset, budget, sizes, seed, protocol and split (the keys of :meth:`to_dict`)."""
        return (*MODEL_KEYS, *DESIGN_KEYS, *(f.name for f in dataclasses.fields(cls) if f.name not in (*MODEL_KEYS, "design")))

    def to_dict(self) -> dict[str, Any]:
        """Flat: the design's fields beside the others (in the order of :meth:`columns`)."""
        flat = dataclasses.asdict(self)
        return {**{k: flat[k] for k in MODEL_KEYS}, **self.design.to_dict(),
                **{k: v for k, v in flat.items() if k not in MODEL_KEYS + ("design",)}}

    @property
    def set_images(self) -> int | None:
        """How many images the run's generated -C/-P sets need (of each split)."""
        if self.c_images is None or self.p_images is None:
            return None
        return max(self.c_images, self.p_images)

    def splits(self, data: Dataset) -> tuple[Split, Split | None]:
        """The images this trial trains on (the budget's first ``train_images`` of the training split
        less the validation images) and its validation images (None without a validation split)."""
        if self.validation_fraction is None:
            return Split(data.train_images[:self.train_images], data.train_labels[:self.train_images]), None
        train, validation = validation_split(data.train_labels, self.validation_fraction, self.validation_seed)
        train = train[:self.train_images]
        return (Split(data.train_images[train], data.train_labels[train]),
                Split(data.train_images[validation], data.train_labels[validation]))


@dataclasses.dataclass(frozen=True)
class Split:
    images: Images
    labels: torch.Tensor


@dataclasses.dataclass(frozen=True)
class EvaluationSets:
    """The -C and -P folders trials are measured on: made from test images, and from validation
    images where the trials select on a validation split."""

    test: tuple[Path, Path]
    validation: tuple[Path, Path] | None

    @property
    def selection(self) -> tuple[Path, Path]:
        return self.validation or self.test


def evaluation_sets(out: Path, config: TrialConfig, data: Dataset, *, with_test: bool = True, device: str = "cpu",
                    progress: bool = True) -> EvaluationSets:
    """The sets of a run's trials (all sharing ``config``'s sizes and split) under ``out``, generated
    on first use from the first ``config.set_images`` test (and validation) images; the test sets
    are only named, not made, unless ``with_test`` (a search makes them when its first test
    measurement needs them)."""
    n = config.set_images
    validation = config.splits(data)[1]
    test = (cached_sets(out / "test", data.test_images[:n], data.test_labels[:n], config.dataset, device=device,
                        progress=progress) if with_test or validation is None else set_dirs(out / "test", config.dataset))
    if validation is not None:
        validation = cached_sets(out / "validation", validation.images[:n], validation.labels[:n], config.dataset,
                                 device=device, progress=progress)
    return EvaluationSets(test, validation)


def check_value(name: str, value: Any) -> Any:
    """One configuration value checked against its key, and an architecture or recipe against what
    exists (the model zoo, the recipes; nothing is built)."""
    value = KEYS[name].check(value)
    problem = architecture_problem(value) if name == "arch" else None
    if problem:
        raise UserError(problem)
    if name == "recipe" and value is not None:
        get_recipe(value)
    return value


def check_trainable(config: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`check_value`'s checks of the open keys plus :func:`ppsearch.config.check_config`."""
    for name in MODEL_KEYS:
        if name in config:
            check_value(name, config[name])
    return check_config(config)


@functools.lru_cache(maxsize=2)
def trial_dataset(name: str, access: DataAccess = DataAccess(), image_size: int | None = None) -> Dataset:
    """Datasets are loaded once per process and shared by its trials."""
    return load_dataset(name, access.data_dir, image_size=image_size, access=access)


def check_data(config: TrialConfig, access: DataAccess = DataAccess()) -> Dataset:
    """``config``'s dataset (loaded once per process), after refusing, before anything is written,
    a memory budget too small to stream its training batches (nothing to check for data in memory)
    and a model that does not build or run on the images (one forward pass of one image)."""
    data = trial_dataset(config.dataset, access, config.image_size)
    train = config.splits(data)[0].images
    plan_loader(train, min(get_recipe(config.recipe).batch_size, len(train)))
    spec = _model_spec(config, data)
    problem = input_problem(spec.build(), config.arch, spec.in_chans, train.shape[1])
    if problem:
        raise UserError(problem)
    return data


def check_run(settings: RunSettings, defaults: Mapping[str, Any], access: DataAccess) -> tuple[TrialConfig, Dataset]:
    """A search run's trial of its space's ``defaults`` (the sizes and split every trial of the run
    shares) and the run's dataset, both checked (:meth:`TrialConfig.create`, :func:`check_data`)."""
    config = TrialConfig.for_run(settings, defaults, settings.seed)
    return config, check_data(config, access)


def run_trial(
    config: TrialConfig,
    trial_dir: str | Path,
    sets: EvaluationSets,
    *,
    identity: Mapping[str, Any] | None = None,
    latency: LatencySetup | None = None,
    latency_cache: Path | None = None,
    constraints: Sequence[Constraint] = (),
    reference: bool = False,
    with_test: bool = True,
    access: DataAccess = DataAccess(),
    device: str = "cpu",
    compile: bool = False,
    on_epoch: Callable[[TrialEpoch], None] | None = None,
) -> dict[str, Any]:
    """Train and measure ``config``; ``sets`` are the run's generated -C and -P folders; the record
    also holds ``identity`` (a search trial's id, origin, configuration id, node) and the model's
    cost: parameters, FLOPs and latency as ``latency`` sets it up (default: one image on
    ``device``), measured once per configuration when ``latency_cache`` is a folder.

    The cost is measured before training: a design that breaks one of ``constraints`` is recorded
    as ``infeasible`` with its excesses and not trained, unless it is a ``reference`` (a paper's
    configuration: the plots need it whatever it costs). Without ``with_test`` a trial with a
    validation split measures that split only (:func:`measure_test` adds the test split later).
    Resumes from the trial's checkpoint when
    there is one; returns the stored record without training when the trial already finished.
    ``on_epoch(epoch)`` receives a :class:`TrialEpoch` after every epoch. A NaN/inf loss, running out
    of device memory or an undecodable streamed image (unless ``access`` skips those) ends the trial
    with status ``failed`` and the reason.
    """
    trial_dir = Path(trial_dir)
    record = read_record(trial_dir)
    if record is not None:
        if {k: record.get(k) for k in TrialConfig.columns()} != json.loads(json.dumps(config.to_dict())):
            raise UserError(f"{trial_dir} holds a finished trial of another configuration")
        return record
    trial_dir.mkdir(parents=True, exist_ok=True)
    data = trial_dataset(config.dataset, access, config.image_size)
    spec = _model_spec(config, data)
    latency = latency or LatencySetup(device=device)
    image_size = data.train_images.shape[1]
    # the plain model's cost first: building it must not move the trial's seeded initialisation
    plain = (model_cost(dataclasses.replace(spec, design=Design().to_dict()), image_size, latency, latency_cache)
             if any(c.relative for c in constraints) else None)
    torch.manual_seed(config.seed)
    model = spec.build()
    cost = model_cost(spec, image_size, latency, latency_cache, model)
    record: dict[str, Any] = {**config.to_dict(), **(identity or {}), Column.STATUS: TrialStatus.COMPLETED,
                              Column.FAILURE_REASON: "", **cost}
    if constraints:
        record.update(excesses(constraints, cost, plain))
        if record[Column.CONSTRAINT_VIOLATION] > 0 and not reference:
            return write_record(trial_dir, {**record, Column.STATUS: TrialStatus.INFEASIBLE,
                                            Column.EPOCHS_COMPLETED: 0, Column.TRIAL_DIR: str(trial_dir),
                                            Column.FINISHED_AT: _now()})
    predict = Predictor(model, spec.mean, spec.std, device)
    history, failure = _train(config, model, spec, data, trial_dir, predict, device, compile, on_epoch, cost)
    if failure:
        record.update({Column.STATUS: TrialStatus.FAILED, Column.FAILURE_REASON: failure})
    else:
        record.update(_measure(config, model, predict, data, sets, trial_dir, with_test))
        save_model(trial_dir / MODEL_FILE, model, spec)
    train_seconds = history[-1].train_seconds if history else 0.0
    record.update({Column.EPOCHS_COMPLETED: len(history), Column.TRAIN_SECONDS: train_seconds,
                   Column.SKIPPED_IMAGES: sum(r.skipped_images for r in history),
                   Column.IMAGES_PER_SECOND: sum(r.images for r in history) / train_seconds if train_seconds else 0.0,
                   Column.TRIAL_DIR: str(trial_dir), Column.FINISHED_AT: _now()})
    return write_record(trial_dir, record)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def model_cost(spec: ModelSpec, image_size: int, latency: LatencySetup, latency_cache: Path | None,
               model: torch.nn.Module | None = None) -> dict[str, Any]:
    """What the model of ``spec`` (``model``, when built already) costs at ``image_size``: its cost
    metrics (parameters, FLOPs per image, latency) and how the latency was measured."""
    model = spec.build() if model is None else model
    measured = cached_latency(model, {"arch": spec.arch, "design": spec.design, "num_classes": spec.num_classes},
                              in_chans=spec.in_chans, image_size=image_size, setup=latency, cache=latency_cache)
    return {Column.PARAMS: sum(p.numel() for p in model.parameters()),
            Column.FLOPS: count_flops(model, image_size, spec.in_chans),
            Column.LATENCY_MS: measured.median_ms, Column.LATENCY_SPREAD_MS: measured.spread_ms,
            Column.LATENCY_DEVICE: measured.device, Column.LATENCY_THREADS: measured.threads,
            Column.LATENCY_BATCH: measured.batch, Column.LATENCY_BACKEND: measured.backend}


def _model_spec(config: TrialConfig, data: Dataset) -> ModelSpec:
    in_chans, num_classes = data.train_images.shape[-1], len(data.classes)
    mean, std = normalisation(config.dataset, in_chans)
    return ModelSpec(config.arch, config.design.to_dict(), in_chans, num_classes, config.dataset, mean, std)


def _train(config: TrialConfig, model: torch.nn.Module, spec: ModelSpec, data: Dataset, trial_dir: Path,
           predict: Predictor, device: str, compile: bool, on_epoch: Callable[[TrialEpoch], None] | None,
           cost: Mapping[str, float]) -> tuple[list[EpochReport], str]:
    """Train ``model`` on the trial's training images; returns the epochs' reports and, for a
    trial that failed in training, why."""
    train, validation = config.splits(data)
    selection = validation or Split(data.test_images, data.test_labels)

    def report_epoch(report: EpochReport, trained: torch.nn.Module) -> None:
        if on_epoch is not None:
            scored = Split(selection.images[:config.eval_images], selection.labels[:config.eval_images])
            on_epoch(TrialEpoch(report, trial_dir / CHECKPOINT_DIR, predict, scored, cost))

    history: list[EpochReport] = []
    try:
        history = fit(model, train.images, train.labels, get_recipe(config.recipe), epochs=config.epochs,
                      augmentation=config.augmentation, mean=spec.mean, std=spec.std, seed=config.seed,
                      device=device, compile=compile, on_epoch=report_epoch,
                      checkpointing=Checkpointing(trial_dir / CHECKPOINT_DIR, spec, config.to_dict()))
    except (NonFiniteLoss, torch.OutOfMemoryError, UnreadableImage) as error:
        return history, f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return history, ""


def measure_test(config: TrialConfig, trial_dir: str | Path, sets: EvaluationSets, *,
                 access: DataAccess = DataAccess(), device: str = "cpu") -> dict[str, Any]:
    """Add the test-split measurements of ``config``'s completed trial in ``trial_dir`` to its
    record, from its saved model (nothing is retrained): what a search does for the configurations
    it reports. Each once: a record that holds them is returned as it is; the record is rewritten
    atomically, so an interruption leaves it with all of them or none."""
    trial_dir = Path(trial_dir)
    record = read_record(trial_dir)
    if record is None or record[Column.STATUS] != TrialStatus.COMPLETED:
        raise ValueError(f"{trial_dir} holds no completed trial to measure on the test split")
    if Column.CLEAN_ERROR in record:
        return record
    data = trial_dataset(config.dataset, access, config.image_size)
    spec = _model_spec(config, data)
    model = spec.build()
    # the weights as the trial left them, non-finite ones included (load_model refuses those in a
    # checkpoint a user hands over): the measurement is the one the trial would have made
    model.load_state_dict(load_file(str(trial_dir / MODEL_FILE)))
    predict = Predictor(model, spec.mean, spec.std, device)
    return write_record(trial_dir, {**record, **_test_metrics(config, predict, data, sets)})


def _measure(config: TrialConfig, model: torch.nn.Module, predict: Predictor, data: Dataset, sets: EvaluationSets,
             trial_dir: Path, with_test: bool) -> dict[str, Any]:
    """The trained model's summary metrics on the validation split (prefixed: what a search selects
    on), the frost its -C sets hold and its convolutions' sparsity (first layer's in the record,
    every layer's in ``sparsity.csv``), in ``eval_seconds``; then its metrics on the test split, in
    ``test_eval_seconds``, when ``with_test`` or when it has no validation split. The sparsity is
    measured on the first clean images of the split the trial is selected on, inside that split's
    clean pass (no forward pass of its own)."""
    started = time.perf_counter()
    values: dict[str, Any] = {Column.FROST: read_json(sets.selection[0].parent / SETS_MANIFEST)["frost_textures"]}
    sparsity = ResponseSparsity(model, SPARSITY_IMAGES)
    validation = config.splits(data)[1]
    if validation is not None:
        measured = _split_metrics(config, predict, validation, sets.validation, sparsity)
        values.update({validation_column(m): measured[m] for m in SUMMARY_METRICS if m in measured})
    else:
        values.update(_test_metrics(config, predict, data, sets, sparsity))
    table = sparsity.table()
    table.to_csv(trial_dir / "sparsity.csv", index=False)
    values.update({Column.FIRST_LAYER_WEIGHT_SPARSITY: table["weight_sparsity"].iloc[0],
                   Column.FIRST_LAYER_RESPONSE_SPARSITY: table["response_sparsity"].iloc[0],
                   Column.EVAL_SECONDS: time.perf_counter() - started - values.get(Column.TEST_EVAL_SECONDS, 0.0)})
    if with_test and validation is not None:
        values.update(_test_metrics(config, predict, data, sets))
    return values


def _test_metrics(config: TrialConfig, predict: Predictor, data: Dataset, sets: EvaluationSets,
                  sparsity: ResponseSparsity | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    values = _split_metrics(config, predict, Split(data.test_images, data.test_labels), sets.test, sparsity)
    return {**values, Column.TEST_EVAL_SECONDS: time.perf_counter() - started}


def _split_metrics(config: TrialConfig, predict: Predictor, split: Split, sets: tuple[Path, Path],
                   sparsity: ResponseSparsity | None = None) -> dict[str, Any]:
    """Every metric of ``predict`` on one split: its clean images and the -C/-P ``sets`` made from
    them; ``sparsity`` watches the pass over the clean images."""
    return _metrics(evaluate(predict, split.images, split.labels, c_source=f"official:{sets[0]}",
                             p_source=f"official:{sets[1]}", clean_images=config.eval_images, c_images=config.c_images,
                             p_images=config.p_images, protocol=config.protocol, dataset=config.dataset,
                             seed=config.seed, progress=False, watch_clean=sparsity))


def _metrics(evaluation: Evaluation) -> dict[str, Any]:
    errors = evaluation.corruption_errors
    flat = {Column.CLEAN_ERROR: evaluation.clean_error, **evaluation.summary}
    flat.update({f"{ERROR_PREFIX}{row.corruption}/{row.severity}": row.error for row in errors.itertuples()})
    flat.update({f"{CE_PREFIX}{row.corruption}": row.ce for row in evaluation.ce.itertuples()})
    flat.update({f"{FP_PREFIX}{name}": value for name, value in evaluation.flip_probabilities.items()})
    flat.update({f"{T5D_PREFIX}{name}": value for name, value in evaluation.top5_distances.items()})
    return flat
