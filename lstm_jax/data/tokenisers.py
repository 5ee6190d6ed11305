"""Splitting text into tokens: characters, or words and punctuation marks.

Tokenisers are plain functions ``str -> list[str]`` so a vocabulary can be built with any of
them. Both keep enough to be inverted: ``"".join(char_tokens(t)) == t``; ``word_tokens`` drops
whitespace only.
"""

from __future__ import annotations

import re

# A word is a run of letters, digits and underscores; every other non-space character is a
# token of its own, so "x.y," gives ["x", ".", "y", ","].
_WORD = re.compile(r"\w+|[^\w\s]")


def _check_text(fn: str, text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{fn}: text must be a str, got {type(text).__name__}")


def char_tokens(text: str) -> list[str]:
    """One token per Unicode code point: ``"ab c" -> ["a", "b", " ", "c"]``."""
    _check_text("char_tokens", text)
    return list(text)


def word_tokens(text: str, *, lower: bool = False) -> list[str]:
    """Words and single punctuation marks, whitespace dropped.

    ``"Hi, you" -> ["Hi", ",", "you"]``; ``lower=True`` lower-cases first.
    """
    _check_text("word_tokens", text)
    if not isinstance(lower, bool):
        raise TypeError(f"word_tokens: lower must be a bool, got {lower!r}")
    return _WORD.findall(text.lower() if lower else text)
