"""Weight conversion to and from other frameworks.

Importing this package does not import torch: ``lstm_jax.interop.torch`` imports it inside its
functions only. Flax is a core dependency, so its converters are imported directly.
"""

from lstm_jax.interop.flax import carry_from_flax, carry_to_flax, from_flax
from lstm_jax.interop.torch import TorchStyleRNN, from_torch, to_torch, to_torch_module

__all__ = [
    "TorchStyleRNN",
    "carry_from_flax",
    "carry_to_flax",
    "from_flax",
    "from_torch",
    "to_torch",
    "to_torch_module",
]
