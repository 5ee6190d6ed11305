"""Training memory for very long sequences: ``impl="auto"`` against ``impl=Chunked(every=k)``.

For an LSTM (batch 1, input 16, hidden 64) and ``time`` from 1,000 to 100,000, compiles the
gradient of ``sum(ys)`` and reads XLA's own estimate of its temporary buffers
(``compiled.memory_analysis().temp_size_in_bytes``); nothing is run, so it takes seconds.
Without checkpointing the split derivative (``"auto"`` on CPU) keeps every step's carry and
``xp + hh``, ``O(time)``; with ``lstm_jax.Chunked(every=round(sqrt(time)))`` only the carries
between chunks and one chunk's activations are kept, ``O(sqrt(time))``, plus copies of the
inputs and their gradient (``O(time * input)``, the size of the data). Here ``ys`` only feeds a
sum, so XLA fuses it away; a loss that keeps ``ys`` adds ``4 * batch * time * hidden`` bytes to
both.

    python -m benchmarks.long_sequence [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import pathlib

import jax
import jax.numpy as jnp

import lstm_jax

TIMES = (1_000, 10_000, 100_000)
BATCH, INPUT, HIDDEN = 1, 16, 64


def temp_bytes(num_steps: int, every: int | None) -> int:
    """XLA's temporary bytes for the gradient over ``num_steps`` steps, chunks of ``every``
    steps (None: no chunks, ``impl="auto"``)."""
    cell = lstm_jax.LSTMCell(HIDDEN)
    impl = "auto" if every is None else lstm_jax.Chunked(every=every)
    params = jax.eval_shape(lambda k: cell.init(k, INPUT), jax.random.key(0))
    xs = jax.ShapeDtypeStruct((BATCH, num_steps, INPUT), jnp.float32)

    def loss(params, xs):
        _, ys = lstm_jax.unroll(cell, params, xs, impl=impl)
        return jnp.sum(ys)

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results", help="results directory")
    parser.add_argument("--times", type=int, nargs="+", default=list(TIMES))
    args = parser.parse_args(argv)
    rows = []
    for num_steps in args.times:
        chunk = round(math.sqrt(num_steps))
        plain, chunked = temp_bytes(num_steps, None), temp_bytes(num_steps, chunk)
        rows.append(
            dict(
                time=num_steps,
                every=chunk,
                plain_mib=plain / 2**20,
                checkpointed_mib=chunked / 2**20,
                ratio=plain / chunked,
            )
        )
        print(
            f"time {num_steps:>7}: plain {plain / 2**20:8.1f} MiB, Chunked(every={chunk}): "
            f"{chunked / 2**20:7.1f} MiB ({plain / chunked:.0f}x less)"
        )
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.date.today().isoformat()}-long-sequence-memory.json"
    path.write_text(json.dumps(dict(batch=BATCH, input=INPUT, hidden=HIDDEN, rows=rows), indent=1))
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
