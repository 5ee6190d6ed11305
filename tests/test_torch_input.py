"""A torch tensor passed where a JAX array belongs fails with a message that says what to do."""

from __future__ import annotations

import jax
import pytest

import lstm_jax

torch = pytest.importorskip("torch")


def test_torch_tensor_as_xs_says_how_to_convert():
    cell = lstm_jax.LSTMCell(3)
    params = cell.init(jax.random.key(0), 2)
    with pytest.raises(TypeError, match=r"unroll: xs must be a JAX or NumPy array, got a torch"):
        lstm_jax.unroll(cell, params, torch.zeros(1, 4, 2))
    with pytest.raises(TypeError, match=r"jnp\.asarray\(xs\.numpy\(\)\)"):
        lstm_jax.unroll(cell, params, torch.zeros(1, 4, 2))
