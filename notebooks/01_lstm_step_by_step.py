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
# # 1. The LSTM step by step
#
# An LSTM reads a sequence one element at a time and keeps two vectors between steps: the
# hidden state `h` (its output) and the **cell state** `c` (its memory). Three gates, each a
# number between 0 and 1 per unit, decide what happens to the memory at every step:
#
# | gate | letter | question it answers |
# |---|---|---|
# | forget | `f` | how much of the old memory `c(t-1)` to keep |
# | input | `i` | how much of the new candidate `g` to write |
# | output | `o` | how much of the memory to show as `h` |
#
# ```
# i, f, g, o = split(x @ w_ih + b + h @ w_hh, 4)
# i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
# c = f * c + i * g
# h = o * tanh(c)
# ```
#
# This notebook
#
# 1. computes one LSTM step by hand and checks it against `lstm_jax`;
# 2. trains a small LSTM on **real text** (Python's own help pages, shipped with the standard
#    library) to answer, at every character, "am I inside parentheses?", a question whose
#    answer must be *remembered* from the opening `(`;
# 3. looks inside it with `lstm_jax.gates(...)`: each gate's activation over time and the cell
#    state that carries the answer;
# 4. does the same for a plain (Elman) RNN and measures, with gradients, why it forgets.
#
# Run it as a notebook (`jupytext --to notebook notebooks/01_lstm_step_by_step.py`, or open the
# `.py` file directly with the jupytext Jupyter extension) or as a script. The test suite runs it
# with `LSTM_JAX_NOTEBOOK_QUICK=1`, which shrinks every setting; the full version takes a couple
# of minutes on a laptop CPU.

# %%
import itertools
import os
import pydoc_data.topics
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import lstm_jax
from lstm_jax import training

QUICK = os.environ.get("LSTM_JAX_NOTEBOOK_QUICK", "0") == "1"

SEQ_LEN = 48 if QUICK else 128  # characters per training window
HIDDEN = 8 if QUICK else 24
BATCH = 8 if QUICK else 32
STEPS = 15 if QUICK else 1500
print(f"QUICK={QUICK}: windows of {SEQ_LEN} chars, hidden {HIDDEN}, {STEPS} steps")

# %% [markdown]
# ## One step by hand
#
# `lstm_jax.LSTMCell(hidden)` (also called `lstm_jax.lstm`) describes a cell;
# `cell.init(key, input_size)` makes its parameters, a NamedTuple laid out like PyTorch's (gates
# in the order `i, f, g, o`) but stored for `x @ W`: `w_ih: [input, 4*hidden]`,
# `w_hh: [hidden, 4*hidden]`, `b: [4*hidden]`. The carry is `LSTMCarry(h, c)`.

# %%
cell = lstm_jax.LSTMCell(3)
params = cell.init(jax.random.key(0), 2)
print({name: None if p is None else p.shape for name, p in params._asdict().items()})

carry = lstm_jax.LSTMCarry(h=jnp.array([0.1, -0.2, 0.3]), c=jnp.array([0.5, 0.0, -1.0]))
x = jnp.array([1.0, -1.0])
new_carry, y = cell.step(params, carry, x)

