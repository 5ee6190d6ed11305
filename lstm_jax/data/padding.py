"""Padding variable-length sequences into one array, with the lengths the core needs.

``pad_sequences([a, b])`` stacks ``a: [len_a, *feature]`` and ``b: [len_b, *feature]`` into
``[2, width, *feature]`` filled with ``pad_value`` past each length, and returns the lengths as
``seq_lengths: int32 [2]``, ready for ``lstm_jax.unroll(..., seq_lengths=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def pad_sequences(
    sequences: Sequence[Any],
    *,
    width: int | None = None,
    pad_value: Any = 0,
    dtype: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pads ``sequences`` to a common width.

    Args:
      sequences: ``batch`` arrays (or lists) of shape ``[len_k, *feature]``, same ``feature``.
      width: the padded time length (default: the longest sequence); must be >= every length.
      pad_value: the value written past each length.
      dtype: the output dtype (default: that of the first sequence).

    Returns:
      ``(padded [batch, width, *feature], seq_lengths int32 [batch])``.
    """
    if isinstance(sequences, str | bytes) or not isinstance(sequences, Sequence):
        raise TypeError(
            f"pad_sequences: sequences must be a sequence of arrays, got {type(sequences).__name__}"
        )
    if len(sequences) == 0:
        raise ValueError("pad_sequences: sequences must hold at least one sequence, got none")
    arrays = [np.asarray(s) for s in sequences]
    feature = arrays[0].shape[1:]
    for k, a in enumerate(arrays):
        if a.ndim < 1 or a.shape[1:] != feature:
            raise ValueError(
                f"pad_sequences: sequences[{k}] must have shape [len, *{list(feature)}], got "
                f"{list(a.shape)}"
            )
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int32)
    longest = int(lengths.max())
    if width is None:
        width = longest
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < longest:
        raise ValueError(
            f"pad_sequences: width must be an int >= the longest length {longest}, got {width!r}"
        )
    dtype = arrays[0].dtype if dtype is None else np.dtype(dtype)
    padded = np.full((len(arrays), int(width), *feature), pad_value, dtype=dtype)
    for k, a in enumerate(arrays):
        padded[k, : a.shape[0]] = a
    return padded, lengths
