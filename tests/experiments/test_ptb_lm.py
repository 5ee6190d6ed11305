"""The PTB language model's pieces by hand, and a 20-step run that resumes exactly."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ptb_lm
from lstm_jax import training
from lstm_jax.data import ptb

TINY = ptb_lm.Config(hidden=8, layers=2, batch_size=3, bptt=5, eval_size=1)
forward = jax.jit(ptb_lm.forward, static_argnums=0)


def _params(config, vocab=17):
    return ptb_lm.init_params(config, jax.random.PRNGKey(0), vocab)


def test_carried_state_over_windows_equals_one_long_unroll():
    params = _params(TINY)
    rows = ptb.batchify(np.random.default_rng(0).integers(0, 17, 3 * 16), 3)  # [3, 16]
    carry = ptb_lm.zero_carry(TINY, 3)
    _, long_nll = forward(TINY, params, rows[:, :15], carry, rows[:, 1:16])
    pieces = []
    for k in range(ptb.num_windows(rows, TINY.bptt)):
        xs, ys = ptb.window(rows, k, TINY.bptt)
        carry, nll = forward(TINY, params, xs, carry, ys)
        pieces.append(nll)
    np.testing.assert_allclose(np.concatenate(pieces, 1), long_nll, rtol=1e-5, atol=1e-6)


def test_a_window_starts_from_the_state_the_last_one_left():
    params = _params(TINY)
    rows = ptb.batchify(np.arange(3 * 11) % 17, 3)
    xs, ys = ptb.window(rows, 1, TINY.bptt)
    zero = ptb_lm.zero_carry(TINY, 3)
    carried, _ = forward(TINY, params, *ptb.window(rows, 0, TINY.bptt)[:1], zero,
                                ptb.window(rows, 0, TINY.bptt)[1])  # fmt: skip
    _, with_carry = forward(TINY, params, xs, carried, ys)
    _, from_zero = forward(TINY, params, xs, zero, ys)
    assert not np.allclose(with_carry, from_zero)


def test_train_step_resets_the_state_at_the_first_window():
    state = ptb_lm.init_state(TINY, 17)
    rows = jnp.asarray(ptb.batchify(np.arange(3 * 11) % 17, 3))
    junk = jax.tree_util.tree_map(jnp.ones_like, state.opt_state.carry)
    dirty = state._replace(opt_state=state.opt_state._replace(carry=junk))
    k0 = jnp.asarray(0, jnp.int32)
    _, clean_m = ptb_lm.train_step(TINY, state, rows, k0)
    _, dirty_m = ptb_lm.train_step(TINY, dirty, rows, k0)
    assert float(clean_m["loss"]) == float(dirty_m["loss"])
    _, dirty_k1 = ptb_lm.train_step(TINY, dirty, rows, jnp.asarray(1, jnp.int32))
    _, clean_k1 = ptb_lm.train_step(TINY, state, rows, jnp.asarray(1, jnp.int32))
    assert float(dirty_k1["loss"]) != float(clean_k1["loss"])


def test_sum_over_time_scales_the_update_by_bptt():
    rows = jnp.asarray(ptb.batchify(np.arange(3 * 11) % 17, 3))
    k = jnp.asarray(1, jnp.int32)
    moves = {}
    for flag in (True, False):
        config = ptb_lm.Config(hidden=8, layers=1, batch_size=3, bptt=5, lr=100.0,
                               clip_norm=1e6, sum_over_time=flag)  # fmt: skip
        state = ptb_lm.init_state(config, 17)
        new, metrics = ptb_lm.train_step(config, state, rows, k)
        moves[flag] = np.asarray(new.params["embed"] - state.params["embed"])
        moves[flag, "loss"] = float(metrics["loss"])
    np.testing.assert_allclose(moves[True], 5 * moves[False], rtol=1e-3, atol=1e-6)
    assert moves[True, "loss"] == pytest.approx(moves[False, "loss"])  # logged per token


@pytest.mark.parametrize(
    ("ids", "rows", "want"),
    [
        # One stream: targets 1, 2, 0 with p = 1/4, 1/4, 1/2.
        ([0, 1, 2, 0], 1, (4 * 4 * 2) ** (1 / 3)),
        # Two rows [0 1 2] and [1 0 0]: targets 1, 2 | 0, 0 -> p = 1/4, 1/4, 1/2, 1/2.
        ([0, 1, 2, 1, 0, 0], 2, (4 * 4 * 2 * 2) ** (1 / 4)),
    ],
)
@pytest.mark.parametrize("eval_window", [1, 200])
def test_perplexity_by_hand(ids, rows, want, eval_window):
    config = ptb_lm.Config(hidden=4, layers=1, eval_size=rows, eval_window=eval_window)
    params = _params(config, vocab=3)
    # A softmax that ignores the LSTM: every token is predicted as [1/2, 1/4, 1/4].
    params["out"]["w"] = jnp.zeros_like(params["out"]["w"])
    params["out"]["b"] = jnp.log(jnp.asarray([0.5, 0.25, 0.25], jnp.float32))
    nll = ptb_lm.split_nll(config, params, np.asarray(ids, np.int32))
    assert ptb_lm.perplexity(nll) == pytest.approx(want, rel=1e-6)


def test_tied_softmax_uses_the_embedding():
    config = ptb_lm.Config(hidden=4, layers=1, tied=True, init="torch")
    params = _params(config, vocab=5)
    assert set(params["out"]) == {"b"}
    hs = jnp.ones((1, 2, 4), jnp.float32)
    want = jax.nn.log_softmax(hs[0] @ params["embed"].T + params["out"]["b"][None, :])
    got = ptb_lm.token_nll(params, hs, jnp.asarray([[1, 3]]))
    np.testing.assert_allclose(got[0], -np.asarray([want[0, 1], want[1, 3]]), rtol=1e-6)


@pytest.mark.parametrize(
    ("anneal", "epoch", "lr", "val", "best", "want"),
    [
        ("epoch", 2, 1.0, 0.0, 0.0, 1.0),  # epoch 4 (from 1) still at the full rate
        ("epoch", 3, 1.0, 0.0, 0.0, 0.5),  # epoch 5: halved once
        ("epoch", 5, 0.25, 0.0, 0.0, 0.125),
        ("plateau", 0, 20.0, 5.0, math.inf, 20.0),
        ("plateau", 3, 20.0, 5.0, 4.0, 5.0),
    ],
)
def test_learning_rate_rules(anneal, epoch, lr, val, best, want):
    config = ptb_lm.Config(lr=lr if anneal == "plateau" else 1.0, anneal=anneal,
                           lr_decay=0.5 if anneal == "epoch" else 0.25, decay_after=4)  # fmt: skip
    assert ptb_lm.epoch_lr(config, epoch, lr, val, best) == pytest.approx(want)


def test_presets_match_the_published_recipes():
    small = ptb_lm.parse_args(["--preset", "small"])
    assert (small.hidden, small.layers, small.batch_size, small.bptt, small.epochs) == (
        200, 2, 20, 20, 13,
    )  # fmt: skip
    assert (small.dropout, small.lr, small.clip_norm, small.init_scale) == (0.0, 1.0, 5.0, 0.1)
    tied = ptb_lm.parse_args(["--preset", "tied"])
    assert (tied.tied, tied.lr, tied.clip_norm, tied.bptt, tied.dropout) == (
        True, 20.0, 0.25, 35, 0.2,
    )  # fmt: skip
    large = ptb_lm.parse_args(["--preset", "large", "--hidden", "64"])
    assert (large.hidden, large.dropout, large.clip_norm, large.epochs) == (64, 0.65, 10.0, 55)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--schedule", "cosine"], "--anneal"),
        (["--bptt", "0"], "--bptt"),
        (["--dropout", "1.0"], "--dropout"),
        (["--cell", "gru"], "--cell"),
        (["--distributed"], "--distributed"),
    ],
)
def test_bad_flags_are_refused_by_name(argv, match):
    with pytest.raises(ValueError, match=match):
        ptb_lm.parse_args(argv)


def _smoke(out, steps, data_dir):
    return ptb_lm.main(
        ["--preset", "small", "--hidden", "8", "--batch-size", "4", "--bptt", "10",
         "--train-tokens", "400", "--decay-after", "1", "--steps", str(steps),
         "--checkpoint-every", "10", "--log-every", "5", "--eval-size", "4",
         "--eval-tokens", "2000",
         "--no-progress", "--out", str(out), "--data-dir", data_dir]
    )  # fmt: skip


@pytest.mark.slow
def test_a_20_step_run_resumes_exactly(tmp_path):
    data_dir = str(tmp_path / "tfds")
    whole = _smoke(tmp_path / "whole", 20, data_dir)
    _smoke(tmp_path / "split", 10, data_dir)  # stops after its checkpoint at step 10
    resumed = _smoke(tmp_path / "split", 20, data_dir)
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert (tmp_path / "split" / name).stat().st_size > 0
    assert resumed["val_ppl"] == whole["val_ppl"]
    assert resumed["test_ppl"] == whole["test_ppl"]
    logs = [
        [(r["step"], r["split"], r.get("loss"), r.get("val_ppl")) for r in
         training.read_jsonl(tmp_path / run / "log.jsonl") if r["step"] != 10]
        for run in ("whole", "split")
    ]  # fmt: skip
    assert logs[0] == logs[1]  # the split run's final evaluation at step 10 aside
    # 400 tokens in 4 rows of 100: 9 windows of 10 an epoch, so 20 steps cross two epoch ends.
    lrs = [r["learning_rate"] for r in training.read_jsonl(tmp_path / "whole" / "log.jsonl")
           if r["split"] == "train"]  # fmt: skip
    assert lrs[0] == 1.0 and lrs[-1] == 0.25
    stored = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert stored["metrics"]["vocabulary"] == 10_000
    assert whole["final_train_loss"] < whole["first_train_loss"]
