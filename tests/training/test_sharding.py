import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from lstm_jax import training


@pytest.fixture(scope="module")
def eight_devices():
    # The main pytest process imported jax with one device; the flag only works before import.
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    script = os.path.join(os.path.dirname(__file__), "multidevice_check.py")
    proc = subprocess.run(
        [sys.executable, "-W", "error", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_eight_devices_give_the_one_device_loss_curve(eight_devices):
    one, eight = eight_devices["one"], eight_devices["eight"]
    assert len(one["losses"]) == 6
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(one["params"], eight["params"], strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
    assert one["losses"][-1] < one["losses"][0]


@pytest.mark.slow
def test_annotated_parameters_stay_sharded_and_train_the_same(eight_devices):
    run = eight_devices["eight_sharded_params"]
    row_sharded = {str(PartitionSpec("data")), str(PartitionSpec("data", None))}
    assert run["out_spec"] in row_sharded
    assert run["mu_spec"] in row_sharded  # Adam's moment follows its parameter
    np.testing.assert_allclose(run["losses"], eight_devices["one"]["losses"], rtol=1e-5)


@pytest.mark.slow
def test_indivisible_batch_is_rejected(eight_devices):
    assert "must divide evenly among the 8 devices" in eight_devices["bad_batch_error"]


@pytest.mark.slow
def test_slstm_shards_its_recurrence_by_head(eight_devices):
    run = eight_devices["slstm_by_heads"]
    assert run["w_hh_spec"] == str(PartitionSpec("model", None, None))
    assert run["w_hh_shard_shape"] == [1, 2, 8]  # one head's [head, 4*head] block per device
    assert run["equal"] and run["grads_equal"]


def test_one_device_mesh_runs_the_same_code_path(tiny):
    mesh = training.make_mesh(1)
    plain, _ = tiny.run(3)
    meshed, _ = tiny.run(3, mesh=mesh)
    jax.tree_util.tree_map(np.testing.assert_array_equal, plain.params, meshed.params)


def test_shard_batch_places_the_batch_on_the_mesh():
    mesh = training.make_mesh()
    batch = training.shard_batch({"x": jnp.ones((4, 3))}, mesh)
    assert batch["x"].sharding.spec == PartitionSpec(training.DATA_AXIS)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="devices must be between 1 and"):
        training.make_mesh(jax.device_count() + 1)
    with pytest.raises(ValueError, match="leading batch axis"):
        training.shard_batch({"x": jnp.float32(1.0)}, training.make_mesh())
    opt = training.make_optimizer(1e-3)
    state = training.create_train_state({"a": jnp.ones(2), "b": jnp.ones(2)}, opt, 0)
    with pytest.raises(ValueError, match=r"param_specs must have the structure of state\.params"):
        training.state_shardings(state, training.make_mesh(), opt, {"a": PartitionSpec()})
