"""lstm_jax.interop.torch against torch.nn.LSTM / GRU / RNN as the oracle.

Variable-length batches go through torch's own ``pack_padded_sequence`` and
``pad_packed_sequence``, so outputs and final states are compared with what torch computes for
packed input.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax
from lstm_jax.interop import TorchStyleRNN, from_torch, to_torch, to_torch_module

torch = pytest.importorskip("torch")
pack_padded_sequence = torch.nn.utils.rnn.pack_padded_sequence
pad_packed_sequence = torch.nn.utils.rnn.pad_packed_sequence

ATOL = 2e-5
INPUT, HIDDEN, BATCH, TIME = 3, 4, 3, 5
PROJ = 2  # proj_size of the projected LSTM (kind "lstmp")
KINDS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def make_module(kind, *, num_layers=1, bidirectional=False, batch_first=False, bias=True, seed=0):
    """``kind``: one of ``KINDS``, or ``"lstmp"``: an LSTM with ``proj_size=PROJ``."""
    torch.manual_seed(seed)
    options = dict(
        input_size=INPUT,
        hidden_size=HIDDEN,
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
    )
    if kind == "lstm":
        return torch.nn.LSTM(**options)
    if kind == "lstmp":
        return torch.nn.LSTM(proj_size=PROJ, **options)
    if kind == "gru":
        return torch.nn.GRU(**options)
    return torch.nn.RNN(nonlinearity=kind.removeprefix("rnn_"), **options)


def random_batch(seed, *, batch_first, batch=BATCH, time=TIME):
    """Inputs in the module's layout and lengths in [1, time], one row exactly ``time`` long."""
    rng = np.random.default_rng(seed)
    shape = (batch, time, INPUT) if batch_first else (time, batch, INPUT)
    x = rng.normal(size=shape).astype(np.float32)
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[rng.integers(batch)] = time
    return x, lengths


def random_state(module, seed, batch=BATCH):
    """A non-zero ``hx`` in torch's layout (``None`` batch for unbatched); ``h_0`` has
    ``proj_size`` features when the module has one."""
    rng = np.random.default_rng(seed)
    n = module.num_layers * (2 if module.bidirectional else 1)
    shape = (n, HIDDEN) if batch is None else (n, batch, HIDDEN)
    proj = getattr(module, "proj_size", 0)
    h_shape = (*shape[:-1], proj) if proj else shape
    h = rng.normal(size=h_shape).astype(np.float32)
    if isinstance(module, torch.nn.LSTM):
        return h, rng.normal(size=shape).astype(np.float32)
    return h


def torch_forward(module, x, lengths=None, hx=None):
    """The module's forward on packed input (or plain input when ``lengths`` is None)."""
    xt = torch.from_numpy(x)
    if hx is not None:
        hx = tuple(map(torch.from_numpy, hx)) if isinstance(hx, tuple) else torch.from_numpy(hx)
    if lengths is None:
        return module(xt, hx)
    time = x.shape[1] if module.batch_first else x.shape[0]
    packed = pack_padded_sequence(
        xt, torch.from_numpy(lengths), batch_first=module.batch_first, enforce_sorted=False
    )
    out, state = module(packed, hx)
    out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=time)
    return out, state


def to_numpy(tree):
    return jax.tree.map(lambda t: t.detach().numpy() if isinstance(t, torch.Tensor) else t, tree)


def assert_close(got, want, atol=ATOL):
    want = to_numpy(want)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g), w, atol=atol, rtol=0)


def jax_state(hx):
    if hx is None:
        return None
    return tuple(map(jnp.asarray, hx)) if isinstance(hx, tuple) else jnp.asarray(hx)


# ---- parity with torch --------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_packed_padded_batch_matches_torch(kind, num_layers, bidirectional, batch_first):
    module = make_module(
        kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first
    )
    x, lengths = random_batch(1, batch_first=batch_first)
    apply, params = from_torch(module)
    got = jax.jit(apply)(params, jnp.asarray(x), jnp.asarray(lengths))
    with torch.no_grad():
        want = torch_forward(module, x, lengths)
    assert_close(got, want)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_full_length_input_without_seq_lengths_matches_torch(kind, bidirectional):
    module = make_module(kind, num_layers=2, bidirectional=bidirectional)
    x, _ = random_batch(2, batch_first=False)
    apply, params = from_torch(module)
    with torch.no_grad():
        want = torch_forward(module, x)
    assert_close(apply(params, jnp.asarray(x)), want)


