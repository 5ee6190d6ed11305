"""lstm_jax: recurrent networks as pure JAX functions over parameter pytrees.

``import lstm_jax`` imports jax and numpy only; the Flax layers (``lstm_jax.flax``), training
(``lstm_jax.training``), checkpoints (``lstm_jax.checkpoint``), data and interop modules import
their own dependencies when they are imported.
"""

# Implementations in their own files register themselves with lstm_jax.impl on import.
from lstm_jax import _cudnn, _pallas, _parallel, regularizers  # noqa: F401
from lstm_jax._bidirectional import MERGE_MODES, bidirectional
from lstm_jax._cudnn import Cudnn
from lstm_jax._pallas import Pallas
from lstm_jax._parallel import Parallel
from lstm_jax._stack import Stack, WithInitialCarry, stack
from lstm_jax._unroll import gates, unroll
from lstm_jax.cells.base import Cell, register_cell
from lstm_jax.cells.gru import GRUCell, GRUGates, GRUParams, gru
from lstm_jax.cells.layer_norm import (
    LayerNormGRUCell,
    LayerNormGRUParams,
    LayerNormLSTMCell,
    LayerNormLSTMParams,
    layer_norm_gru,
    layer_norm_lstm,
)
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
from lstm_jax.cells.lstmp import LSTMPCell, LSTMPParams, lstmp
from lstm_jax.cells.mgu import MGUCell, MGUGates, MGUParams, mgu
from lstm_jax.cells.min_rnn import (
    MinGRUCell,
    MinGRUParams,
    MinLSTMCell,
    MinLSTMParams,
    min_gru,
    min_lstm,
)
from lstm_jax.cells.simple import SimpleRNNCell, SimpleRNNGates, SimpleRNNParams, simple_rnn
from lstm_jax.cells.slstm import SLSTMCarry, SLSTMCell, SLSTMParams, slstm
from lstm_jax.impl import Chunked, Scan, Split, register_impl
from lstm_jax.regularizers import (
    RegularizedCell,
    drop_weights,
    locked_dropout,
    regularized,
    regularized_carry,
)

__version__ = "0.3.0"

__all__ = [
    "MERGE_MODES",
    "CIFGLSTMCell",
    "Cell",
    "Chunked",
    "Cudnn",
    "GRUCell",
    "GRUGates",
    "GRUParams",
    "LSTMCarry",
    "LSTMCell",
    "LSTMGates",
    "LSTMPCell",
    "LSTMPParams",
    "LSTMParams",
    "LayerNormGRUCell",
    "LayerNormGRUParams",
    "LayerNormLSTMCell",
    "LayerNormLSTMParams",
    "MGUCell",
    "MGUGates",
    "MGUParams",
    "MinGRUCell",
    "MinGRUParams",
    "MinLSTMCell",
    "MinLSTMParams",
    "Pallas",
    "Parallel",
    "PeepholeLSTMCell",
    "PeepholeLSTMParams",
    "RegularizedCell",
    "SLSTMCarry",
    "SLSTMCell",
    "SLSTMParams",
    "Scan",
    "SimpleRNNCell",
    "SimpleRNNGates",
    "SimpleRNNParams",
    "Split",
    "Stack",
    "WithInitialCarry",
    "bidirectional",
    "cifg_lstm",
    "drop_weights",
    "gates",
    "gru",
    "layer_norm_gru",
    "layer_norm_lstm",
    "locked_dropout",
    "lstm",
    "lstmp",
    "mgu",
    "min_gru",
    "min_lstm",
    "peephole_lstm",
    "register_cell",
    "register_impl",
    "regularized",
    "regularized_carry",
    "regularizers",
    "simple_rnn",
    "slstm",
    "stack",
    "unroll",
]
