"""What every in-package TFDS builder shares: its ``DatasetInfo`` and the split generators of
data that ship with an installed package, so a builder states only what is its own."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

import tensorflow_datasets as tfds

DATA_DIR_ENV = "LSTM_JAX_DATA_DIR"
FILE_FORMAT = "array_record"


def default_data_dir() -> str:
    """``$LSTM_JAX_DATA_DIR`` if set, else ``~/.cache/lstm_jax/tensorflow_datasets``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return os.path.expanduser(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "lstm_jax", "tensorflow_datasets")


def no_gcs() -> tfds.download.DownloadConfig:
    # TFDS otherwise looks for a pre-built copy on Google Cloud Storage, which hangs offline.
    return tfds.download.DownloadConfig(try_download_gcs=False)


def prepared(cls: type, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The builder ``cls`` prepared into ``data_dir`` (a no-op once done)."""
    builder = cls(data_dir=data_dir or default_data_dir(), file_format=FILE_FORMAT)
    if not builder.is_prepared():
        builder.download_and_prepare(download_config=no_gcs())
    return builder


class OfflineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder whose raw data is already on the machine (no download).

    Subclasses set ``HOMEPAGE`` and ``FEATURES`` (a dict of TFDS features), optionally
    ``SUPERVISED_KEYS`` and ``IN_ORDER`` (keys are a time index: stored and read in order), and
    either ``SPLITS`` (split name -> arguments of ``_generate_examples``) or their own
    ``_split_generators``. The description is the builder module's docstring.
    """

    HOMEPAGE: ClassVar[str]
    FEATURES: ClassVar[Mapping[str, Any]]
    SUPERVISED_KEYS: ClassVar[tuple[str, str] | None] = None
    IN_ORDER: ClassVar[bool] = False
    SPLITS: ClassVar[Mapping[str, tuple]] = {}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=sys.modules[type(self).__module__].__doc__,
            features=tfds.features.FeaturesDict(dict(self.FEATURES)),
            supervised_keys=self.SUPERVISED_KEYS,
            disable_shuffling=self.IN_ORDER,
            homepage=self.HOMEPAGE,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the data ship with an installed package
        return {split: self._generate_examples(*args) for split, args in self.SPLITS.items()}