@pytest.mark.parametrize("kind", KINDS)
def test_bias_false_matches_torch(kind):
    module = make_module(kind, num_layers=2, bidirectional=True, batch_first=True, bias=False)
    x, lengths = random_batch(3, batch_first=True)
    apply, params = from_torch(module)
    assert all(direction.b is None for layer in params for direction in layer)
    with torch.no_grad():
        want = torch_forward(module, x, lengths)
    assert_close(apply(params, jnp.asarray(x), jnp.asarray(lengths)), want)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_matches_torch(kind, bidirectional):
    module = make_module(kind, num_layers=2, bidirectional=bidirectional)
    x, lengths = random_batch(4, batch_first=False)
    hx = random_state(module, 5)
    apply, params = from_torch(module)
    with torch.no_grad():
        want = torch_forward(module, x, lengths, hx)
    got = jax.jit(apply)(params, jnp.asarray(x), jnp.asarray(lengths), jax_state(hx))
    assert_close(got, want)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_matches_torch(kind, with_state):
    module = make_module(kind, num_layers=2, bidirectional=True, batch_first=True)
    x = np.random.default_rng(6).normal(size=(TIME, INPUT)).astype(np.float32)
    hx = random_state(module, 7, batch=None) if with_state else None
    apply, params = from_torch(module)
    with torch.no_grad():
        want = torch_forward(module, x, hx=hx)
    assert_close(apply(params, jnp.asarray(x), initial_state=jax_state(hx)), want)


def test_unbatched_seq_lengths_truncate_like_a_shorter_sequence():
    module = make_module("lstm", bidirectional=True)
    x = np.random.default_rng(8).normal(size=(TIME, INPUT)).astype(np.float32)
    apply, params = from_torch(module)
    with torch.no_grad():
        want_out, want_state = torch_forward(module, x[:3])
    out, state = apply(params, jnp.asarray(x), jnp.asarray(3))
    assert_close(state, want_state)
    assert_close(out[:3], want_out)
    np.testing.assert_array_equal(np.asarray(out[3:]), 0.0)


# ---- dtypes and the import boundary -------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_float32_module_gives_float32_jax_arrays(kind):
    apply, params = from_torch(make_module(kind, num_layers=2, bidirectional=True))
    for leaf in jax.tree.leaves(params):
        assert isinstance(leaf, jax.Array)
        assert leaf.dtype == jnp.float32
    assert params == tuple(params)  # a tuple, the layout of stack.init
    expected = apply.stack.init(jax.random.key(0), INPUT)
    assert jax.tree.structure(params) == jax.tree.structure(expected)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected), strict=True):
        assert got.shape == want.shape


def test_float64_module_under_x64_matches_torch(x64):
    module = make_module("gru", num_layers=2, bidirectional=True).double()
    x, lengths = random_batch(9, batch_first=False)
    x = x.astype(np.float64)
    apply, params = from_torch(module)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(params))
    with torch.no_grad():
        want = torch_forward(module, x, lengths)
    assert_close(apply(params, jnp.asarray(x), jnp.asarray(lengths)), want, atol=1e-12)
    for tensor in to_torch(params, apply).values():
        assert tensor.dtype == torch.float64


