"""The fmrecon benchmark: speed and peak memory of the models (fp32 / bf16
autocast, with / without activation checkpointing) and the performance goals,
``python -m fmrecon_bench`` or ``fmrecon-bench`` (:mod:`fmrecon_bench.cli`);
the training smoke benchmark, ``python -m fmrecon_bench.train_smoke``.

It uses fmrecon; nothing in fmrecon uses it.

Modules: ``config`` (what a run measures), ``harness`` (inputs, models, the
training step, the timing loop), ``memory_probe``, ``machine``, ``table``
(speed and memory per model and variant), ``goals`` (one module per goal:
what it measures and how it is judged), ``tasks`` (measurement processes),
``run`` (a run), ``report`` (text and JSON), ``cli``.
"""
