"""How a recurrence runs: the ``impl`` setting of ``unroll``, ``bidirectional`` and ``stack``.

What a call computes never depends on ``impl``; only its speed and memory do. Each
implementation is a frozen dataclass with one method, ``run(cell, params, xs, carry, mask, *,
reverse) -> (final_carry, ys)``, over validated time-major inputs (``lstm_jax._scan``), and is
registered by name. ``resets`` (None, or ``[time, *batch]`` booleans in scan order, made by
``lstm_jax._scan.step_resets``) marks the steps before which the carry goes back to
``reset_carry`` (``carry`` when None): packed sequences, one after another in a row. An
implementation that cannot reset raises ``NotImplementedError`` when ``resets`` is given;
``Chunked`` passes ``reset_carry`` to its inner implementation. The registered ones:

* ``"scan"`` (``Scan``): one ``lax.scan``, differentiated by JAX as it is.
* ``"split"`` (``Split``): the same forward pass with the cuDNN-style derivative of
  ``lstm_jax._split``: the backward loop holds only the recurrent matmul and the step's
  elementwise part; the weight gradients are large matmuls after it. Forward mode works too.
* ``"chunked"`` (``Chunked(every=k)``): for very long sequences: chunks of ``k`` steps under
  ``jax.checkpoint``, so training memory grows as ``time / k + k`` instead of ``time``
  (``k = ceil(sqrt(time))`` by default), for one extra forward pass.
* ``"parallel"`` (``Parallel``): for cells whose step is a linear recurrence in ``h`` (minGRU,
  minLSTM: ``linear_recurrence``), an associative scan over time in log space
  (``lstm_jax._parallel``); other cells get a TypeError naming them.
* ``"pallas"`` (``Pallas``): one Pallas kernel launch per layer runs the whole time loop
  (``lstm_jax._pallas``; LSTM, peephole, CIFG, reset-after GRU, Elman): Triton on GPU, Mosaic
  on TPU, interpret mode on CPU; LSTMCell has a backward kernel too, other cells the split
  backward in plain JAX.
* ``"cudnn"`` (``Cudnn``): the plain float32 ``LSTMCell`` through cuDNN
  (``jax.experimental.rnn``, ``lstm_jax._cudnn``), GPU only: elsewhere a RuntimeError.

``"auto"`` (the default) is resolved by ``resolve``, in this one place, from ``AUTO``: per
backend, from measurements committed in ``benchmarks/results/``. A backend without a
measurement gets ``"scan"``, the reference, never an implementation that was not measured there.

A kernel is one more file: a frozen dataclass with ``run`` decorated with ``@register_impl``,
imported by ``lstm_jax/__init__.py`` so that it registers (it imports this module, so this
module cannot import it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import jax

from lstm_jax import _checks
from lstm_jax._chunked import chunked_scan
from lstm_jax._scan import scan
from lstm_jax._split import split_scan
from lstm_jax.cells.base import Cell
from lstm_jax.typing import Array, PyTree


class Impl(Protocol):
    """What an implementation provides (see the module docstring)."""

    name: str

    def run(self, cell: Cell, params: PyTree, xs: Array, carry: PyTree, mask: Array | None, *,
            reverse: bool, resets: Array | None = None,
            reset_carry: PyTree | None = None) -> tuple[PyTree, Array]: ...  # fmt: skip


IMPLS: dict[str, Impl] = {}

# The implementation "auto" picks per backend, with the measurement it rests on.
# cpu: benchmarks/results/2026-12-01-cpu-impl-same-process.md: split vs scan, jitted training
# step in one process: LSTM B1 T512 1.87x, B32 T128 1.24x, B128 T64 1.10x, GRU B1 1.11x, B32
# 1.07x faster; forward passes equal. No other backend has been measured: they get "scan".
AUTO: dict[str, str] = {"cpu": "split"}


def register_impl(cls: type) -> type:
    """Makes ``cls`` a frozen dataclass, a static pytree, and registers its default instance
    under ``cls.name`` so that ``impl="<name>"`` finds it."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    jax.tree_util.register_static(cls)
    IMPLS[cls.name] = cls()
    return cls