def test_importing_lstm_jax_does_not_import_torch():
    code = (
        "import sys, lstm_jax, lstm_jax.interop, lstm_jax.interop.torch\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- lstm_jax -> torch --------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_through_torch_gives_identical_params(kind, bidirectional, bias):
    module = make_module(
        kind, num_layers=2, bidirectional=bidirectional, batch_first=True, bias=bias
    )
    apply, params = from_torch(module)
    rebuilt = to_torch_module(params, apply)
    assert type(rebuilt) is type(module)
    assert rebuilt.batch_first and rebuilt.bidirectional == bidirectional
    assert (rebuilt.num_layers, rebuilt.bias) == (2, bias)
    assert getattr(rebuilt, "nonlinearity", None) == getattr(module, "nonlinearity", None)
    apply2, params2 = from_torch(rebuilt)
    assert apply2 == apply
    assert jax.tree.structure(params2) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(params2), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _random_bias(key, shape, dtype):
    return jax.random.normal(key, shape, dtype)


CELLS = {
    "lstm": lstm_jax.lstm(HIDDEN, bias_init=_random_bias),
    "gru": lstm_jax.gru(HIDDEN, bias_init=_random_bias),
    "rnn_tanh": lstm_jax.simple_rnn(HIDDEN, bias_init=_random_bias),
    "rnn_relu": lstm_jax.simple_rnn(HIDDEN, activation="relu", bias_init=_random_bias),
}


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_our_params_in_torch_give_our_outputs(kind, bidirectional):
    model = lstm_jax.stack(CELLS[kind], 2, bidirectional=bidirectional)
    params = model.init(jax.random.key(1), INPUT)
    x, lengths = random_batch(10, batch_first=True)
    module = to_torch_module(params, model, batch_first=True)
    carries, ys = model.apply(params, jnp.asarray(x), seq_lengths=jnp.asarray(lengths))
    with torch.no_grad():
        out, state = torch_forward(module, x, lengths)
    assert_close(ys, out)
    h_n = state[0] if kind == "lstm" else state
    flat = [c for layer in carries for c in (layer if bidirectional else (layer,))]
    assert_close(jnp.stack([c.h if kind == "lstm" else c for c in flat]), h_n)


def test_to_torch_splits_the_bias_as_documented():
    cell = CELLS["gru"]
    params = cell.init(jax.random.key(2), INPUT)
    state = to_torch(params, cell)
    assert list(state) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    np.testing.assert_array_equal(state["weight_ih_l0"].numpy(), np.asarray(params.w_ih).T)
    np.testing.assert_array_equal(state["weight_hh_l0"].numpy(), np.asarray(params.w_hh).T)
    np.testing.assert_array_equal(state["bias_ih_l0"].numpy(), np.asarray(params.b))
    b_hh = state["bias_hh_l0"].numpy()
    np.testing.assert_array_equal(b_hh[: 2 * HIDDEN], 0.0)
    np.testing.assert_array_equal(b_hh[2 * HIDDEN :], np.asarray(params.b_hn))
    assert all(t.dtype == torch.float32 for t in state.values())


def test_to_torch_keys_match_torch_state_dict():
    model = lstm_jax.stack(lstm_jax.lstm(HIDDEN), 3, bidirectional=True)
    state = to_torch(model.init(jax.random.key(3), INPUT), model)
    reference = make_module("lstm", num_layers=3, bidirectional=True).state_dict()
    assert list(state) == list(reference)
    for name, tensor in state.items():
        assert tensor.shape == reference[name].shape


def test_to_torch_module_carries_dropout():
    model = lstm_jax.stack(lstm_jax.gru(HIDDEN), 2, dropout=0.25)
    module = to_torch_module(model.init(jax.random.key(4), INPUT), model)
    assert module.dropout == 0.25


def test_module_with_dropout_runs_as_in_eval_mode():
    torch.manual_seed(0)
    module = torch.nn.LSTM(INPUT, HIDDEN, num_layers=2, dropout=0.5, bidirectional=True)
    apply, params = from_torch(module)
    assert apply.stack.dropout == 0.5
    assert to_torch_module(params, apply).dropout == 0.5
    x, lengths = random_batch(14, batch_first=False)
    with torch.no_grad():
        want = torch_forward(module.eval(), x, lengths)
    assert_close(apply(params, jnp.asarray(x), jnp.asarray(lengths)), want)


# ---- gradients ----------------------------------------------------------------------------------
def _torch_grads_in_our_layout(module, kind):
    """torch's parameter gradients mapped to our layout: ``w = weight.T``, and the gradient of
    a combined bias is that of either torch bias it replaces."""
    hidden = module.hidden_size
    layers = []
    for k in range(module.num_layers):
        directions = []
        for suffix in ("", "_reverse"):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            names += ("weight_hr",) if kind == "lstmp" else ()
            grad = {n: getattr(module, f"{n}_l{k}{suffix}").grad.numpy() for n in names}
            w_ih, w_hh = grad["weight_ih"].T, grad["weight_hh"].T
            if kind == "lstmp":
                np.testing.assert_allclose(grad["bias_ih"], grad["bias_hh"], atol=ATOL)
                directions.append((w_ih, w_hh, grad["bias_ih"], grad["weight_hr"].T))
            elif kind == "gru":
                np.testing.assert_allclose(
                    grad["bias_ih"][: 2 * hidden], grad["bias_hh"][: 2 * hidden], atol=ATOL
                )
                directions.append((w_ih, w_hh, grad["bias_ih"], grad["bias_hh"][2 * hidden :]))
            else:
                np.testing.assert_allclose(grad["bias_ih"], grad["bias_hh"], atol=ATOL)
                directions.append((w_ih, w_hh, grad["bias_ih"]))
        layers.append(tuple(directions))
    return tuple(layers)


@pytest.mark.parametrize("kind", ["lstm", "gru", "lstmp"])
def test_gradients_match_torch_autograd(kind):
    module = make_module(kind, num_layers=2, bidirectional=True, batch_first=True)
    x, lengths = random_batch(11, batch_first=True)
    hx = random_state(module, 12)
    rng = np.random.default_rng(13)
    width = PROJ if kind == "lstmp" else HIDDEN
    with_c = kind in ("lstm", "lstmp")
    w_out = rng.normal(size=(BATCH, TIME, 2 * width)).astype(np.float32)
    w_state = rng.normal(size=(4, BATCH, width)).astype(np.float32)
    w_cell = rng.normal(size=(4, BATCH, HIDDEN)).astype(np.float32)
    apply, params = from_torch(module)

    def loss(params, x):
        out, state = apply(params, x, jnp.asarray(lengths), jax_state(hx))
        h_n = state[0] if with_c else state
        total = jnp.sum(out * w_out) + jnp.sum(h_n * w_state)
        if with_c:
            total = total + jnp.sum(state[1] * w_cell)
        return total

    grad_params, grad_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, jnp.asarray(x))

    xt = torch.from_numpy(x).requires_grad_(True)
    packed = pack_padded_sequence(
        xt, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    hxt = tuple(map(torch.from_numpy, hx)) if with_c else torch.from_numpy(hx)
    out, state = module(packed, hxt)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=TIME)
    h_n = state[0] if with_c else state
    total = (out * torch.from_numpy(w_out)).sum() + (h_n * torch.from_numpy(w_state)).sum()
    if with_c:
        total = total + (state[1] * torch.from_numpy(w_cell)).sum()
    total.backward()

    np.testing.assert_allclose(np.asarray(grad_x), xt.grad.numpy(), atol=1e-4, rtol=0)
    want = _torch_grads_in_our_layout(module, kind)
    ours = tuple(tuple(tuple(direction) for direction in layer) for layer in grad_params)
    assert_close(ours, want, atol=1e-4)


