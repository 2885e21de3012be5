"""A benchmark run (:func:`run_bench`): the goals measured before the table,
the table, the other goals, then every goal judged on this run's
measurements only.

The table: for every model and size, one *timing* process that builds the
model once and measures every variant (precision x activation checkpointing)
round-robin, so the variants see the same machine state and their ratios are
fair; then one fresh *memory* process per variant, which builds the model and
inputs, measures the first training step's peak (then an inference's), and
exits (:class:`fmrecon_bench.memory_probe.MemoryProbe`: on CPU the resident
set's high-water mark above the RSS after building, on CUDA the allocator's
peak above the memory allocated after building). The quick bench instead
runs one process per variant that measures memory first (which also warms
it up), then times that variant.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict

from fmrecon.utils import resolve_device, set_tf32
from fmrecon_bench.config import (
    BenchConfig,
    fm_varnet,
    options_of,
    size_label,
    supports_checkpointing,
)
from fmrecon_bench.goals import GOALS, compute_goals
from fmrecon_bench.goals.base import Goal
from fmrecon_bench.machine import machine_info, matmul_gflops
from fmrecon_bench.table import onoff, table_rows
from fmrecon_bench.tasks import run_task

SCHEMA = "fmrecon-bench/1"


def bench_model(cfg: BenchConfig, name: str, size, device: str, log,
                matmul_gflops: float | None = None) -> tuple[list, list]:  # fmt: skip
    """Rows for one model at one size, and the errors met (see the module doc);
    ``matmul_gflops``: the run's matmul rate (the rows' GFLOP/s as a fraction of it)."""
    common = {"model": name, "options": options_of(cfg, name), "size": list(size),
              "coils": cfg.coils, "device": device, "threads": cfg.threads,
              "compile": cfg.compile}  # fmt: skip
    ckpts = [False, True] if supports_checkpointing(name) else [None]
    variants = [(p, c) for c in ckpts for p in cfg.precisions]
    where = f"{name} {size_label(size)}"
    results: dict[tuple, tuple[dict, dict]] = {}
    if cfg.interleave:
        log(f"{where}: timing {len(variants)} variants")
        timing = run_task("run", dict(common, variants=variants, memory=False,
                          repeats=cfg.repeats, warmup=cfg.warmup), cfg)  # fmt: skip
    for p, c in variants:
        log(f"{where} {p} checkpointing {onoff(c)}: memory" + ("" if cfg.interleave else
            " and timing"))  # fmt: skip
        if cfg.interleave:
            mem = run_task("run", dict(common, variants=[(p, c)], memory=True, repeats=0,
                           warmup=0), cfg)  # fmt: skip
            results[(p, c)] = (timing, mem)
        else:  # the memory step is the first warm-up call
            res = run_task("run", dict(common, variants=[(p, c)], memory=True,
                           repeats=cfg.repeats, warmup=max(cfg.warmup - 1, 0)), cfg)  # fmt: skip
            results[(p, c)] = (res, res)
    return table_rows(name, size, cfg.coils, results, matmul_gflops)


def _measure_goal(goal: Goal, cfg: BenchConfig, device: str, extras: dict, errors: list,
                  log) -> None:  # fmt: skip
    log(goal.describe(cfg))
    extras[goal.key] = res = run_task(goal.key, goal.arguments(cfg, device), cfg)
    if "error" in res:
        errors.append(f"{goal.key}: {res['error']}")


def run_bench(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> dict:
    """Run the table and the goals; returns the result (layout in
    :mod:`fmrecon_bench.cli`)."""
    t0 = time.perf_counter()
    log = log or (lambda msg: print(f"[bench {time.perf_counter() - t0:6.0f}s] {msg}",
                                    file=sys.stderr, flush=True))  # fmt: skip
    device = resolve_device(cfg.device).type
    machine = machine_info(device)
    machine["tf32"] = set_tf32(cfg.tf32)  # this process; each measurement process sets its own
    machine["calibration_gflops"] = {"start": matmul_gflops()}
    rows: list[dict] = []
    errors: list[str] = []
    extras: dict[str, dict] = {}
    measured = [g for g in GOALS if g.number in cfg.goals and g.measure is not None]
    for goal in (g for g in measured if g.before_table):
        _measure_goal(goal, cfg, device, extras, errors, log)
    for name in cfg.models:
        for size in cfg.sizes:
            # the rate the profile's fractions use too (report.format_report)
            r, e = bench_model(cfg, name, tuple(size), device, log,
                               machine["calibration_gflops"]["start"])  # fmt: skip
            rows += r
            errors += e
    for goal in (g for g in measured if not g.before_table):
        _measure_goal(goal, cfg, device, extras, errors, log)
    profiles = []
    for name in ("e2e-varnet", fm_varnet(cfg)) if cfg.profile else ():
        log(f"{name} {size_label(cfg.sizes[0])}: where the time goes")
        res = run_task("profile", {"model": name, "size": list(cfg.sizes[0]), "coils": cfg.coils,
                                   "device": device, "threads": cfg.threads,
                                   "options": options_of(cfg, name)}, cfg)  # fmt: skip
        profiles.append(res)
        if "error" in res:
            errors.append(f"profile {name}: {res['error']}")
    machine["calibration_gflops"]["end"] = matmul_gflops()
    settings = asdict(cfg)
    settings.update(sizes=[size_label(s) for s in cfg.sizes], device=device, batch=1)
    estimate = extras.get("memory_estimate") or {}
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "settings": settings,
        "machine": machine,
        "rows": rows,
        "goals": compute_goals(rows, extras, cfg, machine),
        "memory_estimate": estimate.get("table"),
        "extras": {k: v for k, v in extras.items() if k != "memory_estimate"},
        "profile": profiles,
        "errors": errors,
    }
