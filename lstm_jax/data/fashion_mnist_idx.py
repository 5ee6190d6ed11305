"""TFDS builder ``fashion_mnist_idx``: Fashion-MNIST from local IDX files, offline.

Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``, 30 MB)
installs Zalando's original files under ``/usr/share/datasets/fashion-mnist``::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   60000 images
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    10000 images

This builder reads them (or the same four files in ``$FASHION_MNIST_DIR``) into the layout of
the standard TFDS ``fashion_mnist`` set, so code written for one reads the other::

    image  uint8 [28, 28, 1]   stored raw (no PNG: encoding would need TensorFlow)
    label  ClassLabel(10)      t-shirt/top, trouser, pullover, dress, coat, sandal, shirt,
                               sneaker, bag, ankle boot

Splits ``train`` and ``test`` are the files' own (the standard split).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lstm_jax.data.offline_builder import OfflineBuilder

DIR_ENV = "FASHION_MNIST_DIR"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# IDX magic numbers: 0x00000803 is uint8 with 3 dimensions, 0x00000801 uint8 with 1.
_MAGIC = {3: 2051, 1: 2049}


def files_dir() -> str:
    """``$FASHION_MNIST_DIR`` if set, else Debian's ``/usr/share/datasets/fashion-mnist``."""
    return os.path.expanduser(os.environ.get(DIR_ENV) or DEBIAN_DIR)


def files_present(directory: str | None = None) -> bool:
    """Whether all four IDX files are in ``directory`` (default: ``files_dir()``)."""
    directory = directory or files_dir()
    return all(os.path.exists(os.path.join(directory, f)) for pair in FILES.values() for f in pair)


def read_idx(path: str, ndim: int) -> np.ndarray:
    """A gzipped IDX file of uint8 values with ``ndim`` dimensions as a numpy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int(np.frombuffer(raw, dtype=">u4", count=1)[0]) if len(raw) >= 4 else None
    if magic != _MAGIC[ndim]:
        raise ValueError(
            f"read_idx: {path} must start with the IDX magic number {_MAGIC[ndim]} (uint8, "
            f"{ndim} dimensions), got {magic}"
        )
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + ndim)).reshape(shape)


class FashionMnistIdx(OfflineBuilder):
    """Fashion-MNIST from local IDX files; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Raw uint8 images, standard splits."}
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
    FEATURES: ClassVar = {
        "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
        "label": tfds.features.ClassLabel(names=LABELS),
    }
    SUPERVISED_KEYS = ("image", "label")

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are local
        directory = files_dir()
        if not files_present(directory):
            raise FileNotFoundError(
                f"fashion_mnist_idx: the Fashion-MNIST IDX files {sorted(FILES['train'])} and "
                f"{sorted(FILES['test'])} are not all in {directory}; install them with "
                f"`apt-get install dataset-fashion-mnist` or point ${DIR_ENV} at a directory "
                f"holding them"
            )
        return {split: self._generate_examples(directory, split) for split in FILES}

    def _generate_examples(self, directory: str, split: str) -> Iterator[tuple[int, dict]]:
        image_file, label_file = FILES[split]
        images = read_idx(os.path.join(directory, image_file), 3)
        labels = read_idx(os.path.join(directory, label_file), 1)
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise ValueError(
                f"fashion_mnist_idx: {split} must hold N images of 28x28 and N labels, got "
                f"images {images.shape} and labels {labels.shape}"
            )
        for i in range(images.shape[0]):
            yield i, {"image": images[i][..., None], "label": int(labels[i])}
