"""The table: speed and peak memory of one model at one size for every
variant (precision x activation checkpointing).

:func:`measure_model` runs in a measurement process (task ``"run"``, see
:mod:`fmrecon_bench.tasks`); :func:`table_rows` turns what those processes
returned into the rows of the report, one per variant.
"""

from __future__ import annotations

import torch

from fmrecon.utils import compile_seconds, count_parameters, resolve_device, tf32_state
from fmrecon_bench.config import size_label
from fmrecon_bench.harness import (
    Runner,
    build_model,
    checkpointing_switch,
    median,
    prepare_process,
    simulated_batches,
    time_rounds,
)
from fmrecon_bench.memory_probe import MemoryProbe
from fmrecon_bench.profile import achieved, forward_flops


def onoff(ckpt: bool | None) -> str:
    """A checkpointing column: on, off, or n/a (a model without cascades)."""
    return "n/a" if ckpt is None else ("on" if ckpt else "off")


def _memory(runner: Runner, batch, precision: str, ckpt: bool | None, switch) -> dict:
    """The first training step's peak, then an inference's (checkpointing
    off only: it acts only with gradients), each above what was live before."""
    probe = MemoryProbe(runner.device)
    out = {"train": None, "infer": None}
    if ckpt is not None:
        switch(ckpt)
    if runner.trainable:
        probe.start()
        runner.train(batch, precision)
        out["train"] = probe.stop()
    # a second measurement in this process needs the high-water mark reset
    if not ckpt and (runner.device.type == "cuda" or probe.hwm or not runner.trainable):
        probe.start()
        runner.infer(batch, precision)
        out["infer"] = probe.stop()
    return out


def measure_model(model, options, size, coils, variants, memory, repeats, warmup, device,
                  threads, compile=None) -> dict:  # fmt: skip
    """One model at one size. With ``memory`` (one variant, in a fresh
    process): the first training step's peak, then an inference's, which also
    warm the process up. Then ``warmup`` + ``repeats`` rounds, each timing every
    precision's inference and every (precision, checkpointing) training step,
    round-robin so that all variants see the same machine state.

    ``compile`` (torch.compile options): the model is compiled through fmrecon's
    option; every variant is called once before the memory probe and the timing
    (compilation is neither timed nor measured), and the seconds this process
    spent compiling are returned as ``compile_s``."""
    prepare_process(threads)
    dev = resolve_device(device)
    net = build_model(model, options, dev)
    batch = simulated_batches(*size, coils, device=dev)[0]
    runner = Runner(net, dev, label=model, compile=compile)
    switch = checkpointing_switch(net)
    variants = [(p, c) for p, c in variants]
    if compile:  # compile every variant (precision, checkpointing: other graphs) first
        for p, c in variants:
            if c is not None:
                switch(c)
            if runner.trainable:
                runner.train(batch, p)
            if not c:
                runner.infer(batch, p)
    out = {
        "trainable_params": count_parameters(net, trainable_only=True),
        "total_params": count_parameters(net),
        "threads": torch.get_num_threads(),
        "tf32": tf32_state(),  # as this measurement ran (BenchConfig.tf32)
        "compile": compile,
        "memory": _memory(runner, batch, *variants[0], switch) if memory else None,
    }
    out["compile_s"] = round(compile_seconds(), 2) if compile else None

    def train(p: str, c: bool | None) -> None:
        if c is not None:
            switch(c)
        runner.train(batch, p)

    # inference does not depend on checkpointing: timed once per precision
    infer = {p: (lambda p=p: runner.infer(batch, p)) for p, c in variants if not c}
    steps = {(p, c): (lambda p=p, c=c: train(p, c)) for p, c in variants}
    times = time_rounds(infer, steps if runner.trainable else {}, repeats=repeats, warmup=warmup)
    out["infer"] = {p: times[p] for p in infer}
    out["train"] = [
        {"precision": p, "checkpointing": c, "times": times[(p, c)]}
        for p, c in (steps if runner.trainable else {})
    ]
    # the FLOPs of the timed inference (after timing and memory: neither sees this
    # forward); precision changes the arithmetic's speed, not its count
    out["infer_flop"] = forward_flops(net, batch)["Global"] if infer and repeats else None
    return out


