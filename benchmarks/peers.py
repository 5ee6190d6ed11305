"""The peers: Flax linen and PyTorch, loaded with our weights so that all do the same work.

* Flax: ``nn.RNN(nn.OptimizedLSTMCell(H))``, ``nn.RNN(nn.GRUCell(H))`` and
  ``nn.Bidirectional(nn.RNN(OptimizedLSTMCell), nn.RNN(OptimizedLSTMCell))`` (merge: concat),
  jitted, timed exactly as ours (``contender.jax_contender``).
* torch: ``nn.LSTM`` / ``nn.GRU`` (``bidirectional=True`` for BiLSTM), ``batch_first=True``,
  on ``torch.set_num_threads(os.cpu_count())`` threads. The forward pass runs under
  ``torch.no_grad()`` (inference: no graph is recorded, and oneDNN may pick its inference
  kernel); the train mode is ``torch.autograd.grad(ys.sum(), [xs, *parameters])``.

Weight layouts. Ours: ``w_ih [input, gates]``, ``w_hh [hidden, gates]``, one combined bias
``b [gates]`` (plus ``b_hn [hidden]`` for the GRU), gates in torch order (LSTM ``i, f, g, o``,
GRU ``r, z, n``). torch stores the transposes and two biases: ``bias_ih = b`` and ``bias_hh``
is zero except the GRU's ``n`` block, which holds ``b_hn``. Flax keeps one Dense per gate:
LSTM ``i{gate}`` (kernel only) and ``h{gate}`` (kernel and bias); GRU ``i{gate}`` (kernel and
bias), ``hr``, ``hz`` (kernel only) and ``hn`` (kernel and bias ``b_hn``).

* Equinox (where installed): ``eqx.nn.LSTMCell`` / ``eqx.nn.GRUCell`` (``weight_ih [gates,
  input]``, ``weight_hh [gates, hidden]``, ``bias [gates]``, the GRU's ``bias_n [hidden]``,
  gates in torch order) stepped by ``lax.scan`` over time and ``vmap`` over the batch, the
  way Equinox's documentation runs a cell; BiLSTM runs the second cell with
  ``reverse=True`` and concatenates.

* Keras 3 on its JAX backend (where installed): ``keras.layers.LSTM`` / ``GRU``
  (``reset_after=True``, its default) and ``Bidirectional(LSTM)`` (merge: concat), all with
  ``return_sequences=True``, run through ``layer.stateless_call`` on the trainable variables,
  jitted and timed exactly as ours. Keras keeps ``kernel [input, gates]``, ``recurrent_kernel
  [hidden, gates]`` and the LSTM's one ``bias [gates]`` in our LSTM gate order (its ``i, f, c,
  o``); its GRU orders the gates ``z, r, h`` and holds ``bias [2, gates]``: row 0 the input
  bias (our ``b_z | b_r | b_in``), row 1 the recurrent bias (zero but for ``b_hn`` in the ``h``
  block).

torch, Flax, Equinox and Keras are imported inside the functions: importing this module costs
none.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.contender import Contender, jax_contender
from benchmarks.workloads import Size, Workload


def _keras_usable() -> bool:
    """Keras is installed and would load its JAX backend (it reads ``KERAS_BACKEND`` once, at
    import, and otherwise falls back to ``~/.keras/keras.json``, TensorFlow by default)."""
    return importlib.util.find_spec("keras") is not None and (
        os.environ.get("KERAS_BACKEND", "jax") == "jax"
    )


# Equinox and Keras are benchmark extras: peers only where they are installed.
PEERS = (
    ("flax", "torch")
    + (("equinox",) if importlib.util.find_spec("equinox") else ())
    + (("keras",) if _keras_usable() else ())
)

_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")


# ---- Flax -----------------------------------------------------------------------------------
def flax_module(model: str, hidden: int) -> Any:
    import flax.linen as nn

    if model == "lstm":
        return nn.RNN(nn.OptimizedLSTMCell(hidden))
    if model == "gru":
        return nn.RNN(nn.GRUCell(hidden))
    if model == "bilstm":
        return nn.Bidirectional(
            nn.RNN(nn.OptimizedLSTMCell(hidden)), nn.RNN(nn.OptimizedLSTMCell(hidden))
        )
    raise ValueError(f"model must be 'lstm', 'gru' or 'bilstm', got {model!r}")


def _blocks(a: Any, n: int) -> list[Any]:
    return jnp.split(a, n, axis=-1)


def _flax_lstm_cell(p: Any) -> dict[str, Any]:
    w_ih, w_hh, b = _blocks(p.w_ih, 4), _blocks(p.w_hh, 4), _blocks(p.b, 4)
    out: dict[str, Any] = {}
    for k, gate in enumerate(_LSTM_GATES):
        out[f"i{gate}"] = {"kernel": w_ih[k]}
        out[f"h{gate}"] = {"kernel": w_hh[k], "bias": b[k]}
    return {"cell": out}


def _flax_gru_cell(p: Any) -> dict[str, Any]:
    w_ih, w_hh, b = _blocks(p.w_ih, 3), _blocks(p.w_hh, 3), _blocks(p.b, 3)
    out: dict[str, Any] = {}
    for k, gate in enumerate(_GRU_GATES):
        out[f"i{gate}"] = {"kernel": w_ih[k], "bias": b[k]}
        out[f"h{gate}"] = {"kernel": w_hh[k]}
    out["hn"]["bias"] = p.b_hn
    return {"cell": out}


def to_flax(model: str, params: Any) -> dict[str, Any]:
    """Our parameters as the Flax module's ``params`` collection."""
    if model == "lstm":
        return _flax_lstm_cell(params)
    if model == "gru":
        return _flax_gru_cell(params)
    forward, backward = params
    return {"forward_rnn": _flax_lstm_cell(forward), "backward_rnn": _flax_lstm_cell(backward)}


