"""lstm_jax: recurrent networks as pure JAX functions over parameter pytrees.

``import lstm_jax`` imports jax and numpy only; the Flax layers (``lstm_jax.flax``), training
(``lstm_jax.training``), checkpoints (``lstm_jax.checkpoint``), data and interop modules import
their own dependencies when they are imported.
"""

from lstm_jax._bidirectional import MERGE_MODES, bidirectional
from lstm_jax._stack import Stack, stack
from lstm_jax._unroll import gates, unroll
from lstm_jax.cells.base import Cell, register_cell
from lstm_jax.cells.gru import GRUCell, GRUGates, GRUParams, gru
from lstm_jax.cells.lstm import (
    CIFGLSTMCell,
    LSTMCarry,
    LSTMCell,
    LSTMGates,
    LSTMParams,
    PeepholeLSTMCell,
    PeepholeLSTMParams,
    cifg_lstm,
    lstm,
    peephole_lstm,
)
from lstm_jax.cells.simple import SimpleRNNCell, SimpleRNNGates, SimpleRNNParams, simple_rnn
from lstm_jax.impl import Chunked, Scan, Split, register_impl

__version__ = "0.2.0"

__all__ = [
    "MERGE_MODES",
    "CIFGLSTMCell",
    "Cell",
    "Chunked",
    "GRUCell",
    "GRUGates",
    "GRUParams",
    "LSTMCarry",
    "LSTMCell",
    "LSTMGates",
    "LSTMParams",
    "PeepholeLSTMCell",
    "PeepholeLSTMParams",
    "Scan",
    "SimpleRNNCell",
    "SimpleRNNGates",
    "SimpleRNNParams",
    "Split",
    "Stack",
    "bidirectional",
    "cifg_lstm",
    "gates",
    "gru",
    "lstm",
    "peephole_lstm",
    "register_cell",
    "register_impl",
    "simple_rnn",
    "stack",
    "unroll",
]
