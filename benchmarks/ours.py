"""Our contenders: ``lstm_jax.unroll`` (LSTM, GRU) and ``lstm_jax.bidirectional`` (BiLSTM).

The default contender ("ours") calls them with the library's defaults (``impl="auto"``).
``--variants`` adds one row per other implementation named, the results unchanged, to support
the choice ``"auto"`` makes for the user (``lstm_jax/impl.py``'s ``AUTO``):

* ``scan``:    ``impl="scan"``, one ``lax.scan`` differentiated by JAX;
* ``split``:   ``impl="split"``, the split (cuDNN-style) derivative;
* ``chunked``: ``impl="chunked"``, checkpointed chunks of ``ceil(sqrt(time))`` steps;
* ``hoist``:   ``impl=lstm_jax.Split(hoist=True)``, the input projection of every step in one
  matmul before the loop.

A variant equal to what ``"auto"`` resolves to on this backend is skipped: it is "ours".
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

import lstm_jax
from benchmarks.contender import Contender, jax_contender
from benchmarks.workloads import Workload
from lstm_jax import impl as impl_registry

VARIANT_KINDS = ("scan", "split", "chunked", "hoist")


def variant_impl(kind: str) -> Any:
    """The ``impl`` value of a variant kind."""
    if kind == "hoist":
        return lstm_jax.Split(hoist=True)
    return kind


def resolved_defaults(workload: Workload) -> dict[str, Any]:
    """What the library's defaults resolve to on this backend (the same for every workload)."""
    del workload
    return {"impl": repr(impl_registry.resolve("auto"))}


def variant_options(workload: Workload, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """One options dict (``{"impl": ...}``) per kind in ``kinds``, in ``VARIANT_KINDS``
    order, leaving out the one ``"auto"`` resolves to."""
    unknown = set(kinds) - set(VARIANT_KINDS)
    if unknown:
        raise ValueError(f"variants must be among {VARIANT_KINDS}, got {sorted(unknown)}")
    default = impl_registry.resolve("auto")
    out = []
    for kind in VARIANT_KINDS:
        if kind in kinds and impl_registry.resolve(variant_impl(kind)) != default:
            out.append({"impl": variant_impl(kind)})
    return out


def variant_name(options: dict[str, Any]) -> str:
    if not options:
        return "ours"
    return "ours[" + ",".join(f"{k}={_label(v)}" for k, v in options.items()) + "]"


def _label(value: Any) -> str:
    """``"scan"`` -> ``scan``; ``Split(unroll=1, hoist=True)`` -> ``Split(hoist=True)``: only
    the fields that differ from the implementation's defaults."""
    if isinstance(value, str) or not hasattr(value, "__dataclass_fields__"):
        return str(value)
    default = type(value)()
    fields = [
        f"{f}={getattr(value, f)!r}"
        for f in value.__dataclass_fields__
        if getattr(value, f) != getattr(default, f)
    ]
    return f"{type(value).__name__}({', '.join(fields)})"


def ours_contender(workload: Workload, options: dict[str, Any] | None = None) -> Contender:
    """``lstm_jax.unroll`` / ``bidirectional`` with ``options`` (library defaults if empty),
    compiled for the workload's parameters and input."""
    options = dict(options or {})
    cell = workload.cell
    if workload.model == "bilstm":

        def forward(params, xs):
            return lstm_jax.bidirectional(cell, params, xs, **options)[1]

    else:

        def forward(params, xs):
            return lstm_jax.unroll(cell, params, xs, **options)[1]

    def grads_to_ours(dparams: Any) -> list[np.ndarray]:
        return list(jax.tree_util.tree_leaves(dparams))

    return jax_contender(
        variant_name(options),
        "lstm_jax",
        {k: _label(v) for k, v in options.items()},
        forward,
        workload.params,
        jax.numpy.asarray(workload.xs),
        grads_to_ours,
    )
