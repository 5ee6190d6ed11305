"""Tokenisers, vocabulary and the punctuation task's exact labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstm_jax import data

text_st = st.text(alphabet=st.sampled_from(list("aZb .,;:?!\n\t-é'")), max_size=40)


@given(text_st)
def test_char_tokens_invert(text):
    assert "".join(data.char_tokens(text)) == text


def test_word_tokens_split_words_and_marks():
    assert data.word_tokens("Hi, os.path  x_1!") == ["Hi", ",", "os", ".", "path", "x_1", "!"]
    assert data.word_tokens("Hi", lower=True) == ["hi"]


def test_vocabulary_orders_by_count_then_token():
    vocab = data.build_vocabulary(["abca", "b"], min_count=1)
    assert vocab.tokens == (data.PAD, data.UNK, "a", "b", "c")
    assert data.build_vocabulary(["abca", "b"], min_count=2).tokens[2:] == ("a", "b")
    assert data.build_vocabulary(["abca", "b"], max_size=3).tokens[2:] == ("a",)


@given(st.lists(text_st, max_size=5), text_st)
def test_vocabulary_round_trip_and_unknowns(texts, query):
    vocab = data.build_vocabulary(texts)
    ids = vocab.encode(query)
    assert ids.dtype == np.int32 and ids.shape == (len(query),)
    known = set("".join(texts))
    for ch, i in zip(query, ids.tolist(), strict=True):
        assert (vocab.tokens[i] == ch) if ch in known else (i == data.UNK_ID)
    assert data.PAD_ID not in ids.tolist()


def test_vocabulary_rejects_bad_input():
    with pytest.raises(ValueError, match="min_count"):
        data.build_vocabulary(["a"], min_count=0)
    with pytest.raises(ValueError, match="ids must be in"):
        data.build_vocabulary(["a"]).decode([7])
    with pytest.raises(ValueError, match="tokens must be a tuple"):
        data.Vocabulary(("a", "b"))


@given(text_st)
def test_restore_inverts_strip_punctuation(text):
    stripped, punct, case = data.strip_punctuation(text)
    assert punct.shape == case.shape == (len(stripped),)
    assert data.restore(stripped, punct, case) == text


def test_strip_punctuation_labels_by_hand():
    stripped, punct, case = data.strip_punctuation("Yes, os.path works. E.g., Go!")
    assert stripped == "yes os.path works e.g., go"
    marks = {i: data.PUNCT_LABELS[p] for i, p in enumerate(punct.tolist()) if p}
    assert marks == {2: ",", 16: ".", 25: "!"}
    assert [i for i, c in enumerate(case.tolist()) if c] == [0, 18, 24]


def test_normalise_whitespace():
    assert data.normalise_whitespace("  a\nb \t c ") == "a b c"


def test_restore_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="punct must have shape"):
        data.restore("ab", np.zeros(3, np.int32), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="case labels"):
        data.restore("ab", np.zeros(2, np.int32), np.array([0, 2]))
