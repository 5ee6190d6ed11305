"""Our contenders: ``lstm_jax.unroll`` (LSTM, GRU) and ``lstm_jax.bidirectional`` (BiLSTM).

The default contender ("ours") calls them with the library's defaults. ``--variants`` adds one
row per non-default value of one option at a time, the others left at their defaults, to
support the choices the library makes for the user:

* ``hoist``:  ``hoist_projection`` True/False (the input projection outside or inside the loop);
* ``unroll``: ``unroll`` in 1, 2, 4, 8 (``jax.lax.scan``'s unrolling);
* ``fused``:  ``fused`` True/False for BiLSTM (one scan over stacked weights, or two scans);
* ``vjp``:    ``custom_vjp`` True/False (the cuDNN-style backward, or autodiff of the scan);
* ``lanes``:  ``lanes`` in 1, 2, 4 (batch rows split into independent chains per step).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

import lstm_jax
from benchmarks.contender import Contender, jax_contender
from benchmarks.workloads import Workload
from lstm_jax.bidirectional import FUSED_MAX_BATCH
from lstm_jax.unroll import default_hoist_projection

VARIANT_KINDS = ("hoist", "unroll", "fused", "vjp", "lanes")
UNROLLS = (1, 2, 4, 8)
LANES = (1, 2, 4)


def resolved_defaults(workload: Workload) -> dict[str, Any]:
    """The options the library's defaults resolve to for this workload on this backend."""
    out: dict[str, Any] = {
        "hoist_projection": default_hoist_projection(),
        "unroll": 1,
        "custom_vjp": True,
        "lanes": 1,
    }
    if workload.model == "bilstm":
        out["fused"] = workload.size.batch <= FUSED_MAX_BATCH
    return out


def variant_options(workload: Workload, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """One options dict per non-default value of each option named in ``kinds``."""
    unknown = set(kinds) - set(VARIANT_KINDS)
    if unknown:
        raise ValueError(f"variants must be among {VARIANT_KINDS}, got {sorted(unknown)}")
    defaults = resolved_defaults(workload)
    choices = {
        "hoist": ("hoist_projection", (True, False)),
        "unroll": ("unroll", UNROLLS),
        "fused": ("fused", (True, False)),
        "vjp": ("custom_vjp", (True, False)),
        "lanes": ("lanes", LANES),
    }
    out = []
    for kind in VARIANT_KINDS:
        name, values = choices[kind]
        if kind not in kinds or name not in defaults:
            continue
        out.extend({name: v} for v in values if v != defaults[name])
    return out


def variant_name(options: dict[str, Any]) -> str:
    if not options:
        return "ours"
    return "ours[" + ",".join(f"{k}={v}" for k, v in options.items()) + "]"


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
        options,
        forward,
        workload.params,
        jax.numpy.asarray(workload.xs),
        grads_to_ours,
    )
