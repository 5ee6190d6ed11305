# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Speed and scale
#
# The same LSTM, fast: `jax.jit`, `jax.vmap`, the fused bidirectional scan, the knobs of
# `lstm_jax.unroll` (`hoist_projection`, `custom_vjp`, `checkpoint_every`), bfloat16, and data
# parallelism across devices with `jax.sharding`.
#
# Every number here is measured when you run the notebook, on your machine: timings are medians
# of a few runs after a warm-up call (which compiles). CPU and accelerator results differ, often
# in direction; the text says where. `LSTM_JAX_NOTEBOOK_QUICK=1` uses tiny shapes (the test
# suite sets it), so its timings mean little.
#
# **Several devices on a CPU.** JAX can split the host CPU into several devices, which is how
# to try the sharding section on a laptop. The flag must be set *before* JAX is imported (restart
# the kernel after changing it):
#
# ```
# XLA_FLAGS=--xla_force_host_platform_device_count=8 jupyter lab
# ```
#
# The notebook uses however many devices there are, one included.

# %%
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import lstm_jax
from lstm_jax import training

QUICK = os.environ.get("LSTM_JAX_NOTEBOOK_QUICK", "0") == "1"
BATCH, TIME, INPUT, HIDDEN = (4, 16, 8, 16) if QUICK else (32, 128, 64, 256)
REPEATS = 2 if QUICK else 10
print(f"backend {jax.default_backend()}, {jax.device_count()} device(s): {jax.devices()}")
print(f"shapes: batch {BATCH}, time {TIME}, input {INPUT}, hidden {HIDDEN}")


