"""Weight conversion to and from other frameworks.

Importing this package does not import torch: ``lstm_jax.interop.torch`` imports it inside its
functions only.
"""

from lstm_jax.interop.torch import TorchStyleRNN, from_torch, to_torch, to_torch_module

__all__ = ["TorchStyleRNN", "from_torch", "to_torch", "to_torch_module"]