# ---- LSTM with proj_size (lstmp cells) ----------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_with_proj_size_matches_torch_on_a_padded_batch(batch_first):
    module = make_module("lstmp", num_layers=2, bidirectional=True, batch_first=batch_first)
    x, lengths = random_batch(15, batch_first=batch_first)
    hx = random_state(module, 16)
    apply, params = from_torch(module)
    assert all(isinstance(c, lstm_jax.cells.lstmp.LSTMPCell) for c in apply.stack.cells)
    assert apply.stack.output_size == 2 * PROJ
    with torch.no_grad():
        want = torch_forward(module, x, lengths)
        want_hx = torch_forward(module, x, lengths, hx)
    run = jax.jit(apply)
    assert_close(run(params, jnp.asarray(x), jnp.asarray(lengths)), want)
    assert_close(run(params, jnp.asarray(x), jnp.asarray(lengths), jax_state(hx)), want_hx)


def test_our_lstmp_stack_in_torch_gives_our_outputs():
    cell = lstm_jax.cells.lstmp.LSTMPCell(HIDDEN, PROJ, bias_init=_random_bias)
    model = lstm_jax.stack(cell, 2, bidirectional=True)
    params = model.init(jax.random.key(17), INPUT)
    module = to_torch_module(params, model, batch_first=True)
    assert module.proj_size == PROJ
    assert list(to_torch(params, model)) == list(module.state_dict())
    x, lengths = random_batch(18, batch_first=True)
    carries, ys = model.apply(params, jnp.asarray(x), seq_lengths=jnp.asarray(lengths))
    with torch.no_grad():
        out, (h_n, c_n) = torch_forward(module, x, lengths)
    assert_close(ys, out)
    flat = [c for layer in carries for c in layer]
    assert_close(jnp.stack([c.h for c in flat]), h_n)
    assert_close(jnp.stack([c.c for c in flat]), c_n)
    # and back: the same parameters, bit for bit
    apply2, params2 = from_torch(module)
    assert apply2.stack == lstm_jax.stack(
        lstm_jax.cells.lstmp.LSTMPCell(HIDDEN, PROJ), 2, bidirectional=True
    )
    for a, b in zip(jax.tree.leaves(params2), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lstm_with_proj_size_checks_the_initial_state_widths():
    module = make_module("lstmp", num_layers=2, bidirectional=True)
    apply, params = from_torch(module)
    h_0, c_0 = jnp.zeros((4, BATCH, PROJ)), jnp.zeros((4, BATCH, HIDDEN))
    x = jnp.zeros((TIME, BATCH, INPUT))
    with pytest.raises(
        ValueError, match=r"initial_state\[0\] \(h_0\) must have shape \(4, 3, 2\) .*proj"
    ):
        apply(params, x, initial_state=(c_0, c_0))
    with pytest.raises(ValueError, match=r"initial_state\[1\] \(c_0\) must have shape \(4, 3, 4\)"):
        apply(params, x, initial_state=(h_0, h_0))


def test_to_torch_rejects_layers_with_different_proj_sizes():
    lstmp = lstm_jax.cells.lstmp.LSTMPCell
    model = lstm_jax.stack([lstmp(HIDDEN, 2), lstmp(HIDDEN, 3)], 2)
    with pytest.raises(ValueError, match=r"to_torch: model must use the same .*proj_size.*layer 1"):
        to_torch(model.init(jax.random.key(19), INPUT), model)


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [torch.nn.Linear(2, 3), torch.nn.LSTMCell(2, 3), "lstm"])
def test_unsupported_modules_raise_type_error(module):
    with pytest.raises(TypeError, match="from_torch: module must be"):
        from_torch(module)


