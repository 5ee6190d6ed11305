"""The punctuation-and-case restoration task: labels recovered exactly from the text itself.

``strip_punctuation(text)`` returns the text as a model sees it (ASCII capitals lowered, and
word-final punctuation removed) with two labels per remaining character:

    punct  what followed the character: 0 nothing, else 1 + PUNCTUATION.index(mark)
    case   1 if the character was an ASCII capital (A-Z), else 0

A mark of ``PUNCTUATION`` is removed only where it ends a word: preceded by a character that is
neither whitespace nor a mark, and followed by whitespace or the end of the text. So "os.path",
"3.14", "e.g.," and "..." stay as they are (they are part of the token, not punctuation of the
sentence), every removed mark is attached to the kept character just before it, and
``restore(*strip_punctuation(text)) == text`` for every string.

Predicting ``punct`` needs the future (whether the next word starts a sentence), ``case`` the
past (whether the previous word ended one): the task separates bidirectional from forward
models.
"""

from __future__ import annotations

import numpy as np

PUNCTUATION = (",", ".", ":", ";", "?", "!")
PUNCT_LABELS = ("none", *PUNCTUATION)
CASE_LABELS = ("lower", "capital")


def _is_removable(text: str, i: int) -> bool:
    if text[i] not in PUNCTUATION or i == 0:
        return False
    before = text[i - 1]
    if before.isspace() or before in PUNCTUATION:
        return False
    return i + 1 == len(text) or text[i + 1].isspace()


def strip_punctuation(text: str) -> tuple[str, np.ndarray, np.ndarray]:
    """``text -> (stripped, punct int32 [len(stripped)], case int32 [len(stripped)])``."""
    if not isinstance(text, str):
        raise TypeError(f"strip_punctuation: text must be a str, got {type(text).__name__}")
    chars: list[str] = []
    punct: list[int] = []
    case: list[int] = []
    for i, ch in enumerate(text):
        if _is_removable(text, i):
            punct[-1] = 1 + PUNCTUATION.index(ch)
            continue
        capital = "A" <= ch <= "Z"
        chars.append(ch.lower() if capital else ch)
        punct.append(0)
        case.append(int(capital))
    return "".join(chars), np.array(punct, np.int32), np.array(case, np.int32)


def restore(stripped: str, punct: np.ndarray, case: np.ndarray) -> str:
    """The inverse of ``strip_punctuation`` (also renders a model's predicted labels)."""
    if not isinstance(stripped, str):
        raise TypeError(f"restore: stripped must be a str, got {type(stripped).__name__}")
    punct = np.asarray(punct)
    case = np.asarray(case)
    for name, labels, n in (("punct", punct, len(PUNCT_LABELS)), ("case", case, 2)):
        if labels.shape != (len(stripped),):
            raise ValueError(
                f"restore: {name} must have shape [{len(stripped)}] (one label per character), "
                f"got {list(labels.shape)}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise ValueError(f"restore: {name} labels must be in [0, {n}), got {labels.tolist()}")
    out = []
    for ch, p, c in zip(stripped, punct.tolist(), case.tolist(), strict=True):
        out.append(ch.upper() if c and "a" <= ch <= "z" else ch)
        if p:
            out.append(PUNCTUATION[p - 1])
    return "".join(out)


def normalise_whitespace(text: str) -> str:
    """Runs of whitespace (line breaks included) become one space; ends are trimmed."""
    if not isinstance(text, str):
        raise TypeError(f"normalise_whitespace: text must be a str, got {type(text).__name__}")
    return " ".join(text.split())
