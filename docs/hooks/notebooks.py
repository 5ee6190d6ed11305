"""mkdocs hook: the tutorials in ``notebooks/`` become pages of the site (``notebooks/<name>/``).

The notebooks are stored once, as jupytext percent scripts outside ``docs/``; this hook adds
them to the site's files (mkdocs-jupyter then executes and renders them) and runs them in quick
mode unless ``LSTM_JAX_NOTEBOOK_QUICK`` is set already (``=0`` renders the full versions).
"""

from __future__ import annotations

import os
import pathlib

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = pathlib.Path(__file__).resolve().parents[2]


def on_config(config):
    # The kernels mkdocs-jupyter starts inherit this process's environment.
    os.environ.setdefault("LSTM_JAX_NOTEBOOK_QUICK", "1")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's migration notice
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy's frozen-modules note
    return config


@event_priority(50)  # before mkdocs-jupyter's on_files, which turns them into pages
def on_files(files: Files, config) -> Files:
    # Read in place, with the repository as their source directory: mkdocs-jupyter wraps the
    # files it renders and needs a real source directory (a File.generated one has none).
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        files.append(
            File(
                f"notebooks/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
