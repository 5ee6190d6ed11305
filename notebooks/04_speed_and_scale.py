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
# The same LSTM, fast: `jax.jit`, `jax.vmap`, how the loop runs (`impl=`: the plain scan, the
# split backward pass, chunked rematerialisation, and `"auto"`, which picks per backend),
# forward-mode differentiation, bfloat16, and data parallelism across devices with
# `jax.sharding`.
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


cell = lstm_jax.LSTMCell(HIDDEN)
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
# ## How the loop runs: `impl`
#
# `unroll`, `bidirectional` and `stack(...).apply` take one setting about *how* the recurrence
# runs, `impl`. It never changes a number, only speed and memory:
#
# * `"scan"`: one `jax.lax.scan`, differentiated by JAX as it is. Autodiff of a scan computes,
#   inside the backward loop at every step, the input gradient and both weight gradients, adding
#   into `[input, gates]` and `[hidden, gates]` accumulators that stream through memory at every
#   step.
# * `"split"`: the same forward pass with a cuDNN-style derivative. Only `dh = dhh @ W_hh^T` and
#   the step's elementwise part stay in the backward loop; the weight and input gradients become
#   single large matmuls over all `time * batch` rows after it. It is written as a custom JVP,
#   so forward mode works too.
# * `"chunked"`: for long sequences, chunks of `every` steps under `jax.checkpoint` (each run by
#   `"split"` unless `inner="scan"`): the backward pass recomputes each chunk from the carry at
#   its start, so training memory grows as `time / every + every` instead of `time`
#   (`every = ceil(sqrt(time))` by default), for one extra forward pass.
# * `"auto"` (the default): one of these per backend, from the measurements committed in
#   `benchmarks/results/` (`lstm_jax.impl.AUTO`); a backend without a measurement gets `"scan"`.
#
# The classes take options, which also leave the numbers alone: `lstm_jax.Scan(unroll=1,
# hoist=False)` and `lstm_jax.Split(...)` (`unroll` steps per loop iteration; `hoist=True`
# computes `x @ w_ih + b` for all steps in one matmul before the loop, the cuDNN way), and
# `lstm_jax.Chunked(every=None, inner="split")`.

# %%
print(f"on {jax.default_backend()}, impl='auto' runs {lstm_jax.impl.resolve('auto')}")


def train_step_fn(impl):
    def loss(params, xs):
        _, ys = lstm_jax.unroll(cell, params, xs, impl=impl)
        return jnp.mean(ys**2)

    return jax.jit(jax.grad(loss))


def forward_fn(impl):
    return jax.jit(lambda p, x: lstm_jax.unroll(cell, p, x, impl=impl)[1])


def temp_bytes(fn, *args):
    try:
        analysis = fn.lower(*args).compile().memory_analysis()
        return analysis.temp_size_in_bytes if analysis is not None else None
    except (NotImplementedError, AttributeError):  # not every backend reports it
        return None


def mib(n):
    return "    n/a" if n is None else f"{n / 2**20:7.1f}"


long_xs = jax.random.normal(jax.random.key(4), (BATCH, 4 * TIME, INPUT))
impls = {
    "auto": "auto",
    "scan": "scan",
    "split": "split",
    "chunked": "chunked",
    "Scan(hoist=True)": lstm_jax.Scan(hoist=True),
    "Split(hoist=True)": lstm_jax.Split(hoist=True),
}
reference_grads = train_step_fn("scan")(params, long_xs)
scale = max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(reference_grads))
print(f"time = {long_xs.shape[1]}, batch {BATCH}; training step = forward + backward")
print(f"  {'impl':<18} {'forward ms':>10} {'training ms':>12} {'temporaries MiB':>16}  grad diff")
for name, impl in impls.items():
    forward, step = forward_fn(impl), train_step_fn(impl)
    grads = step(params, long_xs)
    leaves = zip(
        jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(reference_grads), strict=True
    )
    diff = max(float(jnp.abs(a - b).max()) for a, b in leaves)
    assert diff <= 1e-3 * scale, (name, diff, scale)  # the same gradients, whatever the impl
    t_forward, t_step = bench(forward, params, long_xs), bench(step, params, long_xs)
    print(
        f"  {name:<18} {1e3 * t_forward:10.2f} {1e3 * t_step:12.2f} "
        f"{mib(temp_bytes(step, params, long_xs)):>16}  {diff / scale:.1e}"
    )

