"""Benchmarks of lstm_jax against its peers (Flax linen, PyTorch) on XLA:CPU.

One entry point: ``python -m benchmarks.run [--quick] [--out DIR]``; see ``benchmarks/README.md``.

Files, one job each:

* ``workloads.py``  the sizes, the inputs and our parameters, flop counts;
* ``contender.py``  what a contender is, and compiling a JAX one ahead of time;
* ``ours.py``       ``lstm_jax.unroll`` / ``bidirectional`` and their variants;
* ``peers.py``      Flax ``nn.RNN`` / ``nn.Bidirectional`` and torch ``nn.LSTM`` / ``nn.GRU``, with
  our weights loaded so that every contender does the same work;
* ``timing.py``     interleaved timing, medians, the matmul ceiling;
* ``torch_memory.py``  torch's peak memory, in a subprocess (``ru_maxrss`` deltas);
* ``environment.py``   versions, CPU, load, allocator settings (and ``--malloc-tuned``);
* ``report.py``     the JSON and the markdown table;
* ``run.py``        the command line.
"""