@pytest.fixture
def lstm_apply():
    return from_torch(make_module("lstm", num_layers=2, bidirectional=True))


_X = jnp.zeros((TIME, BATCH, INPUT))
_STATE = jnp.zeros((4, BATCH, HIDDEN))
BAD_ARGUMENTS = {
    "x-int": (dict(x=_X.astype(jnp.int32)), TypeError, "x must have a floating"),
    "x-list": (dict(x=[[1.0]]), TypeError, "x must be an array"),
    "x-1d": (dict(x=jnp.zeros(INPUT)), ValueError, r"x must have shape \[time, batch, input\]"),
    "x-width": (dict(x=jnp.zeros((TIME, BATCH, 5))), ValueError, "x must have shape .*input=3"),
    "lengths-float": (
        dict(seq_lengths=jnp.ones(BATCH)),
        TypeError,
        "seq_lengths must have an integer dtype",
    ),
    "lengths-shape": (
        dict(seq_lengths=jnp.ones(BATCH + 1, jnp.int32)),
        ValueError,
        r"seq_lengths must have shape \(3,\)",
    ),
    "state-not-pair": (
        dict(initial_state=_STATE),
        TypeError,
        r"initial_state must be the pair \(h_0, c_0\)",
    ),
    "state-shape": (
        dict(initial_state=(_STATE[:2], _STATE[:2])),
        ValueError,
        r"initial_state\[0\] \(h_0\) must have shape \(4, 3, 4\)",
    ),
    "state-int": (
        dict(initial_state=(_STATE, _STATE.astype(jnp.int32))),
        TypeError,
        r"initial_state\[1\] \(c_0\) must have a floating dtype",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_apply_rejects_bad_arguments_by_name(lstm_apply, case):
    apply, params = lstm_apply
    arguments, error, match = BAD_ARGUMENTS[case]
    arguments = {"x": _X, **arguments}
    with pytest.raises(error, match=f"from_torch\\(LSTM\\) apply: {match}"):
        apply(params, **arguments)


def test_apply_rejects_params_of_another_shape_by_name(lstm_apply):
    apply, params = lstm_apply
    with pytest.raises(TypeError, match="params must be a tuple of 2"):
        apply(params[:1], _X)
    with pytest.raises(TypeError, match=r"params\[1\] must be a pair"):
        apply((params[0], params[1][0]), _X)
    with pytest.raises(ValueError, match=r"params\[1\]\[1\] must take layer 0's output"):
        apply((params[0], (params[1][0], params[0][1])), _X)


def test_gru_initial_state_must_be_an_array():
    apply, params = from_torch(make_module("gru"))
    with pytest.raises(TypeError, match=r"initial_state \(h_0\) must be an array"):
        apply(
            params, jnp.zeros((TIME, BATCH, INPUT)), initial_state=(jnp.zeros((1, BATCH, HIDDEN)),)
        )


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (lstm_jax.stack(lstm_jax.peephole_lstm(HIDDEN)), "torch has no peephole_lstm"),
        (lstm_jax.stack(lstm_jax.cifg_lstm(HIDDEN)), "torch has no cifg_lstm"),
        (lstm_jax.stack(lstm_jax.gru(HIDDEN, reset_after=False)), "reset_after=True"),
        (lstm_jax.stack(lstm_jax.lstm(HIDDEN), 2, residual=True), "residual=False"),
        (lstm_jax.stack(lstm_jax.lstm(HIDDEN), bidirectional=True, merge="sum"), "'concat'"),
        (lstm_jax.stack([lstm_jax.lstm(HIDDEN), lstm_jax.lstm(HIDDEN + 1)], 2), "layer 1"),
        (
            lstm_jax.stack([lstm_jax.gru(HIDDEN), lstm_jax.gru(HIDDEN, use_bias=False)], 2),
            "use_bias",
        ),
    ],
)
def test_to_torch_rejects_models_torch_cannot_express(model, match):
    params = model.init(jax.random.key(5), INPUT)
    with pytest.raises(ValueError, match=f"to_torch: model must .*{match}"):
        to_torch(params, model)


