"""The tutorial notebook runs top to bottom in a real Jupyter kernel, as a reader would run it."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "tutorial.ipynb"


def test_the_tutorial_notebook_runs_top_to_bottom(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and not any(cell.outputs or cell.execution_count for cell in code), "commit the notebook without outputs"
    # a cell that raises fails the test with its traceback (nbclient's CellExecutionError); the runs
    # are written under the working directory, a fresh one
    NotebookClient(notebook, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "runs" / "search" / "tiny" / "results.parquet").is_file()
    shown = [output for cell in code for output in cell.outputs if output.output_type == "execute_result"]
    assert any("ppsearch run" in output.data.get("text/html", "") for output in shown)  # the run's own view