def _ours_from_flax_lstm(d: dict[str, Any]) -> list[Any]:
    d = d["cell"]
    return [
        jnp.concatenate([d[f"i{g}"]["kernel"] for g in _LSTM_GATES], axis=-1),
        jnp.concatenate([d[f"h{g}"]["kernel"] for g in _LSTM_GATES], axis=-1),
        jnp.concatenate([d[f"h{g}"]["bias"] for g in _LSTM_GATES], axis=-1),
    ]


def _ours_from_flax_gru(d: dict[str, Any]) -> list[Any]:
    d = d["cell"]
    return [
        jnp.concatenate([d[f"i{g}"]["kernel"] for g in _GRU_GATES], axis=-1),
        jnp.concatenate([d[f"h{g}"]["kernel"] for g in _GRU_GATES], axis=-1),
        jnp.concatenate([d[f"i{g}"]["bias"] for g in _GRU_GATES], axis=-1),
        d["hn"]["bias"],
    ]


def from_flax(model: str, tree: dict[str, Any]) -> list[Any]:
    """A Flax ``params`` collection (or its gradient) as a list in our leaf order."""
    if model == "lstm":
        return _ours_from_flax_lstm(tree)
    if model == "gru":
        return _ours_from_flax_gru(tree)
    return _ours_from_flax_lstm(tree["forward_rnn"]) + _ours_from_flax_lstm(tree["backward_rnn"])


def flax_contender(workload: Workload) -> Contender:
    """Flax linen's layer with our weights, jitted and compiled like ours."""
    module = flax_module(workload.model, workload.size.hidden)
    xs = jnp.asarray(workload.xs)
    variables = {"params": to_flax(workload.model, workload.params)}
    # Flax's parameter names are its own; fail loudly here if they ever change.
    expected = jax.eval_shape(module.init, jax.random.key(0), xs)
    shapes = jax.tree_util.tree_map(lambda a: tuple(a.shape), (expected, variables))
    if shapes[0] != shapes[1]:
        raise RuntimeError(f"Flax {workload.model} parameters changed: {shapes[0]} vs {shapes[1]}")

    def forward(v: Any, x: Any) -> Any:
        return module.apply(v, x)

    return jax_contender(
        "flax",
        "flax",
        {},
        forward,
        variables,
        xs,
        lambda grads: from_flax(workload.model, grads["params"]),
    )


