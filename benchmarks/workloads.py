"""What is measured: the models, the sizes, the inputs and our parameters, and flop counts.

Every contender runs on the same ``xs: [batch, time, input]`` (batch first) and on the same
weights: ours are drawn with ``cell.init`` and the peers get copies of them (see ``peers.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

MODELS = ("lstm", "gru", "bilstm")
MODES = ("forward", "train")  # train: gradient of sum(outputs) wrt the params and the inputs

# Gate blocks per cell and directions per model: flops scale with both.
_GATES = {"lstm": 4, "gru": 3, "bilstm": 4}
_DIRECTIONS = {"lstm": 1, "gru": 1, "bilstm": 2}
# The backward pass of a matmul is two matmuls of the same size (input and weight gradients).
TRAIN_FLOPS_FACTOR = 3


@dataclasses.dataclass(frozen=True)
class Size:
    """A problem size: ``batch`` rows of ``time`` steps of ``input`` features; ``hidden`` units."""

    batch: int
    time: int
    input: int
    hidden: int

    @property
    def label(self) -> str:
        return f"B{self.batch} T{self.time} I{self.input} H{self.hidden}"

    @classmethod
    def parse(cls, text: str) -> Size:
        """``"32,128,128,256"`` or ``"B32 T128 I128 H256"`` -> ``Size(32, 128, 128, 256)``."""
        parts = text.replace(",", " ").split()
        try:
            values = [int(p.lstrip("BTIHbtih")) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or min(values) < 1:
            raise ValueError(
                f"size must be four positive ints 'batch,time,input,hidden', got {text!r}"
            )
        return cls(*values)


# The three sizes: a mid-size batch, a large one, and batch 1 with long sequences.
FULL_SIZES = (Size(32, 128, 128, 256), Size(128, 64, 256, 512), Size(1, 512, 64, 128))
# The same three shapes (mid batch, large batch, batch 1 long) shrunk for --quick.
QUICK_SIZES = (Size(8, 32, 32, 64), Size(32, 16, 64, 128), Size(1, 64, 16, 32))


def flops(model: str, size: Size, mode: str) -> float:
    """Matmul flops of one call: ``2 * batch * (input + hidden) * gates * hidden`` per step and
    direction, ``TRAIN_FLOPS_FACTOR`` times that for forward+backward. Gate arithmetic is left
    out: it is small next to the matmuls and no contender can avoid it."""
    per_step = 2 * size.batch * (size.input + size.hidden) * _GATES[model] * size.hidden
    total = per_step * size.time * _DIRECTIONS[model]
    return float(total * (TRAIN_FLOPS_FACTOR if mode == "train" else 1))


@dataclasses.dataclass(frozen=True)
class Workload:
    """One model at one size: our cell, our parameters and the input.

    ``params`` is the cell's params, or ``(forward, backward)`` for ``bilstm``; ``xs`` is a
    float32 NumPy array ``[batch, time, input]``.
    """

    model: str
    size: Size
    cell: Any
    params: Any
    xs: np.ndarray


def make_workload(model: str, size: Size, seed: int = 0) -> Workload:
    """Draws our parameters (``cell.init``) and a standard-normal input for ``model``."""
    import jax

    import lstm_jax

    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    cell = lstm_jax.GRUCell(size.hidden) if model == "gru" else lstm_jax.LSTMCell(size.hidden)
    key_f, key_b = jax.random.split(jax.random.key(seed))
    params = cell.init(key_f, size.input)
    if model == "bilstm":
        params = (params, cell.init(key_b, size.input))
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((size.batch, size.time, size.input), dtype=np.float32)
    return Workload(model, size, cell, params, xs)