def _row(name, size, coils, precision, ckpt, timing: dict, mem: dict,
         matmul_gflops: float | None) -> dict:  # fmt: skip
    train_times = []
    for v in timing.get("train", []):
        if v["precision"] == precision and v["checkpointing"] == ckpt:
            train_times = v["times"]
    infer_times = timing.get("infer", {}).get(precision, []) if not ckpt else []
    memory = mem.get("memory") or {}
    tm, im = memory.get("train") or {}, memory.get("infer") or {}
    flop = timing.get("infer_flop") if infer_times else None
    rate, frac = achieved(flop, median(infer_times), matmul_gflops)
    return {
        "model": name,
        "size": size_label(size),
        "coils": coils,
        "batch": 1,
        "precision": precision,
        "checkpointing": ckpt,
        "infer_s": median(infer_times),
        "infer_times": infer_times,
        # achieved inference GFLOP/s (FlopCounterMode's count / median time) and its
        # fraction of this run's fp32 1024x1024 matmul rate (machine.matmul_gflops)
        "infer_flop": flop,
        "infer_gflops_per_s": None if rate is None else round(rate, 2),
        "infer_matmul_fraction": None if frac is None else round(frac, 4),
        "train_s": median(train_times),
        "train_times": train_times,
        "infer_mem_mb": im.get("delta_mb"),
        "infer_peak_mb": im.get("peak_mb"),
        "train_mem_mb": tm.get("delta_mb"),
        "train_peak_mb": tm.get("peak_mb"),
        "mem_base_mb": tm.get("base_mb", im.get("base_mb")),
        "mem_method": tm.get("method", im.get("method")),
        "trainable_params": timing.get("trainable_params"),
        "total_params": timing.get("total_params"),
        "tf32": timing.get("tf32"),
        "compile": timing.get("compile"),
        "compile_s": timing.get("compile_s"),  # seconds compiling in the timing process
        "error": timing.get("error") or mem.get("error"),
    }


def table_rows(name: str, size, coils: int, results: dict,
               matmul_gflops: float | None = None) -> tuple[list[dict], list[str]]:  # fmt: skip
    """Rows of one model at one size from ``results`` ((precision, ckpt) ->
    (timing result, memory result)), and the errors they report;
    ``matmul_gflops``: the run's matmul rate, for the inference's fraction of it."""
    where = f"{name} {size_label(size)}"
    errors, rows = [], []
    for (p, c), (timing, mem) in results.items():
        for what, res in (("timing", timing), ("memory", mem)):
            msg = f"{where} {p} ckpt {onoff(c)} {what}: {res.get('error')}"
            if "error" in res and msg not in errors:
                errors.append(msg)
        rows.append(_row(name, size, coils, p, c, timing, mem, matmul_gflops))
    # checkpointing acts only with gradients: inference is that of the plain model
    plain = {r["precision"]: r for r in rows if not r["checkpointing"]}
    for r in rows:
        if r["checkpointing"] and r["precision"] in plain:
            for k in ("infer_s", "infer_times", "infer_mem_mb", "infer_peak_mb", "infer_flop",
                      "infer_gflops_per_s", "infer_matmul_fraction"):  # fmt: skip
                r[k] = plain[r["precision"]][k]
            r["infer_note"] = "same as checkpointing off (it acts only with gradients)"
    return rows, errors


def find_row(rows, model, size, precision, ckpt) -> dict | None:
    """The row of (model, size, precision, checkpointing), or None."""
    for r in rows:
        if (r["model"], r["size"], r["precision"], r["checkpointing"]) == (
            model, size_label(size), precision, ckpt,
        ):  # fmt: skip
            return r
    return None
