"""PyTorch interop: run ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` weights on lstm_jax, and back.

torch is imported inside the functions only, so importing this module (or ``lstm_jax``) never
imports torch.

Weight layout. torch stores ``weight_ih_l{k}[_reverse]: [gates, input]`` for ``W x``; lstm_jax
stores ``w_ih: [input, gates]`` for ``x @ W``, in the same gate order (LSTM ``i, f, g, o``; GRU
``r, z, n``), so ``w_ih = weight_ih.T`` and ``w_hh = weight_hh.T``; an LSTM with ``proj_size >
0`` becomes ``lstmp`` cells with ``w_hr = weight_hr.T``. torch's two biases only add, except the
GRU's recurrent candidate bias ``b_hn``, which sits inside ``r * (h W_hn + b_hn)``::

    LSTM, RNN:  b = b_ih + b_hh
    GRU:        b = b_ih + (b_hr | b_hz | 0),   b_hn = b_hh[2H:]

``to_torch`` goes the other way: the combined bias goes to ``bias_ih`` and ``bias_hh`` is zero,
except the GRU's ``n`` block of ``bias_hh``, which holds ``b_hn``.

Parameters are a tuple with one entry per layer: the cell's params, or ``(forward, backward)``
for a bidirectional module, the layout of ``lstm_jax.stack(cell, num_layers,
bidirectional=...).init``. Layer ``k``'s backward direction is torch's ``_l{k}_reverse``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks
from lstm_jax._stack import Stack, stack
from lstm_jax.cells.base import Cell, check_params
from lstm_jax.cells.gru import GRUCell, GRUParams, gru
from lstm_jax.cells.lstm import LSTMCarry, LSTMCell, LSTMParams, lstm
from lstm_jax.cells.lstmp import LSTMPCell, LSTMPParams
from lstm_jax.cells.simple import SimpleRNNCell, SimpleRNNParams, simple_rnn
from lstm_jax.typing import Array, PyTree

# torch's module class name for each cell class that has a torch counterpart.
_TORCH_NAMES = {LSTMCell: "LSTM", LSTMPCell: "LSTM", GRUCell: "GRU", SimpleRNNCell: "RNN"}
_PARAMS_TYPES = {
    LSTMCell: LSTMParams,
    LSTMPCell: LSTMPParams,
    GRUCell: GRUParams,
    SimpleRNNCell: SimpleRNNParams,
}
# The cells whose carry is LSTMCarry(h, c): torch's (h_0, c_0).
_WITH_CELL_STATE = (LSTMCell, LSTMPCell)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a test dependency
        raise ImportError(
            "lstm_jax.interop.torch needs PyTorch: pip install 'lstm-jax[test]' (or torch)"
        ) from e
    return torch


@dataclasses.dataclass(frozen=True)
class TorchStyleRNN:
    """The ``apply`` of ``from_torch``: a torch RNN module's forward on lstm_jax parameters.

    Call it as ``apply(params, x, seq_lengths=None, initial_state=None)``; see ``__call__``.
    It holds only static configuration, so ``jax.jit(apply)`` works, and ``to_torch`` /
    ``to_torch_module`` accept it as the model description.

    Attributes:
      stack: the lstm_jax network (``stack.apply`` does all the work).
      batch_first: torch's ``batch_first``: ``x: [batch, time, input]`` rather than
        ``[time, batch, input]``.
    """

    stack: Stack
    batch_first: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.stack, Stack):
            raise TypeError(
                f"TorchStyleRNN: stack must be an lstm_jax.stack(...), got "
                f"{type(self.stack).__name__}"
            )
        _check_torch_expressible(self.stack, "TorchStyleRNN", "stack")

    @property
    def cell(self) -> Cell:
        return self.stack.cells[0]

    @property
    def num_directions(self) -> int:
        return 2 if self.stack.bidirectional else 1

    @property
    def _fn(self) -> str:
        return f"from_torch({_TORCH_NAMES[type(self.cell)]}) apply"

    def __call__(
        self,
        params: PyTree,
        x: Array,
        seq_lengths: Array | None = None,
        initial_state: Array | tuple[Array, Array] | None = None,
    ) -> tuple[Array, Any]:
        """The torch module's forward (in eval mode: no dropout).

        Args:
          params: one entry per layer (a ``(forward, backward)`` pair if bidirectional).
          x: ``[batch, time, input]`` if ``batch_first`` else ``[time, batch, input]``; or
            unbatched ``[time, input]``, like torch.
          seq_lengths: integers ``[batch]`` (``[]`` for unbatched input), each row's number of
            valid steps: the lengths given to ``pack_padded_sequence``. Outputs at and past a
            row's length are zero (``pad_packed_sequence(..., total_length=time)``), and the
            final states are those after each row's own last valid step (the backward
            direction: after reading back to the first element). Values are not checked (they
            may be traced): torch accepts ``1 <= length <= time``; here a length above ``time``
            acts as ``time`` and 0 leaves the state at ``initial_state``. None: every row is
            ``time`` long.
          initial_state: torch's ``hx``: ``h_0`` for GRU/RNN, ``(h_0, c_0)`` for LSTM, each
            ``[num_layers * num_directions, batch, hidden]`` (``[num_layers * num_directions,
            hidden]`` for unbatched input) whatever ``batch_first``, ``h_0`` with ``proj``
            features for an LSTM with ``proj_size``; zeros when None.

        Returns:
          ``(output, h_n)`` for GRU/RNN, ``(output, (h_n, c_n))`` for LSTM: ``output`` in the
          layout of ``x`` with ``num_directions * hidden`` features (forward then backward),
          ``h_n`` and ``c_n`` ``[num_layers * num_directions, batch, hidden]`` in torch's order
          (layer 0 forward, layer 0 backward, layer 1 forward, ...). With ``proj_size``,
          ``output`` and ``h_n`` have ``proj`` features where these say ``hidden``.
        """
        fn = self._fn
        _check_stack_params(self.stack, params, fn)
        input_size = self.cell.input_size(self._first(params))
        _checks.check_floating(fn, "x", x)
        layout = "[batch, time, input]" if self.batch_first else "[time, batch, input]"
        if x.ndim not in (2, 3) or x.shape[-1] != input_size:
            raise ValueError(
                f"{fn}: x must have shape {layout} (or [time, input] unbatched) with "
                f"input={input_size} (from params), got shape {tuple(x.shape)}"
            )
        batched = x.ndim == 3
        if batched:
            batch_shape = (x.shape[0],) if self.batch_first else (x.shape[1],)
        else:
            batch_shape = ()
        if seq_lengths is not None:
            seq_lengths = self._check_seq_lengths(seq_lengths, batch_shape, fn)
        carries = None
        if initial_state is not None:
            carries = self._initial_carries(initial_state, batch_shape, fn)

        final, ys = self.stack.apply(
            params,
            x,
            seq_lengths=seq_lengths,
            initial_carry=carries,
            time_major=not (batched and self.batch_first),
        )
        per_layer = final if self.stack.bidirectional else ((carry,) for carry in final)
        directions = [carry for layer in per_layer for carry in layer]
        if isinstance(self.cell, _WITH_CELL_STATE):
            h_n = jnp.stack([d.h for d in directions])
            c_n = jnp.stack([d.c for d in directions])
            return ys, (h_n, c_n)
        return ys, jnp.stack(directions)

    # ---- validation -----------------------------------------------------------------------
    def _first(self, params: PyTree) -> PyTree:
        return params[0][0] if self.stack.bidirectional else params[0]

    def _check_seq_lengths(self, seq_lengths: Any, batch_shape: tuple[int, ...], fn: str) -> Array:
        if isinstance(seq_lengths, list | tuple | int | np.integer):
            seq_lengths = jnp.asarray(seq_lengths)
        _checks.check_is_array(fn, "seq_lengths", seq_lengths)
        if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
            raise TypeError(
                f"{fn}: seq_lengths must have an integer dtype, got "
                f"{jnp.dtype(seq_lengths.dtype).name}"
            )
        if tuple(seq_lengths.shape) != batch_shape:
            raise ValueError(
                f"{fn}: seq_lengths must have shape {batch_shape} (one length per row of x), "
                f"got shape {tuple(seq_lengths.shape)}"
            )
        return seq_lengths

    def _initial_carries(
        self, initial_state: Any, batch_shape: tuple[int, ...], fn: str
    ) -> tuple[PyTree, ...]:
        is_lstm = isinstance(self.cell, _WITH_CELL_STATE)
        if is_lstm:
            if not isinstance(initial_state, tuple | list) or len(initial_state) != 2:
                raise TypeError(
                    f"{fn}: initial_state must be the pair (h_0, c_0) for an LSTM, got "
                    f"{type(initial_state).__name__}"
                    + (
                        f" of length {len(initial_state)}"
                        if isinstance(initial_state, tuple | list)
                        else ""
                    )
                )
            named = [
                ("initial_state[0] (h_0)", initial_state[0]),
                ("initial_state[1] (c_0)", initial_state[1]),
            ]
        else:
            named = [("initial_state (h_0)", initial_state)]
        n_states = self.stack.num_layers * self.num_directions
        # h has the projected width (output_size), c the hidden width.
        widths = [("proj" if isinstance(self.cell, LSTMPCell) else "hidden", self.cell.output_size)]
        widths.append(("hidden", self.cell.hidden_size))
        dtype = self.cell.resolved_carry_dtype()
        states = []
        for (name, s), (width_name, width) in zip(named, widths, strict=False):
            want = (n_states, *batch_shape, width)
            _checks.check_floating(fn, name, s)
            if tuple(s.shape) != want:
                raise ValueError(
                    f"{fn}: {name} must have shape {want} ([num_layers * num_directions, "
                    f"{'batch, ' if batch_shape else ''}{width_name}], torch's layout), got shape "
                    f"{tuple(s.shape)}"
                )
            states.append(s.astype(dtype))

        def carry(i: int) -> PyTree:
            return LSTMCarry(h=states[0][i], c=states[1][i]) if is_lstm else states[0][i]

        d = self.num_directions
        if self.stack.bidirectional:
            return tuple((carry(d * k), carry(d * k + 1)) for k in range(self.stack.num_layers))
        return tuple(carry(k) for k in range(self.stack.num_layers))


def _check_stack_params(model: Stack, params: PyTree, fn: str) -> None:
    """``params`` must be one entry per layer of ``model`` whose input sizes chain up."""
    n = model.num_layers
    if not isinstance(params, tuple | list) or _is_cell_params(params) or len(params) != n:
        raise TypeError(
            f"{fn}: params must be a tuple of {n} per-layer entries (num_layers), got "
            f"{type(params).__name__}"
            + (f" of length {len(params)}" if isinstance(params, tuple | list) else "")
        )
    for k, (cell, p) in enumerate(zip(model.cells, params, strict=True)):
        if model.bidirectional:
            if not isinstance(p, tuple | list) or _is_cell_params(p) or len(p) != 2:
                raise TypeError(
                    f"{fn}: params[{k}] must be a pair (forward, backward) for a bidirectional "
                    f"layer, got {type(p).__name__}"
                )
            entries = [(f"params[{k}][0]", p[0]), (f"params[{k}][1]", p[1])]
        else:
            entries = [(f"params[{k}]", p)]
        for name, q in entries:
            check_params(cell, q, fn, name)
            if k > 0 and cell.input_size(q) != model.layer_output_size(k - 1):
                raise ValueError(
                    f"{fn}: {name} must take layer {k - 1}'s output of width "
                    f"{model.layer_output_size(k - 1)} as input, got input size "
                    f"{cell.input_size(q)}"
                )


def _is_cell_params(p: Any) -> bool:
    return isinstance(p, LSTMParams | LSTMPParams | GRUParams | SimpleRNNParams)


# ---- torch -> lstm_jax --------------------------------------------------------------------------
def _to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor as a NumPy array of the same dtype (bfloat16 via ml_dtypes, as jax's)."""
    torch = _import_torch()
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        # torch cannot hand NumPy a bfloat16 array; float32 holds every bfloat16 value exactly.
        return t.float().numpy().astype(jnp.bfloat16)
    if t.dtype == torch.float64 and jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
        raise TypeError(
            "from_torch: module has float64 weights but jax_enable_x64 is off; enable it "
            "(jax.config.update('jax_enable_x64', True)) or convert the module with .float()"
        )
    return t.numpy()