# ---- torch ----------------------------------------------------------------------------------
def configure_torch(threads: int | None = None) -> int:
    """Sets torch's intra-op threads (all cores by default) and returns the number."""
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch.get_num_threads()


def torch_module(model: str, size: Size) -> Any:
    """``nn.LSTM`` / ``nn.GRU`` for ``size`` with torch's own initialisation, batch first."""
    import torch

    kind = torch.nn.GRU if model == "gru" else torch.nn.LSTM
    return kind(size.input, size.hidden, batch_first=True, bidirectional=model == "bilstm")


def _torch_tensors(model: str, p: Any) -> dict[str, np.ndarray]:
    """One direction's torch parameters (without the ``_l0`` suffix) from ours."""
    b = np.asarray(p.b)
    bias_hh = np.zeros_like(b)
    if model == "gru":
        hidden = p.b_hn.shape[-1]
        bias_hh[2 * hidden :] = np.asarray(p.b_hn)
    return {
        "weight_ih": np.asarray(p.w_ih).T,
        "weight_hh": np.asarray(p.w_hh).T,
        "bias_ih": b,
        "bias_hh": bias_hh,
    }


def to_torch(model: str, params: Any, module: Any) -> None:
    """Copies our parameters into ``module`` (in place)."""
    import torch

    if model == "bilstm":
        forward, backward = params
        tensors = {f"{k}_l0": v for k, v in _torch_tensors(model, forward).items()}
        tensors |= {f"{k}_l0_reverse": v for k, v in _torch_tensors(model, backward).items()}
    else:
        tensors = {f"{k}_l0": v for k, v in _torch_tensors(model, params).items()}
    named = dict(module.named_parameters())
    if set(named) != set(tensors):
        raise RuntimeError(f"torch {model} parameters changed: {sorted(named)}")
    with torch.no_grad():
        for name, value in tensors.items():
            named[name].copy_(torch.from_numpy(np.array(value, dtype=np.float32)))


def from_torch_grads(model: str, grads: dict[str, np.ndarray]) -> list[np.ndarray]:
    """torch parameter gradients (by name) as a list in our leaf order."""

    def one(suffix: str) -> list[np.ndarray]:
        out = [grads[f"weight_ih{suffix}"].T, grads[f"weight_hh{suffix}"].T]
        out.append(grads[f"bias_ih{suffix}"])
        if model == "gru":
            hidden = grads[f"weight_hh{suffix}"].shape[-1]
            out.append(grads[f"bias_hh{suffix}"][2 * hidden :])
        return out

    if model == "bilstm":
        return one("_l0") + one("_l0_reverse")
    return one("_l0")


def torch_contender(workload: Workload) -> Contender:
    """torch's module with our weights; forward under ``no_grad``, train with autograd."""
    import torch

    module = torch_module(workload.model, workload.size)
    to_torch(workload.model, workload.params, module)
    names = [n for n, _ in module.named_parameters()]
    weights = [p for _, p in module.named_parameters()]
    xs = torch.from_numpy(workload.xs.copy())
    xs_grad = xs.clone().requires_grad_(True)

    def forward() -> Any:
        with torch.no_grad():
            return module(xs)[0]

    def train() -> Any:
        ys = module(xs_grad)[0]
        return torch.autograd.grad(ys.sum(), [xs_grad, *weights])

    def outputs() -> dict[str, Any]:
        ys = forward().numpy()
        dxs, *dweights = (g.numpy() for g in train())
        return {
            "ys": ys,
            "dxs": dxs,
            "dparams": from_torch_grads(workload.model, dict(zip(names, dweights, strict=True))),
        }

    return Contender(
        name="torch",
        framework="torch",
        options={},
        calls={"forward": forward, "train": train},
        compile_s={"forward": None, "train": None},
        memory={"forward": None, "train": None},
        outputs=outputs,
    )


