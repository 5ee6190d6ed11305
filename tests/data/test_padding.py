"""pad_sequences against a plain-loop reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstm_jax import data


@given(st.lists(st.integers(0, 12), min_size=1, max_size=6), st.integers(0, 5))
def test_padding_is_zero_past_length_and_lengths_match(lengths, extra):
    rng = np.random.default_rng(len(lengths))
    seqs = [rng.integers(1, 9, size=(n, 3)).astype(np.int32) for n in lengths]
    width = max(lengths) + extra
    padded, seq_lengths = data.pad_sequences(seqs, width=width)
    assert padded.shape == (len(seqs), width, 3) and padded.dtype == np.int32
    assert seq_lengths.dtype == np.int32 and seq_lengths.tolist() == lengths
    for k, s in enumerate(seqs):
        for t in range(width):
            expected = s[t] if t < len(s) else np.zeros(3, np.int32)
            np.testing.assert_array_equal(padded[k, t], expected)


def test_pad_value_and_dtype():
    padded, _ = data.pad_sequences([[1, 2], [3]], pad_value=-1, dtype=np.int64)
    np.testing.assert_array_equal(padded, np.array([[1, 2], [3, -1]]))
    assert padded.dtype == np.int64


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (([],), {}, ValueError, "at least one"),
        (("abc",), {}, TypeError, "sequences"),
        (([[1, 2, 3]],), {"width": 2}, ValueError, "width"),
        (([np.zeros((2, 3)), np.zeros((2, 4))],), {}, ValueError, r"sequences\[1\]"),
    ],
)
def test_pad_sequences_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        data.pad_sequences(*args, **kwargs)
