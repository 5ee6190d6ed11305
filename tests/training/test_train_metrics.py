import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import training


def test_weighted_means_match_numpy():
    values = [(2.0, 1.0, 4), (4.0, 3.0, 2), (1.0, 0.5, 6)]
    acc = training.init_metrics()
    for loss, acc_v, w in values:
        acc = training.update_metrics(acc, {"loss": jnp.float32(loss), "acc": acc_v}, w)
    out = training.compute_metrics(acc)
    ws = np.array([v[2] for v in values], float)
    assert out["loss"] == pytest.approx(np.average([v[0] for v in values], weights=ws))
    assert out["acc"] == pytest.approx(np.average([v[1] for v in values], weights=ws))


def test_accumulation_works_inside_jit():
    @jax.jit
    def run(xs):
        acc = training.init_metrics()
        for x in xs:
            acc = training.update_metrics(acc, {"m": x}, 2.0)
        return acc

    out = training.compute_metrics(run([jnp.float32(1.0), jnp.float32(3.0)]))
    assert out["m"] == pytest.approx(2.0)


def test_evaluate_weights_by_batch_size():
    step = training.make_eval_step(lambda p, b: {"mean": jnp.mean(b * p)})
    batches = [jnp.ones((3,)), jnp.full((1,), 5.0)]
    out = training.evaluate(step, jnp.float32(2.0), batches)
    assert out["mean"] == pytest.approx((3 * 2.0 + 1 * 10.0) / 4)


def test_empty_accumulator_gives_nan_and_names_must_match():
    assert training.compute_metrics(training.init_metrics()) == {}
    acc = training.update_metrics(training.init_metrics(), {"a": 1.0})
    with pytest.raises(ValueError, match="metrics must have the names accumulated so far"):
        training.update_metrics(acc, {"b": 1.0})
    with pytest.raises(ValueError, match=r"metrics\['a'\] must be a scalar"):
        training.update_metrics(acc, {"a": jnp.ones(2)})