def bench(fn, *args):
    """Median seconds per call of ``fn(*args)`` after one warm-up call (which compiles)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


cell = lstm_jax.lstm(HIDDEN)
params = cell.init(jax.random.key(0), INPUT)
xs = jax.random.normal(jax.random.key(1), (BATCH, TIME, INPUT))

# %% [markdown]
# ## `jax.jit`
#
# Without `jit`, each operation is dispatched from Python one by one: a Python loop over
# `cell.step` pays that overhead for every operation of every time step. `lstm_jax.unroll` is one
# `jax.lax.scan`, and under `jax.jit` the whole sequence becomes one compiled program.

# %%


def python_loop(params, xs):
    carry = cell.initial_carry(xs.shape[0])
    ys = []
    for t in range(xs.shape[1]):
        carry, y = cell.step(params, carry, xs[:, t])
        ys.append(y)
    return jnp.stack(ys, axis=1)


scan_jit = jax.jit(lambda p, x: lstm_jax.unroll(cell, p, x)[1])
np.testing.assert_allclose(python_loop(params, xs), scan_jit(params, xs), rtol=1e-4, atol=1e-5)
t_loop, t_jit = bench(python_loop, params, xs), bench(scan_jit, params, xs)
print(f"eager Python loop {1e3 * t_loop:8.2f} ms")
print(f"jit(unroll)       {1e3 * t_jit:8.2f} ms   ({t_loop / t_jit:.0f}x faster)")

# %% [markdown]
# Cells are static pytrees (frozen dataclasses with no array leaves), so a cell can be passed
# straight through `jax.jit` as an argument, and two cells with the same configuration hit the
# same compiled function.
#
# ## `jax.vmap`
#
# `unroll` accepts any number of batch dimensions, none included, so a function written for
# *one* sequence `[time, input]` can be batched with `jax.vmap`, and `vmap` of `grad` gives
# per-example gradients (for gradient-norm clipping per example, or influence estimates) in one
# call.

# %%


def one_sequence(params, x):  # x: [time, input]
    return lstm_jax.unroll(cell, params, x)[1]  # [time, hidden]


ys_vmap = jax.vmap(one_sequence, in_axes=(None, 0))(params, xs)
np.testing.assert_allclose(ys_vmap, scan_jit(params, xs), rtol=1e-4, atol=1e-5)


def sequence_loss(params, x):
    return jnp.mean(one_sequence(params, x)[-1] ** 2)


per_example = jax.jit(jax.vmap(jax.grad(sequence_loss), in_axes=(None, 0)))
grads = per_example(params, xs)
norms = jnp.sqrt(
    sum(jnp.sum(g**2, axis=tuple(range(1, g.ndim))) for g in jax.tree_util.tree_leaves(grads))
)
print("per-example gradient norms:", np.asarray(norms[:4]).round(4), "...")
print(f"per-example gradients of {BATCH} sequences: {1e3 * bench(per_example, params, xs):.2f} ms")

# %% [markdown]
# ## The fused bidirectional scan
#
# A bidirectional layer is two recurrences. Run as two scans, that is `2 * time` sequential
# steps. `lstm_jax.bidirectional(..., fused=True)` stacks both directions' weights on a leading
# axis and advances both in every step of *one* scan (the backward direction reads time
# `time - 1 - s` at step `s`): `time` sequential steps, each doing twice the work. That wins when
# the per-step overhead dominates (small batches); with large batches the two plain matmuls can
# be faster than the batched one. `fused=None` (the default) picks by batch size.

# %%
params_b = cell.init(jax.random.key(2), INPUT)
for batch in (2, BATCH) if QUICK else (4, 64):
    x = jax.random.normal(jax.random.key(3), (batch, TIME, INPUT))
    timing = {}
    for fused in (False, True):
        bidi = jax.jit(lambda p, x, fused=fused: lstm_jax.bidirectional(cell, p, x, fused=fused)[1])
        timing[fused] = bench(bidi, (params, params_b), x)
    print(
        f"batch {batch:3d}: two scans {1e3 * timing[False]:7.2f} ms, fused "
        f"{1e3 * timing[True]:7.2f} ms ({timing[False] / timing[True]:.2f}x)"
    )

# %% [markdown]
# ## The knobs of `unroll`
#
# * `hoist_projection`: compute `x @ w_ih + b` for all time steps in one big matmul before the
#   scan (True, the cuDNN way, best on GPU/TPU) or inside each step (False, measured faster on
#   XLA:CPU). The default (None) picks by backend.
# * `custom_vjp` (default True): a cuDNN-style backward pass. Only the recurrent part is
#   propagated step by step; the weight gradients become single large matmuls over all time
#   steps. `custom_vjp=False` differentiates the scan with plain autodiff (which forward-mode
#   `jax.jvp` needs).
# * `checkpoint_every=k`: for long sequences, store only the carries every `k` steps in the
#   forward pass and recompute each chunk in the backward pass: activation memory grows as
#   `time / k + k` instead of `time` (`k ~ sqrt(time)` is best), at the cost of one extra forward
#   pass.
# * `lanes`: split the batch rows into independent chains per step, which XLA:CPU may run on
#   separate cores; faster on some machines and slower on others, so it is off (1) unless asked.
#
# Forward plus backward times, and the compiler's own estimate of the temporary memory each
# training step needs:

# %%


def train_step_fn(**options):
    def loss(params, xs):
        _, ys = lstm_jax.unroll(cell, params, xs, **options)
        return jnp.mean(ys**2)

    return jax.jit(jax.grad(loss))


def temp_bytes(fn, *args):
    try:
        analysis = fn.lower(*args).compile().memory_analysis()
        return analysis.temp_size_in_bytes if analysis is not None else None
    except (NotImplementedError, AttributeError):  # not every backend reports it
        return None


long_xs = jax.random.normal(jax.random.key(4), (BATCH, 4 * TIME, INPUT))
k = int(np.sqrt(long_xs.shape[1]))
variants = {
    "defaults": {},
    "hoist_projection=True": {"hoist_projection": True},
    "hoist_projection=False": {"hoist_projection": False},
    "custom_vjp=False": {"custom_vjp": False},
    f"checkpoint_every={k}": {"checkpoint_every": k},
}
print(f"forward + backward, time = {long_xs.shape[1]}")
for name, options in variants.items():
    fn = train_step_fn(**options)
    seconds = bench(fn, params, long_xs)
    memory = temp_bytes(fn, params, long_xs)
    memory = "n/a" if memory is None else f"{memory / 2**20:7.1f} MiB"
    print(f"  {name:<24} {1e3 * seconds:8.2f} ms   temporaries {memory}")

# %% [markdown]
# ## bfloat16
#
# Three dtypes, set on the cell: `param_dtype` (how parameters are stored, float32 by default),
# `dtype` (what the matmuls compute in) and `carry_dtype` (the state `h`, `c`; the parameter
# dtype by default). `lstm(H, dtype=jnp.bfloat16)` is mixed precision: float32 parameters and
# cell state, bf16 matmul inputs, accumulation and gate arithmetic in float32. Outputs come back
# in bf16. The cell state stays float32 because it is a running sum over the whole sequence:
# rounding it to bf16's 8 bits of mantissa at every step would drift.
#
# On GPUs and TPUs bf16 matmuls are several times faster than float32 ones; on most CPUs they
# are not (there may be no bf16 hardware, and conversions cost), so expect no gain here on CPU.

# %%
bf16_cell = lstm_jax.lstm(HIDDEN, dtype=jnp.bfloat16)
carry16, ys16 = jax.jit(lambda p, x: lstm_jax.unroll(bf16_cell, p, x))(params, xs)
carry32, ys32 = jax.jit(lambda p, x: lstm_jax.unroll(cell, p, x))(params, xs)
print("outputs", ys16.dtype, " cell state", carry16.c.dtype, " params", params.w_ih.dtype)
print(f"max |bf16 - f32| over outputs: {float(jnp.abs(ys16.astype(jnp.float32) - ys32).max()):.4f}")

t32 = bench(jax.jit(lambda p, x: lstm_jax.unroll(cell, p, x)[1]), params, xs)
t16 = bench(jax.jit(lambda p, x: lstm_jax.unroll(bf16_cell, p, x)[1]), params, xs)
print(
    f"forward: float32 {1e3 * t32:.2f} ms, bf16 compute {1e3 * t16:.2f} ms on "
    f"{jax.default_backend()}"
)

# Parameters stored in bf16 as well (half the memory), with the carry kept in float32. The
# orthogonal initialiser needs a QR decomposition, which XLA:CPU has no bf16 kernel for, so we
# initialise in float32 and cast.
all16 = lstm_jax.lstm(HIDDEN, param_dtype=jnp.bfloat16, carry_dtype=jnp.float32)
p16 = jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), params)
_, ys_all16 = jax.jit(lambda p, x: lstm_jax.unroll(all16, p, x))(p16, xs)
print(
    "bf16 params:",
    p16.w_hh.dtype,
    " carry:",
    all16.initial_carry(2).c.dtype,
    f" max |error| vs float32: {float(jnp.abs(ys_all16.astype(jnp.float32) - ys32).max()):.4f}",
)

# %% [markdown]
# ## Data parallelism across devices
#
# `lstm_jax.training` builds a one-axis mesh named `"data"` over the devices, splits each batch
# along its leading axis across it, and replicates the train state. `jax.jit` sees the
# shardings and inserts the gradient all-reduce itself, so the train step is the *same code* on
# one device and on eight. The global batch must divide evenly among the devices.

# %%
mesh = training.make_mesh()  # all devices; make_mesh(2) takes the first two
n_devices = mesh.devices.size
global_batch = 8 * n_devices
print(f"mesh over {n_devices} device(s), global batch {global_batch}")


def loss_fn(params, batch, key):
    del key
    _, ys = lstm_jax.unroll(cell, params["rnn"], batch["x"])
    prediction = ys[:, -1] @ params["w"]
    return jnp.mean((prediction - batch["y"]) ** 2)


model = {"rnn": params, "w": jnp.zeros((HIDDEN,))}
optimizer = training.make_optimizer(1e-3)
state = training.create_train_state(model, optimizer, key=0)
shardings = training.state_shardings(state, mesh, optimizer)
state = training.place_state(state, shardings)
train_step = training.make_train_step(loss_fn, optimizer, state_sharding=shardings)

batch = {
    "x": jax.random.normal(jax.random.key(5), (global_batch, TIME, INPUT)),
    "y": jax.random.normal(jax.random.key(6), (global_batch,)),
}
batch = training.shard_batch(batch, mesh)
print("batch['x'] is split as", [tuple(s.data.shape) for s in batch["x"].addressable_shards])
print(
    "parameters are",
    "replicated" if state.params["rnn"].w_hh.sharding.is_fully_replicated else "sharded",
)

state, metrics = train_step(state, batch)
print(
    f"one data-parallel step: loss {float(metrics['loss']):.4f}, "
    f"{1e3 * bench(lambda s, b: train_step(s, b)[1]['loss'], state, batch):.2f} ms"
)

# %% [markdown]
# The same loop scales to several hosts: call `jax.distributed.initialize()` first, build the
# mesh over all hosts' devices, and give `shard_batch` each host's own rows; see
# `lstm_jax/training/sharding.py` and `experiments/README.md`. The experiment scripts take
# `--devices N`.
#
# ## Summary
#
# | knob | where | when it helps |
# |---|---|---|
# | `jax.jit` | around your step | always: one compiled program instead of per-op dispatch |
# | `jax.vmap` | per-sequence code | batching it; per-example gradients |
# | `fused=True` | `bidirectional` | forward-only at small batches (default: two scans) |
# | `hoist_projection` | `unroll`, `bidirectional`, `stack` | True on GPU/TPU, False on CPU |
# | `custom_vjp` | same | on by default: faster backward pass |
# | `checkpoint_every` | same | long sequences that run out of memory in training |
# | `lanes` | same | measure it: several cores and a batch that splits |
# | `dtype=jnp.bfloat16` | the cell | GPU/TPU matmul throughput; the cell state stays float32 |
# | `make_mesh` + `shard_batch` | `lstm_jax.training` | several devices: data parallelism |
