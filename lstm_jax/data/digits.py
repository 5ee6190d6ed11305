"""TFDS builder ``sklearn_digits``: scikit-learn's 8x8 handwritten digits, offline.

``sklearn.datasets.load_digits`` ships 1797 images (the test part of the UCI "Optical
Recognition of Handwritten Digits" set), each 8x8 with integer intensities 0..16. Examples:

    image  uint8 [8, 8]   intensities 0..16 (not 0..255)
    label  ClassLabel(10)
    index  int            position in ``load_digits()``

Splits follow scikit-learn's "Recognizing hand-written digits" example, so its published
numbers compare: the first half (898 images) is ``train``, the second half (899) ``test``
(``train_test_split(..., test_size=0.5, shuffle=False)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lstm_jax.data.offline_builder import OfflineBuilder

NUM_IMAGES = 1797
NUM_TRAIN = 898


class SklearnDigits(OfflineBuilder):
    """scikit-learn's ``load_digits``; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First half train, second half test."}
    HOMEPAGE = "https://archive.ics.uci.edu/dataset/80"
    FEATURES: ClassVar = {
        "image": tfds.features.Tensor(shape=(8, 8), dtype=np.uint8),
        "label": tfds.features.ClassLabel(num_classes=10),
        "index": tfds.features.Scalar(dtype=np.int32),
    }
    SUPERVISED_KEYS = ("image", "label")
    SPLITS: ClassVar = {"train": (0, NUM_TRAIN), "test": (NUM_TRAIN, NUM_IMAGES)}

    def _generate_examples(self, start: int, stop: int) -> Iterator[tuple[int, dict]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        for i in range(start, stop):
            image = digits.images[i].astype(np.uint8)
            yield i, {"image": image, "label": int(digits.target[i]), "index": i}