# %% [markdown]
# How to read it (the numbers are this run's, on this machine): `"scan"` and `"split"` run the
# same forward loop, so expect their forward times to agree within noise; the training step is
# where they differ. `"chunked"` pays for its memory saving with one more forward pass, and its
# temporaries (the compiler's own estimate of a training step's scratch memory) are what it is
# for: they grow with `sqrt(time)`, the others' with `time`. The last column is the largest
# gradient difference from `"scan"`, relative to the largest gradient: rounding only.
#
# The same `impl` goes to `bidirectional` (both directions run as two loops with it) and to
# `stack(...).apply` (every layer). Earlier versions had two more settings that are gone: a
# fused single-scan bidirectional layer and `lanes` (batch rows split into independent chains
# per step); neither won stably in measurements, which `benchmarks/README.md` keeps.
#
# ### Forward mode
#
# Every `impl`, the default included, supports forward-mode differentiation (`jax.jvp`,
# `jax.jacfwd`) as well as `jax.grad`. A directional derivative from `jax.jvp` equals the
# gradient's dot product with that direction:

# %%


def mean_square(params):
    return jnp.mean(lstm_jax.unroll(cell, params, xs)[1] ** 2)


leaves, treedef = jax.tree_util.tree_flatten(params)
keys = jax.random.split(jax.random.key(7), len(leaves))
direction = jax.tree_util.tree_unflatten(
    treedef, [jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves, strict=True)]
)
_, forward_mode = jax.jvp(mean_square, (params,), (direction,))
reverse_mode = sum(
    jnp.vdot(g, d)
    for g, d in zip(
        jax.tree_util.tree_leaves(jax.grad(mean_square)(params)),
        jax.tree_util.tree_leaves(direction),
        strict=True,
    )
)
print(f"jvp: {float(forward_mode):.6f}   grad . direction: {float(reverse_mode):.6f}")
np.testing.assert_allclose(forward_mode, reverse_mode, rtol=1e-4)

# %% [markdown]
# ## bfloat16
#
# Three dtypes, set on the cell: `param_dtype` (how parameters are stored, float32 by default),
# `dtype` (what the matmuls compute in) and `carry_dtype` (the state `h`, `c`; the parameter
# dtype by default). `LSTMCell(H, dtype=jnp.bfloat16)` is mixed precision: float32 parameters and
# cell state, bf16 matmul inputs, accumulation and gate arithmetic in float32. Outputs come back
# in bf16. The cell state stays float32 because it is a running sum over the whole sequence:
# rounding it to bf16's 8 bits of mantissa at every step would drift.
#
# On GPUs and TPUs bf16 matmuls are several times faster than float32 ones; on most CPUs they
# are not (there may be no bf16 hardware, and conversions cost), so expect no gain here on CPU.

# %%
bf16_cell = lstm_jax.LSTMCell(HIDDEN, dtype=jnp.bfloat16)
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
all16 = lstm_jax.LSTMCell(HIDDEN, param_dtype=jnp.bfloat16, carry_dtype=jnp.float32)
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
# | setting | where | when it helps |
# |---|---|---|
# | `jax.jit` | around your step | always: one compiled program instead of per-op dispatch |
# | `jax.vmap` | per-sequence code | batching it; per-example gradients |
# | `impl="auto"` (default) | `unroll`, `bidirectional`, `stack` | the measured choice per backend |
# | `impl="split"` | same | training: only the recurrent part stays in the backward loop |
# | `impl="chunked"` | same | long sequences that run out of memory in training |
# | `Scan(hoist=True)` | same | measure it: one input matmul before the loop |
# | `dtype=jnp.bfloat16` | the cell | GPU/TPU matmul throughput; the cell state stays float32 |
# | `make_mesh` + `shard_batch` | `lstm_jax.training` | several devices: data parallelism |