# ---- Equinox --------------------------------------------------------------------------------
def _eqx_cell(model: str, arrays: tuple, input_size: int, hidden: int) -> Any:
    """Equinox's cell holding ``arrays`` (its own layout); the arrays are passed separately
    from the module so that ``jax.grad`` sees only them (a module's int fields are leaves)."""
    import equinox as eqx

    if model == "gru":
        cell = eqx.nn.GRUCell(input_size, hidden, key=jax.random.key(0))
        fields = lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n)
    else:
        cell = eqx.nn.LSTMCell(input_size, hidden, key=jax.random.key(0))
        fields = lambda c: (c.weight_ih, c.weight_hh, c.bias)
    return eqx.tree_at(fields, cell, tuple(arrays))


def _eqx_run(model: str, cell: Any, xs: Any, reverse: bool) -> Any:
    """One cell over ``xs [time, input]`` (one row), outputs ``[time, hidden]``."""
    hidden = cell.hidden_size
    h0 = jnp.zeros((hidden,), xs.dtype)
    init = h0 if model == "gru" else (h0, h0)

    def step(carry, x):
        carry = cell(x, carry)
        return carry, carry if model == "gru" else carry[0]

    return jax.lax.scan(step, init, xs, reverse=reverse)[1]


def equinox_contender(workload: Workload) -> Contender:
    """Equinox's cells with our weights, scanned and vmapped, jitted like ours."""
    model, size = workload.model, workload.size
    kind = "gru" if model == "gru" else "lstm"
    params = workload.params if model == "bilstm" else (workload.params,)
    arrays = tuple((p.w_ih.T, p.w_hh.T, p.b) + ((p.b_hn,) if kind == "gru" else ()) for p in params)

    def forward(arrays: Any, x: Any) -> Any:
        cells = [_eqx_cell(kind, a, size.input, size.hidden) for a in arrays]
        outs = [
            jax.vmap(lambda row, c=c, r=r: _eqx_run(kind, c, row, bool(r)))(x)
            for r, c in enumerate(cells)
        ]
        return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)

    def grads_to_ours(grads: Any) -> list[Any]:
        out: list[Any] = []
        for g in grads:
            out += [g[0].T, g[1].T, *g[2:]]
        return out

    return jax_contender(
        "equinox", "equinox", {}, forward, arrays, jnp.asarray(workload.xs), grads_to_ours
    )


# ---- Keras ----------------------------------------------------------------------------------
def import_keras() -> Any:
    """Keras on its JAX backend (``KERAS_BACKEND=jax`` is set where unset: Keras reads it once,
    at its first import); raises if Keras was already imported with another backend."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"keras runs on its {keras.backend.backend()!r} backend; set KERAS_BACKEND=jax "
            "before keras is first imported"
        )
    return keras


def keras_layer(model: str, size: Size) -> Any:
    """The built Keras layer for ``model`` at ``size``, batch first, every step's output."""
    keras = import_keras()
    if model == "lstm":
        layer = keras.layers.LSTM(size.hidden, return_sequences=True)
    elif model == "gru":
        layer = keras.layers.GRU(size.hidden, return_sequences=True, reset_after=True)
    elif model == "bilstm":
        layer = keras.layers.Bidirectional(
            keras.layers.LSTM(size.hidden, return_sequences=True), merge_mode="concat"
        )
    else:
        raise ValueError(f"model must be 'lstm', 'gru' or 'bilstm', got {model!r}")
    # Keras' own code broadcasts vectors against matrices implicitly (its orthogonal
    # initialiser in build, the [gates] bias added to [batch, gates] in each step); the test
    # suite makes implicit rank promotion an error, so Keras' calls run with it allowed.
    with jax.numpy_rank_promotion("allow"):
        layer.build((size.batch, size.time, size.input))
    return layer


