"""Data parallelism with ``jax.sharding``: one code path for one device and for many.

A one-axis mesh named ``"data"`` spans the devices. The batch is split along its leading axis
across the mesh (``PartitionSpec("data")``); the train state is replicated, or, for parameters
that carry a ``PartitionSpec`` (for example from a Flax layer's ``nn.with_partitioning``
annotations, read with ``flax.linen.get_partition_spec``), laid out as annotated, with the
optimiser moments following their parameters. ``jax.jit`` then inserts the gradient all-reduce
itself, so the step function is the same on 1 device and on 8.

Multi-process (one process per host, each seeing its local devices) works the same way: join
the run first (``training.distributed.initialize``), build the mesh over ``jax.devices()``
(every process's devices), and give ``shard_batch`` each process's rows of the global batch
(``training.distributed.process_rows`` says which); they are assembled with
``jax.make_array_from_process_local_data``. See ``docs/guide/distributed.md`` for the launch
commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lstm_jax.training.state import TrainState
from lstm_jax.typing import PyTree

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | int | None = None) -> Mesh:
    """A one-axis ``("data",)`` mesh.

    Args:
      devices: the devices to use, or how many of ``jax.devices()`` to take (the first ones),
        or None for all of them.
    """
    fn = "make_mesh"
    all_devices = jax.devices()
    if devices is None:
        devices = all_devices
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(all_devices):
            raise ValueError(
                f"{fn}: devices must be between 1 and the {len(all_devices)} available devices, "
                f"got {devices}"
            )
        devices = all_devices[:devices]
        if jax.process_count() > 1 and devices != all_devices:
            # Every process must hold a part of the batch, or it has nothing to compute on.
            raise ValueError(
                f"{fn}: in a multi-process run the mesh spans every process's devices; devices "
                f"must be None or all {len(all_devices)}, got {len(devices)}"
            )
    elif not isinstance(devices, Sequence) or not devices:
        raise TypeError(
            f"{fn}: devices must be a non-empty list of devices, an int or None, got {devices!r}"
        )
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The leading (batch) axis split across the mesh's ``data`` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def state_shardings(
    state: TrainState,
    mesh: Mesh,
    optimizer: optax.GradientTransformation,
    param_specs: PyTree | None = None,
) -> TrainState:
    """Shardings for every leaf of ``state``: a ``TrainState`` of ``NamedSharding``.

    Args:
      state: the train state (only its structure is used).
      mesh: the mesh.
      optimizer: the optimiser the state was built with; with ``param_specs`` it tells which
        optimiser-state leaves mirror a parameter (Adam's moments do, its step count does
        not), via ``optax.tree_map_params`` (which does not see through
        ``optax.multi_transform``'s masked states).
      param_specs: None (replicate everything) or a pytree with the structure of
        ``state.params`` whose leaves are ``PartitionSpec`` (``PartitionSpec()`` replicates).

    Returns:
      A ``TrainState`` whose leaves are shardings, for ``jax.device_put`` and
      ``make_train_step(state_sharding=...)``.
    """
    fn = "state_shardings"
    rep = replicated(mesh)
    if param_specs is None:
        # Everything replicated: no need to know which optimiser leaves mirror parameters.
        everything = lambda tree: jax.tree_util.tree_map(lambda _: rep, tree)
        return TrainState(
            step=rep,
            params=everything(state.params),
            opt_state=everything(state.opt_state),
            key=rep,
        )
    is_spec = lambda x: isinstance(x, PartitionSpec)
    if jax.tree_util.tree_structure(param_specs, is_leaf=is_spec) != jax.tree_util.tree_structure(
        jax.tree_util.tree_map(lambda _: 0, state.params)
    ):
        raise ValueError(
            f"{fn}: param_specs must have the structure of state.params with a PartitionSpec "
            f"per leaf, got {param_specs!r}"
        )
    param_sh = jax.tree_util.tree_map(
        lambda spec: NamedSharding(mesh, spec), param_specs, is_leaf=is_spec
    )
    opt_sh = optax.tree_map_params(
        optimizer,
        lambda _, sharding: sharding,
        state.opt_state,
        param_sh,
        transform_non_params=lambda _: rep,
    )
    return TrainState(step=rep, params=param_sh, opt_state=opt_sh, key=rep)


def place_state(state: TrainState, shardings: TrainState) -> TrainState:
    """Moves ``state`` onto the mesh with the given shardings."""
    return jax.device_put(state, shardings)


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """Places a batch with its leading axis split across the mesh.

    Args:
      batch: a pytree of arrays ``[batch, ...]`` holding *this process's* rows of the global
        batch, in ascending order (``training.distributed.process_rows``; one process: the
        whole global batch). Every leaf's leading dimension times the number of processes is
        the global batch, which must divide evenly among the mesh's devices.

    Returns:
      The batch as global ``jax.Array``s sharded along ``data``.
    """
    fn = "shard_batch"
    sharding = batch_sharding(mesh)
    n_dev = mesh.devices.size
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves:
        raise ValueError(f"{fn}: batch must contain at least one array, got {batch!r}")
    for leaf in leaves:
        if not hasattr(leaf, "shape") or len(leaf.shape) < 1:
            raise ValueError(
                f"{fn}: every leaf of batch must have a leading batch axis, got "
                f"{getattr(leaf, 'shape', type(leaf).__name__)}"
            )
        global_rows = leaf.shape[0] * jax.process_count()
        if global_rows % n_dev:
            raise ValueError(
                f"{fn}: the global batch ({global_rows} rows) must divide evenly among the "
                f"{n_dev} devices of the mesh, got a leaf of shape {tuple(leaf.shape)}"
            )

    def put(x: Any) -> jax.Array:
        if jax.process_count() == 1:
            # Already the global batch: a device-to-device placement, no trip through the host.
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree_util.tree_map(put, batch)
