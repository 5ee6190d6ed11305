"""TFDS builder ``pydoc_topics``: the paragraphs of Python's help topics, offline.

The standard library ships the text of ``help("if")`` and its ~80 siblings in
``pydoc_data.topics`` (about 465k characters of English technical prose, with code listings and
grammar rules in between). Each example is one paragraph (text between blank lines):

    topic  str   the help topic it comes from ("if", "assignment", ...)
    index  int   its position within the topic
    text   str   the paragraph, line breaks kept
    prose  bool  True for running text: no indented line (code, grammar, tables), not a
                 heading underline, at least one letter

Splits hold whole topics, so test paragraphs come from topics never seen in training: a topic
goes to ``test`` if ``crc32(topic) % 10 == 0``, to ``validation`` if it is 1, else ``train``.
The content depends on the Python version that prepares it; the builder's version is bumped by
hand when the rule above changes.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lstm_jax.data.offline_builder import OfflineBuilder

SPLIT_BUCKETS = {"test": (0,), "validation": (1,), "train": tuple(range(2, 10))}
_UNDERLINE = re.compile(r"^\s*([*=\-~^#+])\1{2,}\s*$")


def topic_split(topic: str) -> str:
    """The split a topic belongs to (stable across runs and machines)."""
    bucket = zlib.crc32(topic.encode("utf-8")) % 10
    return next(s for s, b in SPLIT_BUCKETS.items() if bucket in b)


def is_prose(paragraph: str) -> bool:
    """Running text: no line indented, no heading underline, at least one letter."""
    lines = paragraph.split("\n")
    if any(line[:1].isspace() for line in lines):
        return False
    if any(_UNDERLINE.match(line) for line in lines):
        return False
    return any(ch.isalpha() for ch in paragraph)


def paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines, trailing spaces removed, empty blocks dropped."""
    blocks = re.split(r"\n[ \t]*\n", text)
    return [b.strip("\n").rstrip() for b in blocks if b.strip()]


class PydocTopics(OfflineBuilder):
    """Paragraphs of ``pydoc_data.topics``; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Paragraphs, prose flag, topic-level splits."
    }
    HOMEPAGE = "https://docs.python.org/3/library/pydoc.html"
    FEATURES: ClassVar = {
        "topic": tfds.features.Text(),
        "index": tfds.features.Scalar(dtype=np.int32),
        "text": tfds.features.Text(),
        "prose": tfds.features.Scalar(dtype=np.bool_),
    }
    SPLITS: ClassVar = {split: (split,) for split in SPLIT_BUCKETS}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        from pydoc_data.topics import topics

        for topic in sorted(topics):
            if topic_split(topic) != split:
                continue
            for index, text in enumerate(paragraphs(topics[topic])):
                key = f"{topic}/{index}"
                yield key, {"topic": topic, "index": index, "text": text, "prose": is_prose(text)}
