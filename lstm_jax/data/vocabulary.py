"""A vocabulary: tokens <-> integer ids, with padding at id 0 and unknown at id 1.

Padding is id 0 so that zero-padded batches (``pad_sequences``) decode as padding, and an
embedding row 0 is never trained by real tokens.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """``tokens[i]`` is the token of id ``i``; ``tokens[:2] == (PAD, UNK)``."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, tuple) or self.tokens[:2] != (PAD, UNK):
            raise ValueError(
                f"Vocabulary: tokens must be a tuple starting with ({PAD!r}, {UNK!r}), "
                f"got {self.tokens[:2]!r}"
            )
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("Vocabulary: tokens must be distinct")
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """``tokens: [time]`` -> ``int32 [time]``; tokens not in the vocabulary map to UNK_ID."""
        # A str is accepted as the sequence of its characters (what char_tokens returns).
        if isinstance(tokens, bytes):
            raise TypeError("Vocabulary.encode: tokens must be str tokens, got bytes")
        ids = self._ids  # type: ignore[attr-defined]
        return np.fromiter((ids.get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """``int [time]`` -> tokens; raises ValueError for an id outside the vocabulary."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < len(self.tokens):
                raise ValueError(
                    f"Vocabulary.decode: ids must be in [0, {len(self.tokens)}), got {i}"
                )
            out.append(self.tokens[i])
        return out


def build_vocabulary(
    token_sequences: Iterable[Sequence[str]],
    *,
    min_count: int = 1,
    max_size: int | None = None,
) -> Vocabulary:
    """The tokens seen at least ``min_count`` times, most frequent first (ties by token).

    Args:
      token_sequences: e.g. ``map(char_tokens, texts)``.
      min_count: rarer tokens map to UNK.
      max_size: at most this many ids in all, PAD and UNK included.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"build_vocabulary: min_count must be an int >= 1, got {min_count!r}")
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2
    ):
        raise ValueError(
            f"build_vocabulary: max_size must be None or an int >= 2 (PAD and UNK), got "
            f"{max_size!r}"
        )
    counts: collections.Counter[str] = collections.Counter()
    for seq in token_sequences:
        if isinstance(seq, bytes):
            raise TypeError("build_vocabulary: token_sequences must hold str tokens, got bytes")
        counts.update(seq)
    for reserved in (PAD, UNK):
        counts.pop(reserved, None)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    if max_size is not None:
        kept = kept[: max_size - 2]
    return Vocabulary((PAD, UNK, *kept))
