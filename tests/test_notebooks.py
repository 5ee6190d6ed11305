"""Runs every tutorial in notebooks/ top to bottom, as a notebook, in quick mode.

The notebooks are stored as jupytext percent-format ``.py`` files (no outputs, readable diffs);
each is converted to an in-memory notebook and executed by nbclient in a fresh ``python3``
kernel with ``LSTM_JAX_NOTEBOOK_QUICK=1`` (small shapes, few training steps) and the Agg
matplotlib backend. The kernel gets two host devices so that the sharding code of notebook 4
runs on more than one.

Needs the ``notebooks`` extra (jupytext, nbclient, ipykernel); skipped without it.
"""

from __future__ import annotations

import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
TIMEOUT_PER_CELL_S = 300


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 4, f"expected the tutorials in {NOTEBOOK_DIR}, got {NOTEBOOKS}"


def test_every_notebook_is_a_page_of_the_docs_site():
    # docs/hooks/notebooks.py adds notebooks/*.py to the site; the nav must name each one.
    nav = (NOTEBOOK_DIR.parent / "mkdocs.yml").read_text()
    for path in NOTEBOOKS:
        assert f": notebooks/{path.name}\n" in nav, f"{path.name} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    notebook = jupytext.read(path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    assert all(not c.get("outputs") for c in code)
    assert notebook.cells[0].cell_type == "markdown", f"{path.name} must open with a title cell"


# About 12 s of CPU each (kernel start, JAX import, compilation), 20-30 s on a busy 2-core box.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.setenv("LSTM_JAX_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's migration warning
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy's frozen-modules note
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIMEOUT_PER_CELL_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name} failed in quick mode:\n{e}", pytrace=False)
    errors = [
        out
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, errors
