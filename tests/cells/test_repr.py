"""Cell and stack reprs name their initialisers and dtypes instead of printing addresses."""

from __future__ import annotations

import inspect
import re

import jax
import jax.numpy as jnp

import lstm_jax
from lstm_jax.cells.base import CELL_TYPES


def test_default_lstm_repr_names_initialisers_and_dtypes():
    text = repr(lstm_jax.LSTMCell(4))
    assert text.startswith("LSTMCell(hidden_size=4, ")
    assert "kernel_init=initializers.glorot_uniform" in text
    assert "recurrent_init=initializers.orthogonal" in text
    assert "bias_init=initializers.zeros" in text
    assert "param_dtype=float32" in text
    assert "forget_bias=1.0" in text


def _build(cls):
    """``cls(3)``, with 2 for any other required argument (``proj_size``, ...); a wrapper
    cell wraps an LSTM."""
    if cls is lstm_jax.RegularizedCell:
        return lstm_jax.regularized(lstm_jax.LSTMCell(3), zoneout_h=0.1)
    required = [
        name
        for name, p in inspect.signature(cls).parameters.items()
        if name != "hidden_size" and p.default is p.empty and p.kind is not p.VAR_KEYWORD
    ]
    return cls(3, **dict.fromkeys(required, 2))


def test_every_registered_cell_repr_has_no_address():
    for cls in CELL_TYPES.values():
        text = repr(_build(cls))
        assert text.startswith(f"{cls.__name__}(hidden_size=3"), text
        assert not re.search(r"0x[0-9a-f]+|<function|<class", text), text


def test_user_initialiser_is_named_by_its_factory():
    cell = lstm_jax.GRUCell(2, kernel_init=jax.nn.initializers.normal(0.1))
    assert "kernel_init=normal(...)" in repr(cell)


def test_stack_repr_shows_its_cells_readably():
    text = repr(lstm_jax.stack(lstm_jax.LSTMCell(2, param_dtype=jnp.bfloat16), 2))
    assert text.count("LSTMCell(hidden_size=2") == 2
    assert "param_dtype=bfloat16" in text
    assert "0x" not in text
