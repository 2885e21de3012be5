"""Goal 6, data loading: the loader's share of an E2E-VarNet training step at
the cine size under 10% (reading CMRxRecon files with 2 worker processes)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fmrecon.data.slices import SliceDataset, collate
from fmrecon.utils import resolve_device
from fmrecon_bench.config import BenchConfig, cine_size, options_of, size_label
from fmrecon_bench.goals.base import Goal, entry, not_measured
from fmrecon_bench.harness import (
    Runner,
    build_model,
    median,
    prepare_process,
    simulated_dataset,
    timed,
    to_device,
)


def _throughput(ds: SliceDataset, workers: int) -> dict:
    """Seconds per slice in this process, and whole epochs through a loader
    with ``workers`` processes (the first one includes their start-up)."""
    serial = [timed(lambda i=i: ds[i]) for i in range(len(ds))]  # main process, no workers
    plain = DataLoader(ds, batch_size=1, shuffle=False, num_workers=workers,
                       collate_fn=collate, persistent_workers=workers > 0)  # fmt: skip
    first = timed(lambda: list(plain))  # worker start-up and file opening
    second = timed(lambda: list(plain))
    return {"serial": serial, "epoch_s_cold": first, "epoch_s": second}


def _fed_steps(ds: SliceDataset, runner: Runner, steps: int, workers: int) -> tuple[list, list]:
    """A training loop fed by a loader: (seconds waiting for each batch,
    seconds of each step), without the first step (worker start-up, warm-up)."""
    loader = DataLoader(ds, batch_size=1, shuffle=True, num_workers=workers,
                        collate_fn=collate, persistent_workers=workers > 0)  # fmt: skip
    it, wait, comp = iter(loader), [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        t1 = time.perf_counter()
        runner.train(to_device(b, runner.device), "fp32")
        t2 = time.perf_counter()
        if i > 0:
            wait.append(t1 - t0)
            comp.append(t2 - t1)
    return wait, comp


def measure(model, options, size, coils, steps, workers, quick, device, threads) -> dict:
    """Slices/s from freshly written CMRxRecon files (so read from the page
    cache), in this process and through ``workers`` loader processes, and
    the time a training loop fed by the loader waits for its batches."""
    prepare_process(threads)
    dev = resolve_device(device)
    tmp = Path(tempfile.mkdtemp(prefix="fmrecon-bench-data-"))
    try:
        t0 = time.perf_counter()
        ds = simulated_dataset(tmp, 2, tuple(size), coils, slices=2, frames=2 if quick else 3)
        sim_s = time.perf_counter() - t0
        files = len(ds.volumes)
        tp = _throughput(ds, workers)
        runner = Runner(build_model(model, options, dev), dev, label=model)
        wait, comp = _fed_steps(ds, runner, steps, workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(ds)
    return {
        "files": files,
        "slices": n,
        "size": list(size),
        "coils": coils,
        "workers": workers,
        "simulate_s": sim_s,
        "serial_s_per_slice": median(tp["serial"]),
        "epoch_s_cold": tp["epoch_s_cold"],
        "epoch_s": tp["epoch_s"],
        "slices_per_s": n / tp["epoch_s"],
        "slices_per_s_serial": 1.0 / median(tp["serial"]),
        "steps": len(comp),
        "wait_s": wait,
        "step_s": comp,
        "threads": torch.get_num_threads(),
        "note": "files freshly written, so read from the page cache",
    }


def judge(rows, ld: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """Time waited for batches / (waited + stepping) over the fed steps, < 10%."""
    cine = size_label(cine_size(cfg.sizes))
    goal = f"6 data loading: loader share of an e2e-varnet training step at {cine}"
    if gone := not_measured("6", goal, "< 10%", ld, "fraction"):
        return [gone]
    wait, step = sum(ld["wait_s"]), sum(ld["step_s"])
    share = wait / (wait + step)
    t_step = median(ld["step_s"])
    serial = ld["serial_s_per_slice"] / (ld["serial_s_per_slice"] + t_step)
    return [entry(
        "6", goal, share, "< 10%", share < 0.10, "fraction",
        f"{ld['slices_per_s']:.1f} slices/s with {ld['workers']} workers "
        f"({ld['slices_per_s_serial']:.1f} in-process); waited {wait:.2f} s of "
        f"{wait + step:.1f} s over {ld['steps']} steps",
        {**ld, "share": share, "serial_share": serial, "step_s_median": t_step},
    )]  # fmt: skip


GOAL = Goal(
    number=6,
    key="loading",
    judge=judge,
    measure=measure,
    arguments=lambda cfg, device: {
        "model": "e2e-varnet",
        "options": options_of(cfg, "e2e-varnet"),
        "size": list(cine_size(cfg.sizes)),
        "coils": cfg.coils,
        "steps": 3 if cfg.quick else 6,
        "workers": 2,
        "quick": cfg.quick,
        "device": device,
        "threads": cfg.threads,
    },  # fmt: skip
    describe=lambda cfg: f"goal 6: data loading at {size_label(cine_size(cfg.sizes))}",
)
