"""Cell families: one file each."""

from lstm_jax.cells.base import Cell
from lstm_jax.cells.gru import GRU, GRUGates, GRUParams, gru
from lstm_jax.cells.lstm import (
    CIFGLSTM,
    LSTM,
    LSTMCarry,
    LSTMGates,
    LSTMParams,
    PeepholeLSTM,
    PeepholeLSTMParams,
    cifg_lstm,
    lstm,
    peephole_lstm,
)
from lstm_jax.cells.simple import SimpleRNN, SimpleRNNGates, SimpleRNNParams, simple_rnn

__all__ = [
    "CIFGLSTM",
    "GRU",
    "LSTM",
    "Cell",
    "GRUGates",
    "GRUParams",
    "LSTMCarry",
    "LSTMGates",
    "LSTMParams",
    "PeepholeLSTM",
    "PeepholeLSTMParams",
    "SimpleRNN",
    "SimpleRNNGates",
    "SimpleRNNParams",
    "cifg_lstm",
    "gru",
    "lstm",
    "peephole_lstm",
    "simple_rnn",
]
