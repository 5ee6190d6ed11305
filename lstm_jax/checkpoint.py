"""Save and restore a model, its parameters and its configuration, with Orbax.

A model here is what the pure API runs: a cell (``lstm_jax.lstm(64)``), a ``(forward,
backward)`` pair of cells (``lstm_jax.bidirectional``) or a stack (``lstm_jax.stack(...)``); a
module of ``lstm_jax.flax`` stands for its ``.core``. ``save`` writes one Orbax checkpoint
directory with two items::

    params/   the parameter pytree (``StandardSave``)
    config/   JSON: the model's configuration, the input size, the caller's metadata and the
              CRC-32 of every parameter array

``restore`` reads the configuration first, rebuilds the model, and restores the parameters into
the shapes and dtypes of ``model.init``, so no template is needed: ``model, params, metadata =
restore(path)`` and then ``lstm_jax.unroll(model, params, xs)`` (or ``model.apply``, or a Flax
module built from ``model``).

The parameters are checked against their CRC-32s on restore: a checkpoint with flipped bytes is
an error, not parameters that are silently off. Metadata that JSON cannot hold is rejected
before anything is written.

Initialisers (``kernel_init`` and friends) are not saved: they matter only to ``init``, and a
restored cell has the defaults. Everything else about a cell (sizes, dtypes, ``forget_bias``,
``reset_after``, ``activation``, ``use_bias``) round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from lstm_jax._stack import Stack, WithInitialCarry, stack
from lstm_jax.cells.base import CELL_TYPES, Cell
from lstm_jax.typing import PyTree

FORMAT = "lstm_jax.checkpoint/1"
# Every registered cell type (lstm_jax.register_cell) restores by its name.
_CELL_TYPES = CELL_TYPES
Model = Cell | tuple[Cell, Cell] | Stack


class Checkpoint(NamedTuple):
    """What ``restore`` returns."""

    model: Model
    params: PyTree
    metadata: dict[str, Any]


# ---- configuration <-> JSON -------------------------------------------------------------------
def _cell_config(fn: str, cell: Cell) -> dict[str, Any]:
    config: dict[str, Any] = {"type": cell.name}
    for field in dataclasses.fields(cell):
        value = getattr(cell, field.name)
        if field.name.endswith("dtype"):
            config[field.name] = None if value is None else jnp.dtype(value).name
        elif callable(value):
            continue  # an initialiser: only init uses it (see the module docstring)
        elif value is None or isinstance(value, bool | int | float | str):
            config[field.name] = value
        else:
            raise TypeError(
                f"{fn}: cannot save {cell.name}.{field.name}={value!r}: only JSON scalars, "
                f"dtypes and initialisers are supported"
            )
    return config


def _cell_from_config(config: dict[str, Any]) -> Cell:
    config = dict(config)
    cls = _CELL_TYPES[config.pop("type")]
    for name, value in config.items():
        if name.endswith("dtype") and value is not None:
            config[name] = jnp.dtype(value)
    return cls(**config)


def model_config(model: Model, fn: str = "model_config") -> dict[str, Any]:
    """A JSON-able description of ``model`` (a cell, a pair of cells or a stack)."""
    if isinstance(model, Cell):
        return {"kind": "cell", "cell": _cell_config(fn, model)}
    if isinstance(model, Stack):
        return {
            "kind": "stack",
            "cells": [_cell_config(fn, c) for c in model.cells],
            "bidirectional": model.bidirectional,
            "dropout": model.dropout,
            "residual": model.residual,
            "merge": model.merge,
            "learn_initial_carry": model.learn_initial_carry,
            "locked_dropout": model.locked_dropout,
        }
    if _is_cell_pair(model):
        return {
            "kind": "bidirectional",
            "forward": _cell_config(fn, model[0]),
            "backward": _cell_config(fn, model[1]),
        }
    raise TypeError(
        f"{fn}: model must be an lstm_jax cell, a (forward, backward) pair of cells, an "
        f"lstm_jax.stack(...) or an lstm_jax.flax module, got {type(model).__name__}"
    )


def model_from_config(config: dict[str, Any]) -> Model:
    """Rebuilds the model described by ``model_config``."""
    kind = config.get("kind")
    if kind == "cell":
        return _cell_from_config(config["cell"])
    if kind == "bidirectional":
        return (_cell_from_config(config["forward"]), _cell_from_config(config["backward"]))
    if kind == "stack":
        cells = [_cell_from_config(c) for c in config["cells"]]
        return stack(
            cells,
            len(cells),
            bidirectional=config["bidirectional"],
            dropout=config["dropout"],
            residual=config["residual"],
            merge=config["merge"],
            learn_initial_carry=config.get("learn_initial_carry", False),
            locked_dropout=config.get("locked_dropout", False),
        )
    raise ValueError(f"model_from_config: unknown model kind {kind!r}")


def _is_cell_pair(model: Any) -> bool:
    return isinstance(model, tuple) and len(model) == 2 and all(isinstance(c, Cell) for c in model)


def _init_fn(model: Model):
    """``(key, input_size) -> params`` for any kind of model."""
    if isinstance(model, Cell | Stack):
        return model.init

    def init(key, input_size):
        k_f, k_b = jax.random.split(key)
        return (model[0].init(k_f, input_size), model[1].init(k_b, input_size))

    return init


def _abstract_params(model: Model, input_size: int) -> PyTree:
    """``init``'s pytree as ShapeDtypeStructs (the input size is static, not traced)."""
    init = _init_fn(model)
    return jax.eval_shape(lambda key: init(key, input_size), jax.random.key(0))