# The same step in NumPy, straight from the equations.
w_ih, w_hh, b = (np.asarray(p) for p in params)
h_prev, c_prev = np.asarray(carry.h), np.asarray(carry.c)
pre = np.asarray(x) @ w_ih + b + h_prev @ w_hh
i, f, g, o = np.split(pre, 4)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
c_new = f * c_prev + i * g
h_new = o * np.tanh(c_new)
print("forget gate", f.round(3), " input gate", i.round(3), " output gate", o.round(3))
print("c by hand  ", c_new.round(5), " lstm_jax", np.asarray(new_carry.c).round(5))
np.testing.assert_allclose(np.asarray(new_carry.c), c_new, rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(np.asarray(new_carry.h), h_new, rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(np.asarray(y), h_new, rtol=1e-5, atol=1e-6)

# %% [markdown]
# The forget bias starts at +1 (`forget_bias=1.0`, the usual trick), so an untrained LSTM
# already keeps about `sigmoid(1) = 0.73` of its memory per step.
#
# ## A real sequence: "am I inside parentheses?"
#
# `pydoc_data.topics` holds the text of `help("if")`, `help("assignment")` and ~80 more
# pages: about 465,000 characters of English with plenty of parenthetical remarks (like this
# one). At every character the network must say whether an opening parenthesis is still
# open. Nothing local tells it: the character `e` inside a parenthesis looks like any other
# `e`, so the answer has to be **stored** when `(` goes by and **kept** until `)`.
#
# Training windows start a little before an opening parenthesis; labels are computed within
# the window (depth counted from the window's start, never below zero).

# %%
text = "\n\n".join(pydoc_data.topics.topics[name] for name in sorted(pydoc_data.topics.topics))
chars = sorted(set(text))
char_id = {ch: k for k, ch in enumerate(chars)}
ids = np.array([char_id[ch] for ch in text], dtype=np.int32)
VOCAB = len(chars)

# Where the parentheticals of at least 8 characters start, and how long they are.
opens, lengths, depth, start = [], [], 0, 0
for pos, ch in enumerate(text):
    if ch == "(":
        if depth == 0:
            start = pos
        depth += 1
    elif ch == ")" and depth > 0:
        depth -= 1
        if depth == 0 and pos - start >= 8:
            opens.append(start)
            lengths.append(pos - start)
opens = np.array(opens)
print(f"{len(text):,} characters, {VOCAB} distinct; {len(opens)} parentheticals of 8+ chars")
print(
    "their lengths: median",
    int(np.median(lengths)),
    " 90th percentile",
    int(np.percentile(lengths, 90)),
    " max",
    max(lengths),
)

OPEN, CLOSE = char_id["("], char_id[")"]


def inside_labels(windows):
    """``[batch, time]`` int ids -> 1.0 where a parenthesis opened in the window is open."""
    depth = np.zeros(windows.shape[0], np.int32)
    labels = np.zeros(windows.shape, np.float32)
    for t in range(windows.shape[1]):
        depth = depth + (windows[:, t] == OPEN)
        depth = np.maximum(depth - (windows[:, t] == CLOSE), 0)
        labels[:, t] = depth > 0
    return labels


def sample_batch(rng, batch=BATCH, seq_len=SEQ_LEN):
    starts = rng.choice(opens, batch) - rng.integers(0, seq_len // 4, batch)
    starts = np.clip(starts, 0, len(ids) - seq_len)
    windows = ids[starts[:, None] + np.arange(seq_len)]
    return {"ids": windows, "labels": inside_labels(windows)}


example = sample_batch(np.random.default_rng(0), batch=1)
print(repr("".join(chars[k] for k in example["ids"][0])))
print("".join("^" if v else " " for v in example["labels"][0]))

# %% [markdown]
# ## The model
#
# One-hot characters, one recurrent layer (`lstm_jax.unroll` runs the cell over time as one
# `jax.lax.scan` loop), and a linear read-out giving the logit of "inside" at every step.
# The same code trains an LSTM and a plain RNN; only the cell changes.

# %%


def init_model(key, cell):
    k_rnn, k_out = jax.random.split(key)
    return {
        "rnn": cell.init(k_rnn, VOCAB),
        "w_out": jax.random.normal(k_out, (cell.hidden_size, 1)) / np.sqrt(cell.hidden_size),
        "b_out": jnp.zeros((1,)),
    }


def logits_from_inputs(cell, params, xs):
    """``xs: [*batch, time, vocab]`` float -> logits ``[*batch, time]``."""
    _, ys = lstm_jax.unroll(cell, params["rnn"], xs)
    return (ys @ params["w_out"])[..., 0] + params["b_out"][0]


def loss_fn(cell, params, batch, key):
    del key  # no dropout here
    xs = jax.nn.one_hot(batch["ids"], VOCAB)
    logits = logits_from_inputs(cell, params, xs)
    labels = jnp.asarray(batch["labels"])
    loss = jnp.mean(jnp.logaddexp(0.0, logits) - labels * logits)  # sigmoid cross-entropy
    accuracy = jnp.mean(((logits > 0) == (labels > 0.5)).astype(jnp.float32))
    return loss, {"accuracy": accuracy}


def train_model(cell, seed=0, steps=STEPS, lr=1e-2):
    optimizer = training.make_optimizer(lr, clip_norm=1.0)
    state = training.create_train_state(init_model(jax.random.key(seed), cell), optimizer, key=seed)
    train_step = training.make_train_step(lambda p, b, k: loss_fn(cell, p, b, k), optimizer)
    rng = np.random.default_rng(seed)
    history = []
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = train_step(state, sample_batch(rng))
        history.append(float(metrics["loss"]))
    print(
        f"{cell.name}: {steps} steps in {time.perf_counter() - t0:.1f} s, "
        f"last loss {np.mean(history[-20:]):.3f}"
    )
    return state.params, history


lstm_cell = lstm_jax.LSTMCell(HIDDEN)
lstm_params, lstm_history = train_model(lstm_cell)

# %% [markdown]
# ## Looking inside: `lstm_jax.gates`
#
# `lstm_jax.gates(cell, params, xs)` takes the arguments of `unroll` and returns the gate
# activations of every step of that same run, an `LSTMGates(i, f, g, o)` NamedTuple whose fields
# have the shape of the outputs, `[*batch, time, hidden]` (zero past each row's `seq_lengths`).
# Every cell has one: `GRUGates(r, z, n)`, `SimpleRNNGates(a)` (the pre-activation).
#
# The cell state is not an output of `unroll`, but it follows from the gates:
# `c(t) = f(t) * c(t-1) + i(t) * g(t)`, a linear recurrence that `jax.lax.associative_scan`
# could compute; a short loop is clearer. We check it against `h = o * tanh(c)`.

# %%
passage_start = int(opens[np.argmax(np.asarray(lengths) > SEQ_LEN // 2)]) - 10
passage = ids[passage_start : passage_start + SEQ_LEN]
passage_text = "".join(chars[k] for k in passage)
xs = jax.nn.one_hot(passage, VOCAB)
logits = logits_from_inputs(lstm_cell, lstm_params, xs)
gates = lstm_jax.gates(lstm_cell, lstm_params["rnn"], xs)
print({name: g.shape for name, g in gates._asdict().items()})

i_t, f_t, g_t, o_t = (np.asarray(a) for a in gates)
c_t = np.zeros_like(i_t)
c_prev = np.zeros(HIDDEN, np.float32)
for t in range(len(passage)):
    c_prev = f_t[t] * c_prev + i_t[t] * g_t[t]
    c_t[t] = c_prev
_, h_t = lstm_jax.unroll(lstm_cell, lstm_params["rnn"], xs)
np.testing.assert_allclose(o_t * np.tanh(c_t), np.asarray(h_t), rtol=1e-4, atol=1e-5)

labels = inside_labels(passage[None])[0]
# The unit whose memory tracks the answer best.
unit = int(np.argmax([abs(np.corrcoef(c_t[:, k], labels)[0, 1]) for k in range(HIDDEN)]))
print("passage:", repr(passage_text))
print(
    f"unit {unit} tracks 'inside'; accuracy on this passage:",
    float(np.mean((np.asarray(logits) > 0) == (labels > 0.5))),
)

# %%
steps_axis = np.arange(len(passage))
fig, axes = plt.subplots(5, 1, figsize=(14, 10), sharex=True)
axes[0].step(steps_axis, labels, where="mid", label="inside (target)", color="k")
axes[0].plot(steps_axis, jax.nn.sigmoid(logits), label="P(inside)", color="tab:red")
axes[0].legend(loc="upper right")
for ax, (name, values) in zip(
    axes[1:4], [("forget f", f_t), ("input i", i_t), ("output o", o_t)], strict=True
):
    ax.plot(steps_axis, values[:, unit], color="tab:blue")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel(f"{name}\n(unit {unit})")
axes[4].plot(steps_axis, c_t[:, unit], color="tab:green")
axes[4].set_ylabel(f"cell state c\n(unit {unit})")
axes[4].set_xticks(steps_axis)
axes[4].set_xticklabels(list(passage_text.replace("\n", "↵")), fontsize=7)
fig.suptitle("LSTM gates over a passage of Python's documentation")
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for, from left to right (with `QUICK=1` the network is barely trained and the
# pattern is faint): at `(` the tracking unit's forget gate dips, erasing what the cell held,
# while its input gate writes a new value, so the cell state jumps to the "inside" side; across
# the characters that follow, none of which says anything about parentheses, the cell state
# stays on that side, held by the forget gate together with the unit's own recurrent input;
# at `)` the forget gate dips again and the input gate writes the opposite value.
#
# All units at once, as heat maps:

# %%
fig, axes = plt.subplots(4, 1, figsize=(14, 8), sharex=True)
for ax, (name, values) in zip(axes, [("f", f_t), ("i", i_t), ("o", o_t), ("c", c_t)], strict=True):
    im = ax.imshow(values.T, aspect="auto", cmap="coolwarm" if name == "c" else "viridis")
    ax.set_ylabel(f"{name}: unit")
    fig.colorbar(im, ax=ax, pad=0.01)
axes[-1].set_xticks(steps_axis)
axes[-1].set_xticklabels(list(passage_text.replace("\n", "↵")), fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The plain RNN, and why it forgets
#
# An Elman RNN has no separate memory: `h(t) = tanh(x(t) @ w_ih + b + h(t-1) @ w_hh)`. Every
# step multiplies the old state by `w_hh` and squashes it. We train one of the same width on the
# same batches.

# %%
rnn_cell = lstm_jax.SimpleRNNCell(HIDDEN)
rnn_params, rnn_history = train_model(rnn_cell)

fig, ax = plt.subplots(figsize=(8, 3))
ax.plot(lstm_history, label="LSTM", alpha=0.8)
ax.plot(rnn_history, label="simple RNN", alpha=0.8)
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.legend()
plt.show()

# %% [markdown]
# Accuracy as a function of how many characters ago the parenthesis opened: the further back
# the `(`, the longer the answer had to be kept.

# %%


def accuracy_by_distance(cell, params, num_batches=4 if QUICK else 40):
    rng = np.random.default_rng(123)  # held-out windows, the same for both models
    predict = jax.jit(lambda p, ids: logits_from_inputs(cell, p, jax.nn.one_hot(ids, VOCAB)))
    bins = np.array([0, 5, 10, 20, 40, 80, 1000])
    correct, total = np.zeros(len(bins) - 1), np.zeros(len(bins) - 1)
    for _ in range(num_batches):
        batch = sample_batch(rng)
        logits = np.asarray(predict(params, batch["ids"]))
        labels = batch["labels"]
        # distance to the last "(" that is still open (for positions inside)
        since = np.zeros(labels.shape)
        for t in range(1, labels.shape[1]):
            since[:, t] = np.where(labels[:, t - 1] > 0, since[:, t - 1] + 1, 0)
        inside = labels > 0
        which = np.digitize(since[inside], bins) - 1
        hit = ((logits > 0) == inside)[inside]
        np.add.at(correct, which, hit)
        np.add.at(total, which, 1)
    return bins, correct / np.maximum(total, 1)


fig, ax = plt.subplots(figsize=(8, 3))
for name, cell_, params_ in [
    ("LSTM", lstm_cell, lstm_params),
    ("simple RNN", rnn_cell, rnn_params),
]:
    bins, acc = accuracy_by_distance(cell_, params_)
    ax.plot(range(len(acc)), acc, marker="o", label=name)
    print(name, "accuracy inside parentheses, by distance:", acc.round(3))
ax.set_xticks(range(len(bins) - 1))
ax.set_xticklabels([f"{a}-{b - 1}" for a, b in itertools.pairwise(bins)])
ax.set_xlabel("characters since the '(' opened")
ax.set_ylabel("accuracy")
ax.legend()
plt.show()

# %% [markdown]
# ### Gradient norms over time
#
# How much can the prediction at the last step be moved by the input `t` steps earlier? That
# is the gradient `d logit(T) / d x(t)`, and training can only learn a dependency whose
# gradient reaches back that far. For the RNN it is a product of `T - t` Jacobians
# `diag(1 - h²) @ w_hh.T`, which shrinks geometrically; in the LSTM the path through the cell
# state is multiplied only by the forget gates `f`, which can stay near 1.
#
# `jax.grad` of the last logit with respect to all the inputs gives every `t` in one backward
# pass; `jax.vmap` does it for a batch of windows.

# %%


def input_gradient_norms(cell, params, ids):
    """``||d logit(T) / d x(t)||`` for every t, averaged over the rows of ``ids [batch, time]``."""

    def last_logit(xs):
        return logits_from_inputs(cell, params, xs)[-1]

    grads = jax.vmap(jax.grad(last_logit))(jax.nn.one_hot(ids, VOCAB))  # [batch, time, vocab]
    return np.asarray(jnp.linalg.norm(grads, axis=-1).mean(axis=0))


probe = sample_batch(np.random.default_rng(7))["ids"]
fig, ax = plt.subplots(figsize=(8, 3.5))
lag = np.arange(SEQ_LEN)[::-1]  # T - t
for name, cell_, trained in [
    ("LSTM", lstm_cell, lstm_params),
    ("simple RNN", rnn_cell, rnn_params),
]:
    untrained = init_model(jax.random.key(0), cell_)
    for when, params_, style in [("at init", untrained, ":"), ("trained", trained, "-")]:
        norms = input_gradient_norms(cell_, params_, probe)
        ax.semilogy(lag, norms, style, label=f"{name}, {when}")
        print(
            f"{name:>10} {when:>7}: gradient {norms[-1]:.1e} at T - t = 0, "
            f"{norms[0]:.1e} at T - t = {SEQ_LEN - 1}"
        )
ax.set_xlabel("T - t (steps back from the prediction)")
ax.set_ylabel("||d logit(T) / d x(t)||")
ax.legend()
plt.show()

# %% [markdown]
# How to read it. Remembering one bit ("a parenthesis is open") is within the plain RNN's
# reach: a unit driven into saturation by `(` stays there, and the short parentheticals, whose
# `(` is only a few steps back, teach it to do so; the accuracy table shows how well that
# worked here. The gradients tell the other half of the story (Bengio, Simard & Frasconi,
# 1994): a saturated `tanh` has a derivative near zero, so the same saturation that stores
# the bit blocks the gradient, and the trained RNN's curve falls fastest of all. An RNN can keep
# what it has already learned to keep, but a dependency whose only evidence lies many steps
# back sends it almost no training signal. The LSTM's path through `c` is multiplied by the
# forget gates rather than by `w_hh` and a squashing derivative, and its curves stay higher at
# long lags (in the full run, once trained, by about two orders of magnitude at 120 steps).
#
# Notebook 2 measures the consequence on a task where every dependency is long (the adding
# problem): in the full run, the plain RNN solves about a third of the test sequences where the
# gated cells solve more than 90%.
#
# **Next:** notebook 2 compares the LSTM's variants (peephole, coupled gates, GRU) on one task.
