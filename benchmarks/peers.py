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

torch, Flax and Equinox are imported inside the functions: importing this module costs none.
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

# Equinox is a benchmark extra: a peer only where it is installed.
PEERS = ("flax", "torch") + (("equinox",) if importlib.util.find_spec("equinox") else ())

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


def peer_contender(peer: str, workload: Workload) -> Contender:
    if peer == "equinox":
        return equinox_contender(workload)
    if peer == "flax":
        return flax_contender(workload)
    if peer == "torch":
        return torch_contender(workload)
    raise ValueError(f"peer must be one of {PEERS}, got {peer!r}")