def _input_size(model: Model, params: PyTree) -> int | None:
    first = params
    if isinstance(model, Stack):
        if isinstance(params, WithInitialCarry):
            params = params.params
        first = params[0] if isinstance(params, tuple | list) and params else None
        if model.bidirectional and first is not None:
            first = first[0] if isinstance(first, tuple | list) and first else None
    elif not isinstance(model, Cell):
        first = params[0] if isinstance(params, tuple | list) and params else None
    w_ih = getattr(first, "w_ih", None)
    if w_ih is None or getattr(w_ih, "ndim", 0) != 2:
        return None
    return int(w_ih.shape[0])


def _checksums(params: PyTree) -> list[int]:
    """The CRC-32 of every leaf's bytes, in leaf order."""
    return [
        zlib.crc32(np.ascontiguousarray(np.asarray(jax.device_get(x))).tobytes())
        for x in jax.tree_util.tree_leaves(params)
    ]


def _describe(tree: PyTree) -> str:
    return str(jax.tree_util.tree_map(lambda x: f"{jnp.dtype(x.dtype).name}{list(x.shape)}", tree))


# ---- save / restore -----------------------------------------------------------------------
def save(
    directory: str | os.PathLike,
    model: Any,
    params: PyTree | None = None,
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Writes ``model``'s configuration and ``params`` to the checkpoint ``directory``.

    Args:
      directory: the checkpoint's directory (created; must not exist unless ``overwrite``).
      model: a cell, a ``(forward, backward)`` pair of cells, an ``lstm_jax.stack(...)``, or a
        module of ``lstm_jax.flax`` (its ``.core`` is saved).
      params: the parameters, exactly as ``model.init`` makes them (shapes and dtypes). May be
        None for an ``lstm_jax.flax.nnx`` module, which holds its own.
      metadata: anything JSON-able to keep alongside (a merge mode, a vocabulary size, ...).
      overwrite: replace an existing checkpoint.

    Raises:
      TypeError: an unsupported model, or metadata that is not a JSON-serialisable dict
        (checked before anything is written).
      ValueError: params that do not fit the model.
      FileExistsError: ``directory`` exists and ``overwrite`` is False.
    """
    fn = "checkpoint.save"
    if params is None and hasattr(model, "core_params"):
        params = model.core_params()
    model = getattr(model, "core", model)
    config = model_config(model, fn)
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"{fn}: metadata must be a JSON-able dict, got {type(metadata).__name__}")
    input_size = _input_size(model, params)
    if input_size is None:
        raise ValueError(
            f"{fn}: params must be the parameters of the model (as its init returns them), got "
            f"{type(params).__name__}"
        )
    expected = _abstract_params(model, input_size)
    got_def, want_def = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(expected)
    shapes_match = got_def == want_def and all(
        tuple(g.shape) == tuple(w.shape) and jnp.dtype(g.dtype) == jnp.dtype(w.dtype)
        for g, w in zip(
            jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(expected), strict=True
        )
    )
    if not shapes_match:
        raise ValueError(
            f"{fn}: params do not fit the model with input size {input_size}: got "
            f"{_describe(params)}, expected {_describe(expected)}"
        )
    path = os.path.abspath(os.fspath(directory))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{fn}: {path} exists; pass overwrite=True to replace it")
    document = {
        "format": FORMAT,
        "model": config,
        "input_size": input_size,
        "metadata": metadata or {},
        "checksums": _checksums(params),
    }
    try:
        json.dumps(document)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: metadata must be JSON-serialisable: {e}") from None
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(
            path,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params), config=ocp.args.JsonSave(document)
            ),
            force=overwrite,
        )


def restore(directory: str | os.PathLike) -> Checkpoint:
    """Reads a checkpoint written by ``save``.

    Returns:
      ``Checkpoint(model, params, metadata)``: the rebuilt model (a cell, a pair of cells or a
      stack), its parameters (the pytree of ``model.init``) and the saved metadata.

    Raises:
      FileNotFoundError: no checkpoint at ``directory``.
      ValueError: the directory holds something other than an lstm_jax checkpoint, or a
        corrupted one (unreadable, or parameters that do not match their CRC-32s).
    """
    fn = "checkpoint.restore"
    path = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(os.path.join(path, "config")):
        raise FileNotFoundError(f"{fn}: no lstm_jax checkpoint at {path}")
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        document = checkpointer.restore(
            path, args=ocp.args.Composite(config=ocp.args.JsonRestore())
        )["config"]
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(
                f"{fn}: {path} is not an lstm_jax checkpoint (format {FORMAT!r}), got format "
                f"{document.get('format') if isinstance(document, dict) else None!r}"
            )
        model = model_from_config(document["model"])
        abstract = _abstract_params(model, int(document["input_size"]))
        try:
            params = checkpointer.restore(
                path, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract))
            )["params"]
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:240]
            raise ValueError(
                f"{fn}: {path} is corrupted: its parameters cannot be read: {first}"
            ) from e
    saved = document.get("checksums")  # absent from checkpoints written before they were kept
    if saved is not None:
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
        for name, got, want in zip(paths, _checksums(params), saved, strict=True):
            if got != want:
                raise ValueError(
                    f"{fn}: {path} is corrupted: params{name} does not match the CRC-32 saved "
                    f"with it"
                )
    return Checkpoint(model, params, document["metadata"])


__all__ = ["FORMAT", "Checkpoint", "model_config", "model_from_config", "restore", "save"]
