"""Cell families: one file each. Each registers itself with ``register_cell``."""

from lstm_jax.cells.base import CELL_TYPES, Cell, register_cell
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

__all__ = [
    "CELL_TYPES",
    "CIFGLSTMCell",
    "Cell",
    "GRUCell",
    "GRUGates",
    "GRUParams",
    "LSTMCarry",
    "LSTMCell",
    "LSTMGates",
    "LSTMParams",
    "PeepholeLSTMCell",
    "PeepholeLSTMParams",
    "SimpleRNNCell",
    "SimpleRNNGates",
    "SimpleRNNParams",
    "cifg_lstm",
    "gru",
    "lstm",
    "peephole_lstm",
    "register_cell",
    "simple_rnn",
]
