"""Data sources: the in-package builders against their raw data, standard TFDS names offline."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lstm_jax import data
from lstm_jax.data import pydoc_topics


def test_core_package_imports_neither_tfds_nor_grain():
    code = (
        "import sys, lstm_jax; "
        "bad = [m for m in ('tensorflow_datasets', 'grain', 'tensorflow') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.default_data_dir() == str(tmp_path)
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.default_data_dir().endswith("lstm_jax/tensorflow_datasets")


def test_digits_match_sklearn(data_dir):
    from sklearn.datasets import load_digits

    digits = load_digits()
    for split, offset in (("train", 0), ("test", 898)):
        source = data.data_source("sklearn_digits", split, data_dir=data_dir)
        got = sorted((int(source[i]["index"]), i) for i in range(len(source)))
        assert [k for k, _ in got] == list(range(offset, offset + len(source)))
        for index, i in got[:: max(1, len(got) // 50)]:
            np.testing.assert_array_equal(source[i]["image"], digits.images[index])
            assert source[i]["label"] == digits.target[index]
    assert len(data.data_source("sklearn_digits", "train+test", data_dir=data_dir)) == 1797


def test_pydoc_topics_splits_partition_the_topics(data_dir):
    from pydoc_data.topics import topics

    seen: dict[str, set[str]] = {}
    total = 0
    for split in ("train", "validation", "test"):
        source = data.data_source("pydoc_topics", split, data_dir=data_dir)
        total += len(source)
        seen[split] = {source[i]["topic"].decode() for i in range(len(source))}
        assert all(pydoc_topics.topic_split(t) == split for t in seen[split])
    assert set.union(*seen.values()) == set(topics)
    assert total == sum(len(pydoc_topics.paragraphs(t)) for t in topics.values())


def test_pydoc_topics_paragraphs_rebuild_the_topic(data_dir):
    from pydoc_data.topics import topics

    source = data.data_source("pydoc_topics", "train", data_dir=data_dir)
    topic = source[0]["topic"].decode()
    rows = sorted(
        (int(source[i]["index"]), source[i]["text"].decode())
        for i in range(len(source))
        if source[i]["topic"].decode() == topic
    )
    # Independent reference: the topic's words in order, blank lines aside.
    assert " ".join(text for _, text in rows).split() == topics[topic].split()


def test_is_prose_flags_code_and_headings():
    assert pydoc_topics.is_prose("It selects exactly one of the suites.\nThen it runs.")
    assert not pydoc_topics.is_prose('The "if" statement\n******************')
    assert not pydoc_topics.is_prose("   if_stmt ::= 'if' expression")
    assert not pydoc_topics.is_prose("1 2 3")


def test_a_fresh_process_reads_prepared_data(data_dir):
    data.prepare("sklearn_digits", data_dir=data_dir)
    code = (
        "from lstm_jax import data; "
        f"s = data.data_source('sklearn_digits', 'test', data_dir={data_dir!r}); "
        "assert len(s) == 899, len(s)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mnist_through_the_data_source_path_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        source = data.data_source("mnist", "train", data_dir=str(tmp_path))
        assert len(source) == 6
        example = source[0]
    assert example["image"].shape == (28, 28, 1)
    assert example["image"].dtype == np.uint8
    assert 0 <= int(example["label"]) < 10


def test_mnist_mock_data_through_a_grain_pipeline(tmp_path):
    with tfds.testing.mock_data(num_examples=10):
        source = data.data_source("mnist", "test", data_dir=str(tmp_path))
        ds = data.batches(source, 4, seed=1, transform=lambda ex: ex["image"][..., 0])
        shapes = [b.shape for b in ds]
    assert shapes == [(4, 28, 28), (4, 28, 28), (2, 28, 28)]


def test_missing_standard_data_set_says_how_to_get_it(tmp_path):
    start = time.perf_counter()
    with pytest.raises(data.DataNotFoundError, match="download=True"):
        data.data_source("fashion_mnist", "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10, "must fail fast, never try the network"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, TypeError, "name"),
        ({"name": "mnist", "split": 3}, TypeError, "split"),
        ({"name": "mnist", "download": "yes"}, TypeError, "download"),
    ],
)
def test_data_source_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.data_source(**kwargs)


def test_prepare_rejects_standard_names():
    with pytest.raises(ValueError, match="in-package"):
        data.prepare("mnist")
