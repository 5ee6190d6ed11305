"""What every in-package TFDS builder shares: its ``DatasetInfo`` and the split generators of
data that ship with an installed package, so a builder states only what is its own."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, ClassVar

import tensorflow_datasets as tfds


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