def _gru_to_keras_order(a: Any) -> Any:
    """Our GRU gate blocks ``r, z, n`` on the last axis -> Keras' ``z, r, h``."""
    r, z, n = _blocks(a, 3)
    return jnp.concatenate([z, r, n], axis=-1)


def _keras_direction(model: str, p: Any) -> list[Any]:
    """One direction's ``[kernel, recurrent_kernel, bias]`` in Keras' layout, from ours."""
    if model != "gru":
        return [p.w_ih, p.w_hh, p.b]
    recurrent_bias = jnp.concatenate([jnp.zeros(2 * p.b_hn.shape[-1], p.b.dtype), p.b_hn])
    bias = jnp.stack([_gru_to_keras_order(p.b), recurrent_bias])
    return [_gru_to_keras_order(p.w_ih), _gru_to_keras_order(p.w_hh), bias]


def to_keras(model: str, params: Any) -> list[Any]:
    """Our parameters as the list of the Keras layer's ``trainable_variables`` values."""
    if model == "bilstm":
        forward, backward = params
        return _keras_direction(model, forward) + _keras_direction(model, backward)
    return _keras_direction(model, params)


def _gru_from_keras_order(a: Any) -> Any:
    z, r, n = _blocks(a, 3)
    return jnp.concatenate([r, z, n], axis=-1)


def from_keras(model: str, values: list[Any]) -> list[Any]:
    """Keras trainable values (or their gradients) as a list in our leaf order.

    The GRU's ``r`` and ``z`` blocks add Keras' input and recurrent biases, so our ``b``'s
    gradient there is either row's; its ``n`` block takes the input row, ``b_hn`` the
    recurrent row's ``h`` block.
    """
    if model != "gru":
        return list(values)
    kernel, recurrent_kernel, bias = values
    hidden = recurrent_kernel.shape[0]
    return [
        _gru_from_keras_order(kernel),
        _gru_from_keras_order(recurrent_kernel),
        _gru_from_keras_order(bias[0]),
        bias[1, 2 * hidden :],
    ]


def keras_contender(workload: Workload) -> Contender:
    """Keras' layer with our weights through ``stateless_call``, jitted and compiled like ours."""
    model, size = workload.model, workload.size
    layer = keras_layer(model, size)
    values = to_keras(model, workload.params)
    # Keras' variable names and shapes are its own; fail loudly here if they ever change.
    names = ("kernel", "recurrent_kernel", "bias") * (2 if model == "bilstm" else 1)
    got = [(v.path.rsplit("/", 1)[-1], tuple(v.shape)) for v in layer.trainable_variables]
    want = [(n, tuple(a.shape)) for n, a in zip(names, values, strict=True)]
    if got != want:
        raise RuntimeError(f"Keras {model} variables changed: {got} vs {want}")
    # The non-trainable ones are the dropout seed generators' states (dropout is off): constants.
    fixed = [v.value for v in layer.non_trainable_variables]

    def forward(trainable: Any, x: Any) -> Any:
        with jax.numpy_rank_promotion("allow"):  # as in keras_layer
            return layer.stateless_call(trainable, fixed, x)[0]

    return jax_contender(
        "keras",
        "keras",
        {},
        forward,
        values,
        jnp.asarray(workload.xs),
        lambda grads: from_keras(model, grads),
    )


def peer_contender(peer: str, workload: Workload) -> Contender:
    if peer == "keras":
        return keras_contender(workload)
    if peer == "equinox":
        return equinox_contender(workload)
    if peer == "flax":
        return flax_contender(workload)
    if peer == "torch":
        return torch_contender(workload)
    raise ValueError(f"peer must be one of {PEERS}, got {peer!r}")
