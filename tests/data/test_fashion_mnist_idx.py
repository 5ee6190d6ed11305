"""The Fashion-MNIST IDX builder on tiny IDX files written here."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from lstm_jax import data
from lstm_jax.data import fashion_mnist_idx


def write_idx(path, array: np.ndarray) -> None:
    """The IDX format by its specification: magic (0, 0, 0x08 = uint8, ndim), sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_files(directory, n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    made = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, (n,), dtype=np.uint8)
        image_file, label_file = fashion_mnist_idx.FILES[split]
        write_idx(directory / image_file, images)
        write_idx(directory / label_file, labels)
        made[split] = (images, labels)
    return made


def test_read_idx_round_trips(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(fashion_mnist_idx.read_idx(str(tmp_path / "a.gz"), 3), array)


def test_read_idx_rejects_a_wrong_rank(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((4,), np.uint8))
    with pytest.raises(ValueError, match="magic"):
        fashion_mnist_idx.read_idx(str(tmp_path / "a.gz"), 3)


def test_builder_serves_the_files_in_the_standard_layout(tmp_path, monkeypatch):
    files = tmp_path / "files"
    files.mkdir()
    made = fake_files(files)
    monkeypatch.setenv(fashion_mnist_idx.DIR_ENV, str(files))
    for split, (images, labels) in made.items():
        source = data.data_source("fashion_mnist_idx", split, data_dir=str(tmp_path / "tfds"))
        assert len(source) == len(labels)
        # Shuffled on disk: match each stored image to its original by content.
        originals = {im.tobytes(): int(lab) for im, lab in zip(images, labels, strict=True)}
        for i in range(len(source)):
            example = source[i]
            assert example["image"].shape == (28, 28, 1) and example["image"].dtype == np.uint8
            assert originals[example["image"][..., 0].tobytes()] == int(example["label"])


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(fashion_mnist_idx.DIR_ENV, str(tmp_path))
    assert not fashion_mnist_idx.files_present()
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.data_source("fashion_mnist_idx", "train", data_dir=str(tmp_path / "tfds"))
