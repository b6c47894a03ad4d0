"""The tutorials run: each notebook in docs/tutorials (jupytext Markdown) is converted with jupytext and
executed with nbclient in a temporary folder, on a kernel of this very interpreter. A few minutes on 2 CPU
cores: the tutorial trains a small detector and two head-study rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
CELL_TIMEOUT_S = 1800  # a slow or shared CI machine must not fail a notebook that is only slow


def run_notebook(path: Path, workdir: Path, monkeypatch) -> "jupytext.NotebookNode":
    """Execute the notebook at ``path`` with ``workdir`` as its working folder; raise on a failing cell."""
    # A kernel spec named python3 that runs this interpreter, found before any user-level one.
    kernels = workdir.parent / f"{workdir.name}_jupyter"
    spec = kernels / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ocrloc tests)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))
    notebook = jupytext.read(path)
    NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def text_outputs(notebook) -> str:
    return "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def test_every_tutorial_is_a_jupytext_markdown_notebook():
    paths = sorted(TUTORIALS.glob("[0-9]*.md"))
    assert paths, f"no tutorial notebooks in {TUTORIALS}"
    for path in paths:
        notebook = jupytext.read(path)
        assert notebook.metadata["jupytext"]["text_representation"]["format_name"] in ("markdown", "myst"), path
        assert notebook.metadata["kernelspec"]["name"] == "python3", path
        assert any(cell.cell_type == "code" for cell in notebook.cells), path


@pytest.mark.slow  # minutes: the notebook trains a detector and two head-study rows
def test_first_detector_tutorial_runs(tmp_path, monkeypatch, pools):
    workdir = tmp_path / "work"
    workdir.mkdir()
    notebook = run_notebook(TUTORIALS / "01_first_detector.md", workdir, monkeypatch)

    output = workdir / "tutorial_output"
    assert (output / "preview.png").is_file()
    assert (output / "run" / "metrics.csv").is_file()
    assert (output / "run" / "checkpoints" / "best.pt").is_file()
    assert (output / "test_all10" / "annotations.json").is_file()
    assert isinstance(json.loads((output / "test_results.json").read_text()), list)
    assert (output / "report" / "index.html").is_file()
    assert len(list((output / "head_study" / "all10").glob("*/seed0/checkpoints/best.pt"))) == 2

    printed = text_outputs(notebook)
    assert "keypoint AP" in printed and "median point error" in printed and "whole tutorial:" in printed
    images = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(images) >= 3  # the canvas, the preview, and the report's pictures
