"""Cell families, one file each; every cell class registers itself with ``register_cell``.

The public names are re-exported by ``lstm_jax``; this package holds the protocol
(``lstm_jax.cells.base``) and the registry ``CELL_TYPES`` (name -> class).
"""

from lstm_jax.cells import (  # noqa: F401  (importing registers the cells)
    gru,
    layer_norm,
    lstm,
    lstmp,
    mgu,
    min_rnn,
    simple,
    slstm,
)
from lstm_jax.cells.base import CELL_TYPES, Cell, register_cell

__all__ = ["CELL_TYPES", "Cell", "register_cell"]
