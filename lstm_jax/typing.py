"""Shape notation and array type aliases used across lstm_jax.

Axis names, used the same way in every docstring:

    batch    any number (zero included) of leading batch dimensions, written ``*batch``
    time     the sequence axis; ``time_major=True`` puts it first
    input    features of one time step of the input
    hidden   the cell's hidden size (the width of ``h`` and ``c``)
    gates    ``k * hidden`` for a cell with ``k`` gate blocks (LSTM 4, CIFG 3, GRU 3, RNN 1)
    dir      the direction axis (2) of stacked bidirectional weights

``xs: [*batch, time, input]`` reads "xs has any batch dimensions, then time, then input".
"""

from __future__ import annotations

from typing import Any, TypeAlias

import jax
from jaxtyping import Array, Float, Int, PRNGKeyArray

PyTree: TypeAlias = Any
DType: TypeAlias = Any
Initializer: TypeAlias = Any  # jax.nn.initializers signature: (key, shape, dtype) -> Array

Sequence_: TypeAlias = Float[Array, "*batch time input"]
TimeMajorSequence: TypeAlias = Float[Array, "time *batch input"]
Outputs: TypeAlias = Float[Array, "*batch time hidden"]
StepInput: TypeAlias = Float[Array, "*batch input"]
Hidden: TypeAlias = Float[Array, "*batch hidden"]
SeqLengths: TypeAlias = Int[Array, "*batch"]
Key: TypeAlias = PRNGKeyArray | jax.Array

__all__ = [
    "Array",
    "DType",
    "Hidden",
    "Initializer",
    "Key",
    "Outputs",
    "PyTree",
    "SeqLengths",
    "Sequence_",
    "StepInput",
    "TimeMajorSequence",
]