def check_impl(fn: str, impl: Any, name: str = "impl") -> None:
    """``impl`` must be ``"auto"``, a registered name or an implementation instance."""
    if isinstance(impl, str):
        if impl != "auto" and impl not in IMPLS:
            raise ValueError(
                f"{fn}: {name} must be 'auto', one of {sorted(IMPLS)} or an implementation "
                f"(lstm_jax.Split(), ...), got {impl!r}"
            )
        return
    if not isinstance(impl, tuple(type(v) for v in IMPLS.values())):
        raise TypeError(
            f"{fn}: {name} must be 'auto', one of {sorted(IMPLS)} or an implementation "
            f"(lstm_jax.Split(), ...), got {type(impl).__name__}"
        )


def resolve(impl: str | Impl, backend: str | None = None) -> Impl:
    """The implementation that ``impl`` names; ``"auto"`` looks up ``AUTO`` for ``backend``
    (the default backend when None) and falls back to ``"scan"``."""
    check_impl("resolve", impl)
    if not isinstance(impl, str):
        return impl
    if impl == "auto":
        impl = AUTO.get(backend or jax.default_backend(), "scan")
    return IMPLS[impl]


@dataclasses.dataclass(frozen=True)
class _Loop:
    """Options of a step-by-step loop: ``unroll`` is passed to ``lax.scan``; ``hoist``
    projects every step's input in one matmul before the loop (slower on XLA:CPU, measured
    1.6-2.6x, so off by default)."""

    unroll: int = 1
    hoist: bool = False

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int) or self.unroll < 1:
            raise ValueError(f"{owner}: unroll must be a positive int, got {self.unroll!r}")
        _checks.check_bool(owner, "hoist", self.hoist)


@register_impl
class Scan(_Loop):
    """One ``lax.scan``, differentiated by JAX as it is."""

    name = "scan"

    def run(self, cell, params, xs, carry, mask, *, reverse, resets=None, reset_carry=None):
        options = dict(reverse=reverse, unroll=self.unroll, hoist=self.hoist)
        options |= dict(resets=resets, reset_carry=reset_carry)
        return scan(cell, params, xs, carry, mask, **options)[:2]


@register_impl
class Split(_Loop):
    """The scan with the split (cuDNN-style) derivative of ``lstm_jax._split``."""

    name = "split"

    def run(self, cell, params, xs, carry, mask, *, reverse, resets=None, reset_carry=None):
        options = dict(reverse=reverse, unroll=self.unroll, hoist=self.hoist)
        options |= dict(resets=resets, reset_carry=reset_carry)
        return split_scan(cell, params, xs, carry, mask, **options)


@register_impl
class Chunked:
    """Checkpointed chunks of ``every`` steps (None: ``ceil(sqrt(time))``), each run by
    ``inner`` (an implementation's name or instance)."""

    every: int | None = None
    inner: Any = "split"
    name = "chunked"

    def __post_init__(self) -> None:
        if self.every is not None and (
            isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1
        ):
            raise ValueError(f"Chunked: every must be None or a positive int, got {self.every!r}")
        if self.inner in ("chunked", "auto") or isinstance(self.inner, type(self)):
            raise ValueError(f"Chunked: inner must be 'scan' or 'split', got {self.inner!r}")
        check_impl("Chunked", self.inner, "inner")

    def run(self, cell, params, xs, carry, mask, *, reverse, resets=None, reset_carry=None):
        every = self.every or max(1, math.ceil(math.sqrt(xs.shape[0])))
        inner = IMPLS[self.inner] if isinstance(self.inner, str) else self.inner
        options = dict(every=every, reverse=reverse, resets=resets, reset_carry=reset_carry)
        return chunked_scan(inner, cell, params, xs, carry, mask, **options)
