"""lstm_jax: recurrent networks as pure JAX functions over parameter pytrees."""

from lstm_jax.bidirectional import MERGE_MODES, bidirectional
from lstm_jax.cells import (
    CIFGLSTM,
    GRU,
    LSTM,
    Cell,
    GRUGates,
    GRUParams,
    LSTMCarry,
    LSTMGates,
    LSTMParams,
    PeepholeLSTM,
    PeepholeLSTMParams,
    SimpleRNN,
    SimpleRNNGates,
    SimpleRNNParams,
    cifg_lstm,
    gru,
    lstm,
    peephole_lstm,
    simple_rnn,
)
from lstm_jax.stack import Stack, stack
from lstm_jax.unroll import unroll

__version__ = "0.1.0"

__all__ = [
    "CIFGLSTM",
    "GRU",
    "LSTM",
    "MERGE_MODES",
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
    "Stack",
    "bidirectional",
    "cifg_lstm",
    "gru",
    "lstm",
    "peephole_lstm",
    "simple_rnn",
    "stack",
    "unroll",
]