def test_to_torch_rejects_a_non_model():
    with pytest.raises(TypeError, match="to_torch_module: model must be an lstm_jax cell"):
        to_torch_module({}, "LSTM")


def test_to_torch_rejects_params_that_do_not_fit_the_model():
    model = lstm_jax.stack(lstm_jax.lstm(HIDDEN), 2)
    params = model.init(jax.random.key(6), INPUT)
    with pytest.raises(TypeError, match="to_torch: params must be a tuple of 2"):
        to_torch(params[:1], model)
    with pytest.raises(ValueError, match=r"to_torch: params\[1\] does not fit"):
        to_torch((params[0], params[0]._replace(w_hh=params[0].w_ih)), model)


def test_apply_is_a_hashable_static_description():
    apply, _ = from_torch(make_module("rnn_relu", num_layers=2, batch_first=True))
    assert isinstance(apply, TorchStyleRNN)
    again, _ = from_torch(make_module("rnn_relu", num_layers=2, batch_first=True))
    assert hash(apply) == hash(again)
    assert apply.batch_first and apply.cell.activation == "relu"


def test_apply_description_rejects_a_stack_torch_cannot_express():
    with pytest.raises(ValueError, match=r"TorchStyleRNN: stack must .*torch has no cifg_lstm"):
        TorchStyleRNN(lstm_jax.stack(lstm_jax.cifg_lstm(HIDDEN)))
