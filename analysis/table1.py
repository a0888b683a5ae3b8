"""The seed paper's Table 1 layout: E, mCE, rCE and mFR per configuration.

    python analysis/table1.py RUN_DIR [RUN_DIR ...]
        ppsearch search or `ppsearch train` runs: mean over the seeds that estimate each
        configuration (a search's selected seeds left out, as in its report), as markdown on
        stdout and CSV beside the first run.

    python analysis/table1.py --seed-results RESULTS_DIR [--clean-error NAME=PERCENT ...]
        the seed paper authors' published results (the results/ folder of
        github.com/nicstrisc/Push-Pull-CNN-layer), computed with ppsearch's own metrics under the
        seed-paper protocol, as markdown on stdout.
"""
import argparse
import math
import re
import sys
from pathlib import Path

import pandas as pd
from script import CONFIGURATION, configuration_rows, emit_table

from ppsearch.cli import run_command
from ppsearch.errors import UserError
from ppsearch.robustness.corruptions import SEVERITIES
from ppsearch.robustness.metrics import (
    CIFAR_IMAGE_SIZE,
    Setup,
    ce_table,
    corruption_errors,
    fr_table,
    get_protocol,
    mce,
    mfr,
    relative_mce,
)
from ppsearch.robustness.names import SEED_PAPER
from ppsearch.rundir import Column

COLUMNS = {Column.CLEAN_ERROR: "E", Column.MCE: "mCE", Column.RELATIVE_MCE: "rCE", Column.MFR: "mFR"}

# The authors' test_corruption.py writes one line per corruption, "name: e1 e2 e3 e4 e5" (errors
# as fractions, severities 1..5, full float precision), and test_perturbation.py one line per
# perturbation, "Perturbation: name | Flip Prob: 0.12345". C_average.txt repeats C_details.txt
# rounded to 0.01%, so C_details.txt is the one read.
CORRUPTION_FILE = "C_details.txt"
PERTURBATION_FILE = "P_flipprob.txt"
FLIP_LINE = re.compile(r"Perturbation:\s*(\S+)\s*\|\s*Flip Prob:\s*(\S+)")

EPILOG = """\
The authors' results/ folder holds one folder per model (results/resnet/resnet-20,
results/resnet/resnet-20-pp, results/densenet/40-12, ...) with C_details.txt (CIFAR-10-C error per
corruption and severity) and P_flipprob.txt (CIFAR-10-P flip probability per perturbation). It has
no clean test error for the ResNets, so E comes from --clean-error (the paper's E); a model without
one gets mCE and mFR, and an empty E and rCE. Table 1's ResNet-20 rows:

  python analysis/table1.py --seed-results Push-Pull-CNN-layer/results \\
      --clean-error resnet-20=7.56 --clean-error resnet-20-pp=8.29
"""


def table1(run_dirs: list[str]) -> pd.DataFrame:
    grouped = configuration_rows(run_dirs).groupby(CONFIGURATION, sort=False)
    result = grouped[list(COLUMNS)].mean().rename(columns=COLUMNS)
    result["E"] *= 100  # the paper gives E in percent
    result.insert(0, "seeds", grouped.size())
    return result.reset_index(names=CONFIGURATION)


def seed_table1(results_dir: str | Path, clean_errors: dict[str, float]) -> pd.DataFrame:
    """Table 1 of the models in the authors' ``results_dir``: one row per model folder (named by
    the folder), E in percent from ``clean_errors`` (folder name -> percent; NaN, like rCE, for a
    model not in it), mCE and rCE from its corruption errors, mFR from its flip probabilities."""
    models = _model_folders(Path(results_dir))
    unknown = sorted(set(clean_errors) - set(models))
    if unknown:
        raise UserError(f"--clean-error names {', '.join(unknown)}, not a model folder in {results_dir}; "
                        f"there are: {', '.join(models)}")
    setup = seed_setup()
    rows = []
    for name, folder in models.items():
        clean = clean_errors.get(name, math.nan) / 100
        try:
            errors = _read_corruption_errors(folder / CORRUPTION_FILE)
            # corruptions without an AlexNet error are in no column of Table 1
            errors = errors[errors["corruption"].isin(list(setup.ce_normaliser.corruption_errors))]
            # ce_table's relative CE is NaN for an unknown E, and so is rCE
            ce = ce_table(errors, clean, setup.ce_normaliser)
            flips = _read_flip_probabilities(folder / PERTURBATION_FILE)
            fr = fr_table({p: fp for p, fp in flips.items() if p in setup.perturbations}, setup.fr_normaliser)
            rows.append((name, 100 * clean, mce(ce), relative_mce(ce), mfr(fr, setup.perturbations)))
        except UserError as error:
            raise UserError(f"{folder}: {error}") from None
    return pd.DataFrame(rows, columns=["configuration", *COLUMNS.values()])