def from_torch(module: Any) -> tuple[TorchStyleRNN, tuple[PyTree, ...]]:
    """Converts a ``torch.nn.LSTM``, ``GRU`` or ``RNN`` to ``(apply, params)``.

    Args:
      module: the torch module, any ``num_layers``, ``bidirectional``, ``batch_first``,
        ``bias``, ``dropout`` (below 1), (LSTM) ``proj_size`` and (RNN) ``nonlinearity``, on
        any device. An LSTM with ``proj_size > 0`` becomes a stack of ``lstmp`` cells.

    Returns:
      ``(apply, params)``: ``params`` one entry per layer (a ``(forward, backward)`` pair if
      bidirectional) in the module's dtype, the layout of ``apply.stack.init``;
      ``apply(params, x, seq_lengths=None, initial_state=None)`` returns what the module
      returns in eval mode (no dropout; see ``TorchStyleRNN.__call__``) and may be jitted.
      ``apply.stack`` is the equivalent lstm_jax network, the module's dropout included (it
      applies when ``apply.stack.apply`` is given a ``dropout_key``).

    Raises:
      TypeError: ``module`` is not one of the three classes.
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(module, nn.LSTM | nn.GRU | nn.RNN):
        raise TypeError(
            f"from_torch: module must be a torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN, got "
            f"{type(module).__name__}"
        )
    hidden, bias = module.hidden_size, module.bias
    dtype = jnp.dtype(_to_numpy(module.weight_ih_l0).dtype)
    if isinstance(module, nn.LSTM) and module.proj_size > 0:
        cell = LSTMPCell(hidden, module.proj_size, use_bias=bias, param_dtype=dtype)
    elif isinstance(module, nn.LSTM):
        cell = lstm(hidden, use_bias=bias, param_dtype=dtype)
    elif isinstance(module, nn.GRU):
        cell = gru(hidden, reset_after=True, use_bias=bias, param_dtype=dtype)
    else:
        cell = simple_rnn(hidden, activation=module.nonlinearity, use_bias=bias, param_dtype=dtype)
    # The stack keeps the module's dropout so that it describes the module (to_torch_module
    # rebuilds it); apply never passes a dropout_key, so it runs as torch's eval mode.
    model = stack(
        cell, module.num_layers, bidirectional=module.bidirectional, dropout=module.dropout
    )

    def direction(k: int, suffix: str) -> PyTree:
        # The arithmetic runs in NumPy: no device dispatch per weight, one transfer per leaf.
        def get(name: str) -> np.ndarray:
            return _to_numpy(getattr(module, f"{name}_l{k}{suffix}"))

        w_ih, w_hh = get("weight_ih").T, get("weight_hh").T
        b = b_hn = None
        if bias and isinstance(cell, GRUCell):
            b_ih, b_hh = get("bias_ih"), get("bias_hh")
            # b_hn stays apart: the reset gate multiplies it.
            b = np.concatenate([b_ih[: 2 * hidden] + b_hh[: 2 * hidden], b_ih[2 * hidden :]])
            b_hn = b_hh[2 * hidden :]
        elif bias:
            b = get("bias_ih") + get("bias_hh")
        leaves = [w_ih, w_hh, b] + ([b_hn] if isinstance(cell, GRUCell) else [])
        if isinstance(cell, LSTMPCell):
            leaves.append(get("weight_hr").T)
        params_type = _PARAMS_TYPES[type(cell)]
        return params_type(*(None if v is None else jnp.asarray(v) for v in leaves))

    params = []
    for k in range(module.num_layers):
        if module.bidirectional:
            params.append((direction(k, ""), direction(k, "_reverse")))
        else:
            params.append(direction(k, ""))
    return TorchStyleRNN(model, bool(module.batch_first)), tuple(params)


# ---- lstm_jax -> torch --------------------------------------------------------------------------
def _as_stack(params: PyTree, model: Any, fn: str) -> tuple[Stack, tuple[PyTree, ...], bool | None]:
    """Normalises ``model`` (Stack, Cell or TorchStyleRNN) to ``(stack, params, batch_first)``."""
    batch_first = None
    if isinstance(model, TorchStyleRNN):
        model, batch_first = model.stack, model.batch_first
    if isinstance(model, Cell):
        model, params = stack(model, 1), (params,)
    if not isinstance(model, Stack):
        raise TypeError(
            f"{fn}: model must be an lstm_jax cell, lstm_jax.stack(...) or the apply of "
            f"from_torch, got {type(model).__name__}"
        )
    _check_torch_expressible(model, fn)
    _check_stack_params(model, params, fn)
    return model, tuple(params), batch_first


def _check_torch_expressible(model: Stack, fn: str, name: str = "model") -> None:
    """``model`` must be a network that one torch.nn.LSTM/GRU/RNN computes."""
    first = model.cells[0]
    if type(first) not in _TORCH_NAMES:
        raise ValueError(
            f"{fn}: {name} must use lstm, lstmp, gru or simple_rnn cells (torch has no "
            f"{first.name})"
        )
    for k, cell in enumerate(model.cells):
        if (
            type(cell) is not type(first)
            or cell.hidden_size != first.hidden_size
            or cell.output_size != first.output_size
            or cell.use_bias != first.use_bias
            or getattr(cell, "activation", None) != getattr(first, "activation", None)
        ):
            raise ValueError(
                f"{fn}: {name} must use the same kind of cell, hidden_size, proj_size, use_bias "
                f"and activation in every layer (a torch module has one of each), but layer {k} "
                f"has {cell!r} and layer 0 {first!r}"
            )
    if isinstance(first, GRUCell) and not first.reset_after:
        raise ValueError(
            f"{fn}: {name} must use gru(..., reset_after=True): torch's GRU applies the reset "
            f"gate after the recurrent matmul"
        )
    if model.residual:
        raise ValueError(f"{fn}: {name} must have residual=False: torch has no residual stacks")
    if model.bidirectional and model.merge != "concat":
        raise ValueError(
            f"{fn}: {name} must merge directions with 'concat' as torch does, got "
            f"merge={model.merge!r}"
        )


def _torch_dtype(dtype: Any, fn: str) -> Any:
    torch = _import_torch()
    table = {
        jnp.dtype(jnp.float16): torch.float16,
        jnp.dtype(jnp.bfloat16): torch.bfloat16,
        jnp.dtype(jnp.float32): torch.float32,
        jnp.dtype(jnp.float64): torch.float64,
    }
    if jnp.dtype(dtype) not in table:
        raise TypeError(f"{fn}: params have dtype {jnp.dtype(dtype).name}, which torch lacks")
    return table[jnp.dtype(dtype)]


def _to_tensor(x: Array, dtype: Any) -> Any:
    torch = _import_torch()
    if x.dtype == jnp.bfloat16:
        # NumPy has no bfloat16 torch can read; float32 holds every bfloat16 value exactly.
        x = x.astype(jnp.float32)
    # A fresh, writable, contiguous copy: torch warns on read-only NumPy views of jax arrays.
    return torch.from_numpy(np.array(x, copy=True, order="C")).to(dtype)


def to_torch(params: PyTree, model: Any) -> dict[str, Any]:
    """Our parameters as the ``state_dict`` of the matching torch module.

    Args:
      params: a cell's params (when ``model`` is a cell), or one entry per layer of a stack
        (a ``(forward, backward)`` pair per layer if bidirectional).
      model: the description of the network: an ``lstm``, ``lstmp``, ``gru``
        (``reset_after=True``) or ``simple_rnn`` cell (one layer); an ``lstm_jax.stack`` of
        one of those (the same hidden size, ``proj_size``, ``use_bias`` and activation in every
        layer, ``merge="concat"``, no residuals); or the ``apply`` returned by ``from_torch``.

    Returns:
      ``{"weight_ih_l0": ..., "weight_hh_l0": ..., "bias_ih_l0": ..., "bias_hh_l0": ...,
      ...}`` in torch's order (``_reverse`` for backward directions; ``weight_hr_l{k}`` after
      the biases for ``lstmp``), tensors on the CPU in the params' dtype. The combined bias
      goes to ``bias_ih`` and ``bias_hh`` is zero, except the GRU's ``n`` block of
      ``bias_hh``, which holds ``b_hn``.
    """
    fn = "to_torch"
    model, params, _ = _as_stack(params, model, fn)
    first = params[0][0] if model.bidirectional else params[0]
    dtype = _torch_dtype(first.w_ih.dtype, fn)
    hidden = model.cells[0].hidden_size
    state = {}
    for k, p in enumerate(params):
        for suffix, q in zip(("", "_reverse"), p if model.bidirectional else (p,), strict=False):
            state[f"weight_ih_l{k}{suffix}"] = _to_tensor(q.w_ih.T, dtype)
            state[f"weight_hh_l{k}{suffix}"] = _to_tensor(q.w_hh.T, dtype)
            if q.b is not None:
                b_hh = jnp.zeros_like(q.b)
                if isinstance(q, GRUParams):
                    b_hh = b_hh.at[2 * hidden :].set(q.b_hn)
                state[f"bias_ih_l{k}{suffix}"] = _to_tensor(q.b, dtype)
                state[f"bias_hh_l{k}{suffix}"] = _to_tensor(b_hh, dtype)
            if isinstance(q, LSTMPParams):
                state[f"weight_hr_l{k}{suffix}"] = _to_tensor(q.w_hr.T, dtype)
    return state


def to_torch_module(params: PyTree, model: Any, *, batch_first: bool | None = None) -> Any:
    """Builds the matching ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` with our weights loaded.

    Args:
      params, model: as for ``to_torch``. A stack's ``dropout`` becomes the module's.
      batch_first: the module's ``batch_first``; None takes it from ``model`` when that is the
        apply of ``from_torch``, else False.

    Returns:
      A new module on the CPU in the params' dtype (in training mode, as torch builds it; call
      ``.eval()`` before comparing outputs when ``dropout > 0``).
    """
    fn = "to_torch_module"
    torch = _import_torch()
    stack_model, stack_params, model_batch_first = _as_stack(params, model, fn)
    if batch_first is None:
        batch_first = bool(model_batch_first)
    if not isinstance(batch_first, bool):
        raise TypeError(f"{fn}: batch_first must be a bool or None, got {batch_first!r}")
    cell = stack_model.cells[0]
    first = stack_params[0][0] if stack_model.bidirectional else stack_params[0]
    options = dict(
        input_size=cell.input_size(first),
        hidden_size=cell.hidden_size,
        num_layers=stack_model.num_layers,
        bias=cell.use_bias,
        batch_first=batch_first,
        dropout=stack_model.dropout,
        bidirectional=stack_model.bidirectional,
        dtype=_torch_dtype(first.w_ih.dtype, fn),
    )
    if isinstance(cell, LSTMPCell):
        module = torch.nn.LSTM(proj_size=cell.proj_size, **options)
    elif isinstance(cell, LSTMCell):
        module = torch.nn.LSTM(**options)
    elif isinstance(cell, GRUCell):
        module = torch.nn.GRU(**options)
    else:
        module = torch.nn.RNN(nonlinearity=cell.activation, **options)
    module.load_state_dict(to_torch(stack_params, stack_model))
    return module
