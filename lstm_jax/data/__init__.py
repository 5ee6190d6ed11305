"""Data for lstm_jax: TFDS data sources read through grain, padding, bucketing, tokenisers.

Import it explicitly (``from lstm_jax import data``); the core package never imports TFDS or
grain. Every data set is a TFDS data source (random access, numpy, no TensorFlow)::

    from lstm_jax import data

    src = data.data_source("pydoc_topics", "train")   # prepared offline on first use
    vocab = data.build_vocabulary(data.char_tokens(ex["text"].decode()) for ex in src)
    ds = data.bucketed_batches(src, encode, boundaries=[64, 128, 256], batch_size=32)
    for batch in ds.to_iter_dataset():                # batch["seq_lengths"]: int32 [batch]
        ...

Prepared data lives in ``$LSTM_JAX_DATA_DIR`` or ``~/.cache/lstm_jax/tensorflow_datasets``.
Standard TFDS sets (``mnist``, ``fashion_mnist``, ``imdb_reviews``) are read from there and
downloaded only with ``download=True``.
"""

from lstm_jax.data.bucketing import bucket_batches, bucket_of, length_boundaries
from lstm_jax.data.padding import pad_sequences
from lstm_jax.data.pipeline import INDEX, SEQ_LENGTHS, batches, bucketed_batches
from lstm_jax.data.punctuation import (
    CASE_LABELS,
    PUNCT_LABELS,
    PUNCTUATION,
    normalise_whitespace,
    restore,
    strip_punctuation,
)
from lstm_jax.data.sources import (
    DATA_DIR_ENV,
    LOCAL_DATASETS,
    DataNotFoundError,
    data_source,
    default_data_dir,
    prepare,
)
from lstm_jax.data.tokenisers import char_tokens, word_tokens
from lstm_jax.data.vocabulary import PAD, PAD_ID, UNK, UNK_ID, Vocabulary, build_vocabulary

__all__ = [
    "CASE_LABELS",
    "DATA_DIR_ENV",
    "INDEX",
    "LOCAL_DATASETS",
    "PAD",
    "PAD_ID",
    "PUNCTUATION",
    "PUNCT_LABELS",
    "SEQ_LENGTHS",
    "UNK",
    "UNK_ID",
    "DataNotFoundError",
    "Vocabulary",
    "batches",
    "bucket_batches",
    "bucket_of",
    "bucketed_batches",
    "build_vocabulary",
    "char_tokens",
    "data_source",
    "default_data_dir",
    "length_boundaries",
    "normalise_whitespace",
    "pad_sequences",
    "prepare",
    "restore",
    "strip_punctuation",
    "word_tokens",
]
