"""The old core (custom VJP, commit 480e499) and the new one (impl=) in ONE process, interleaved.

Separate processes on this VM differ by up to 2x for the same compiled program, so this runs
both in the same process: the old package is copied under another name first::

    git worktree add /tmp/oldtree 480e499
    mkdir -p /tmp/oldpkg && cp -r /tmp/oldtree/lstm_jax /tmp/oldpkg/lstm_jax_old
    grep -rl lstm_jax /tmp/oldpkg/lstm_jax_old | xargs sed -i 's/\\blstm_jax\\b/lstm_jax_old/g'
    python -m benchmarks.old_vs_new_same_process lstm 1 512 64 128

Arguments: cell (lstm or gru), batch, time, input, hidden. Prints median ms of 7 interleaved
rounds for the forward pass and a jitted gradient.
"""

import sys
import time

import jax
import numpy as np

import lstm_jax

sys.path.insert(0, "/tmp/oldpkg")
import lstm_jax_old
from lstm_jax_old.unroll import unroll as unroll_old


def main(argv):
    name = argv[0]
    b, t, i, h = (int(a) for a in argv[1:5])
    cell_new, cell_old = getattr(lstm_jax, name)(h), getattr(lstm_jax_old, name)(h)
    params = cell_new.init(jax.random.key(0), i)
    params_old = type(cell_old.init(jax.random.key(0), i))(*params)
    xs = jax.random.normal(jax.random.key(1), (b, t, i))
    fns = {
        "old custom_vjp": (lambda p, xs: unroll_old(cell_old, p, xs)[1], params_old),
        "old autodiff": (
            lambda p, xs: unroll_old(cell_old, p, xs, custom_vjp=False)[1],
            params_old,
        ),
        "new split": (lambda p, xs: lstm_jax.unroll(cell_new, p, xs, impl="split")[1], params),
        "new scan": (lambda p, xs: lstm_jax.unroll(cell_new, p, xs, impl="scan")[1], params),
    }
    compiled = {}
    for key, (fn, p) in fns.items():
        loss = lambda p, xs, fn=fn: (fn(p, xs) ** 2).mean()
        compiled[key] = (jax.jit(fn), jax.jit(jax.grad(loss, argnums=(0, 1))), p)
        for f in compiled[key][:2]:
            jax.block_until_ready(f(p, xs))
    times = {(k, m): [] for k in fns for m in ("fwd", "f+b")}
    for _ in range(7):
        for key, (fwd, grad, p) in compiled.items():
            for mode, f in (("fwd", fwd), ("f+b", grad)):
                start = time.perf_counter()
                jax.block_until_ready(f(p, xs))
                times[(key, mode)].append(time.perf_counter() - start)
    for mode in ("fwd", "f+b"):
        row = ", ".join(f"{k} {1e3 * np.median(times[(k, mode)]):.2f}" for k in fns)
        print(f"{name} B{b} T{t} I{i} H{h} {mode} ms: {row}")


if __name__ == "__main__":
    main(sys.argv[1:])
