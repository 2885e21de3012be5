"""The performance goals, one module each: what it measures (a function run
in a fresh process) next to how it is judged.

1 ``reference``: E2E-VarNet against fastMRI's VarNet (time, output);
2 ``encoder``: the truncated 6-block encoder against the full one;
3 ``bf16``: bf16 autocast speed (from the table) and SSIM;
4 ``checkpointing``: activation checkpointing's memory saving (from the table);
5 ``feature_cache``: the FM-UNETR encoder-feature cache;
6 ``loading``: the data loader's share of a training step;
7 ``memory_estimate``: the peak-memory estimate and its accuracy;
8 ``compile``: FM-VarNet (and E2E-VarNet) compiled through fmrecon's option
  against eager.
"""

from __future__ import annotations

from fmrecon_bench.config import BenchConfig
from fmrecon_bench.goals import (
    bf16,
    checkpointing,
    compile,
    encoder,
    feature_cache,
    loading,
    memory_estimate,
    reference,
)
from fmrecon_bench.goals.base import Goal

GOALS: tuple[Goal, ...] = tuple(
    m.GOAL
    for m in (
        reference,
        encoder,
        bf16,
        checkpointing,
        feature_cache,
        loading,
        memory_estimate,
        compile,
    )  # fmt: skip
)


def compute_goals(rows: list[dict], extras: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """The goal entries of ``cfg.goals``, in goal order, each judged on this
    run's table ``rows`` and its own measurement in ``extras`` only."""
    return [
        e
        for g in GOALS
        if g.number in cfg.goals
        for e in g.judge(rows, extras.get(g.key) or {}, cfg, machine)
    ]
