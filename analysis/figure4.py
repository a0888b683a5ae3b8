"""The seed paper's Figure 4 for a run: how sparse push-pull layers are against plain ones. For
every configuration, the distribution of first-layer weight magnitudes (from each trial's saved
model) and the Hoyer sparsity of the first layer's weights and responses (from its sparsity.csv),
as an offline HTML figure and a CSV beside the run.

    python analysis/figure4.py RUN_DIR [RUN_DIR ...]
"""
import sys
from pathlib import Path

import pandas as pd
import plotly.express as px
from safetensors.torch import load_file

from ppsearch.cli import run_command
from ppsearch.errors import UserError
from ppsearch.rundir import completed_trials


def first_layer(trial_dir: Path) -> tuple[pd.Series, object]:
    """The first convolution's row of the trial's sparsity.csv and its weight magnitudes."""
    sparsity = pd.read_csv(trial_dir / "sparsity.csv").iloc[0]
    weights = load_file(str(trial_dir / "model.safetensors"))[f"{sparsity['layer']}.weight"]
    return sparsity, weights.abs().flatten().numpy()


def figure4(run_dirs: list[str]):
    table = pd.concat([completed_trials(d) for d in run_dirs])
    magnitudes, summary = [], []
    for row in table.itertuples():
        sparsity, weights = first_layer(Path(row.trial_dir))
        magnitudes.append(pd.DataFrame({"configuration": row.origin, "|w|": weights}))
        summary.append({"configuration": row.origin, "layer": sparsity["layer"], "kind": sparsity["kind"],
                        "weight_sparsity": sparsity["weight_sparsity"],
                        "response_sparsity": sparsity["response_sparsity"],
                        "response_zero_fraction": sparsity["response_zero_fraction"]})
    summary = pd.DataFrame(summary).groupby(["configuration", "layer", "kind"], sort=False).mean().reset_index()
    figure = px.histogram(pd.concat(magnitudes), x="|w|", color="configuration", barmode="overlay",
                          histnorm="probability density", nbins=60,
                          title="first-layer weight magnitudes: push-pull vs plain (seed paper, Figure 4)")
    return figure, summary


def run() -> None:
    if len(sys.argv) < 2:
        raise UserError("usage: python analysis/figure4.py RUN_DIR [RUN_DIR ...]")
    figure, summary = figure4(sys.argv[1:])
    out = Path(sys.argv[1])
    figure.write_html(out / "figure4.html", include_plotlyjs=True)
    summary.to_csv(out / "figure4.csv", index=False)
    print(summary.to_markdown(index=False, floatfmt=".3f"))
    print(f"figure written to {out / 'figure4.html'}")


if __name__ == "__main__":
    sys.exit(run_command(run, "figure4"))