def seed_setup() -> Setup:
    """The seed paper's protocol on CIFAR-10 (32 px): its 10 mFR perturbations and its AlexNet."""
    return get_protocol(SEED_PAPER).setup("cifar10", CIFAR_IMAGE_SIZE)


def _model_folders(root: Path) -> dict[str, Path]:
    """Folder name -> folder of every folder under ``root`` (itself included) holding a result file."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    folders = sorted({f.parent for name in (CORRUPTION_FILE, PERTURBATION_FILE) for f in root.rglob(name)})
    if not folders:
        raise UserError(f"{root} holds no model folder with {CORRUPTION_FILE} or {PERTURBATION_FILE} "
                        f"(give the results/ folder of the authors' repository)")
    models: dict[str, Path] = {}
    for folder in folders:
        if folder.name in models:
            raise UserError(f"two model folders are named {folder.name}: {models[folder.name]} and {folder}")
        for name in (CORRUPTION_FILE, PERTURBATION_FILE):
            if not (folder / name).is_file():
                raise UserError(f"{folder} lacks {name}")
        models[folder.name] = folder
    return models


def _read_corruption_errors(path: Path) -> pd.DataFrame:
    values: dict[tuple[str, int], float] = {}
    for number, line in _lines(path):
        name, _, rest = line.partition(":")
        try:
            errors = [float(v) for v in rest.split()]
        except ValueError:
            errors = []
        if not name.strip() or len(errors) != len(SEVERITIES):
            raise UserError(f"{path.name} line {number}: expected 'corruption: e1 e2 e3 e4 e5' "
                            f"(errors at severities 1..5), got {line!r}")
        if (name.strip(), SEVERITIES[0]) in values:
            raise UserError(f"{path.name} line {number}: {name.strip()} appears twice")
        values.update({(name.strip(), s): e for s, e in zip(SEVERITIES, errors)})
    return corruption_errors(values)


def _read_flip_probabilities(path: Path) -> dict[str, float]:
    flips: dict[str, float] = {}
    for number, line in _lines(path):
        match = FLIP_LINE.fullmatch(line)
        fp = _float(match[2]) if match else None
        if fp is None or not 0 <= fp <= 1:
            raise UserError(f"{path.name} line {number}: expected 'Perturbation: name | Flip Prob: p' "
                            f"with p in [0, 1], got {line!r}")
        if match[1] in flips:
            raise UserError(f"{path.name} line {number}: {match[1]} appears twice")
        flips[match[1]] = fp
    return flips


def _lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) of the non-blank lines."""
    text = path.read_text(errors="replace")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _clean_error(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    percent = _float(value)
    if not name or percent is None or not 0 <= percent < 100:
        raise argparse.ArgumentTypeError(f"expected NAME=PERCENT with PERCENT in [0, 100), got {text!r}")
    return name, percent


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; the scripts keep it to one line
        raise UserError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python analysis/table1.py", description=__doc__.split("\n")[0],
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="ppsearch search or train run")
    parser.add_argument("--seed-results", metavar="RESULTS_DIR",
                        help="instead of runs: the seed paper authors' results/ folder "
                             "(nicstrisc/Push-Pull-CNN-layer), normalised by their CIFAR-10 AlexNet")
    parser.add_argument("--clean-error", type=_clean_error, action="append", default=[], metavar="NAME=PERCENT",
                        help="with --seed-results: clean test error E of model folder NAME, in percent")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.seed_results is None:
        if not args.run_dirs:
            raise UserError("give RUN_DIR [RUN_DIR ...] or --seed-results RESULTS_DIR (see --help)")
        if args.clean_error:
            raise UserError("--clean-error goes with --seed-results")
        emit_table("table1", table1(args.run_dirs), args.run_dirs[0])
        return
    if args.run_dirs:
        raise UserError("give either RUN_DIRs or --seed-results, not both")
    out = seed_table1(args.seed_results, dict(args.clean_error))
    setup = seed_setup()
    ce_source, fr_source = setup.ce_normaliser.source, setup.fr_normaliser.source
    divisors = f"CE and FR by the {ce_source}" if ce_source == fr_source else f"CE by the {ce_source}, FR by the {fr_source}"
    print(f"protocol {setup.protocol}; {divisors}")
    shown = out.astype(object).where(out.notna(), None)  # tabulate leaves None, not NaN, empty
    print(shown.to_markdown(index=False, floatfmt=".2f", missingval=""))  # the paper's rounding
    missing = out.loc[out["E"].isna(), "configuration"]
    if len(missing):
        print(f"no clean error given for {', '.join(missing)}: E and rCE left empty "
              f"(--clean-error NAME=PERCENT)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_command(main, "table1"))
