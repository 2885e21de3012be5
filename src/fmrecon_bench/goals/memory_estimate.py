"""Goal 7, the peak-memory estimate (:mod:`fmrecon.models.memory`, behind
``fmrecon models --memory``): its table, and its accuracy measured in the
same run: the cascade extrapolation against direct measurements of
multi-cascade models, and the byte tracker against the process's peak RSS."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence

import torch

from fmrecon.models import memory
from fmrecon_bench.config import BenchConfig, options_of
from fmrecon_bench.goals.base import Goal, entry, not_measured
from fmrecon_bench.harness import prepare_process

GOAL_TEXT = "7 memory estimate"
TARGET = "documented and tested"


def check_extrapolation(
    name: str,
    size: Sequence[int],
    coils: int,
    precision: str = "32",
    checkpointing: bool = False,
    training: bool = True,
    cascades: int = 2,
    *,
    model_options: dict | None = None,
    encoder_config: dict | None = None,
) -> dict:
    """The dynamic peak (activations + transients) of a ``cascades``-cascade
    model predicted from the one-cascade probe vs measured directly on that
    model: ``{"predicted", "measured", "rel_error", ...}``."""
    opts = {**(model_options or {}), "num_cascades": cascades}
    est = memory.estimate_peak_memory(
        name, size, coils, precision, checkpointing, training,
        model_options=opts, encoder_config=encoder_config,
    )  # fmt: skip
    predicted = est["breakdown"]["activations"] + est["breakdown"]["transient"]
    model = memory.build_probe_model(name, opts, encoder_config, one_cascade=False)
    measured = memory.measure(model, size, coils, precision, checkpointing, training)["peak"]
    return {
        "model": name,
        "size": list(size),
        "coils": coils,
        "cascades": cascades,
        "precision": precision,
        "checkpointing": checkpointing,
        "training": training,
        "predicted": int(predicted),
        "measured": int(measured),
        "rel_error": round((predicted - measured) / measured, 4),
    }


_RSS_SCRIPT = """
import ctypes, json, sys, torch
libc = ctypes.CDLL("libc.so.6")
libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD: large blocks are mmapped, freed to the OS at once
from fmrecon.models import memory as M
a = json.loads(sys.argv[1])
torch.set_num_threads(int(a.get("threads", 1)))
model = M.probe_model(a["name"], a["options"], a["encoder_config"])
def step():
    return M.measure(
        model, a["size"], a["coils"], a["precision"], a["checkpointing"], a["training"]
    )
step()  # warm-up: kernels, lazy state, gradients allocated
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS
base = status("VmRSS")
tracked = step()["peak"]
print(json.dumps({"rss_delta": status("VmHWM") - base, "tracked": tracked}))
"""


def check_against_rss(
    name: str,
    size: Sequence[int],
    coils: int,
    precision: str = "32",
    checkpointing: bool = False,
    training: bool = True,
    *,
    model_options: dict | None = None,
    encoder_config: dict | None = None,
    timeout: float = 600,
) -> dict:
    """The tracked dynamic peak of one step vs the growth of the process's peak
    RSS during the same step, in a fresh subprocess (glibc told to return large
    blocks to the OS at once, so RSS follows live memory). Linux only."""
    args = {
        "name": name, "options": dict(model_options or {}), "encoder_config": encoder_config,
        "size": list(size), "coils": coils, "precision": precision,
        "checkpointing": checkpointing, "training": training,
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    res = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, json.dumps(args)],
        capture_output=True, text=True, timeout=timeout, env=env, check=True,
    )  # fmt: skip
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["ratio"] = round(out["tracked"] / out["rss_delta"], 4) if out["rss_delta"] > 0 else math.nan
    return out


def measure(quick: bool = False, threads: int | None = None) -> dict:
    """The table (full: FM-VarNet and E2E-VarNet, both sizes, every option;
    quick: FM-VarNet, three training options), the cascade extrapolation
    against direct measurements of multi-cascade models at 218x180 x 10 coils
    (full: the real 12 cascades where the CPU's memory allows), and the
    tracker against the process's peak RSS (full only)."""
    prepare_process(threads)
    if quick:
        options = (("32", False, True), ("32", True, True), ("bf16", True, True))
        rows = memory.memory_table(models=("fm-varnet-clip",), options=options)
        plan = [("fm-varnet-clip", "32", False, True, 2)]
    else:
        rows = memory.memory_table()
        plan = [
            ("fm-varnet-clip", "32", False, True, 12),
            ("fm-varnet-clip", "32", True, True, 12),
            ("fm-varnet-clip", "bf16", False, True, 3),
            ("fm-varnet-clip", "bf16", True, True, 3),
            ("fm-varnet-clip", "32", False, False, 3),
            ("e2e-varnet", "32", False, True, 12),
            ("e2e-varnet", "bf16", True, True, 12),
        ]
    checks = [
        check_extrapolation(name, (218, 180), 10, prec, ckpt, train, cascades=n)
        for name, prec, ckpt, train, n in plan
    ]
    rss = None if quick else check_against_rss("fm-varnet-clip", (218, 180), 10)
    memory.clear()
    return {"table": rows, "cascade_checks": checks, "rss_check": rss}


def cuda_checks(rows, table, cfg: BenchConfig) -> list[dict]:
    """The estimate against this run's CUDA rows (the table's memory measured
    with ``torch.cuda.max_memory_allocated``, weights, gradients and Adam state
    included): estimated ``allocated_gb`` / measured peak for each row of the
    same model (full size: no reduced options), size, coils, precision,
    checkpointing and mode. Empty on CPU runs."""
    est = {(r["model"], r["size"], r["coils"], r["precision"], r["checkpointing"], r["mode"]): r
           for r in table}  # fmt: skip
    out = []
    for r in rows:
        if not str(r.get("mem_method") or "").startswith("cuda") or options_of(cfg, r["model"]):
            continue
        for mode, key in (("train", "train_peak_mb"), ("infer", "infer_peak_mb")):
            if mode == "infer" and r["checkpointing"]:
                continue  # the plain model's inference, copied into this row
            e = est.get((r["model"], r["size"], r.get("coils"), r["precision"],
                         bool(r["checkpointing"]), mode))  # fmt: skip
            if e is None or not r.get(key):
                continue
            measured = r[key] * 2**20 / 1e9  # MiB -> GB
            out.append({
                "model": r["model"], "size": r["size"], "precision": r["precision"],
                "checkpointing": bool(r["checkpointing"]), "mode": mode,
                "estimated_gb": e["allocated_gb"], "measured_gb": round(measured, 3),
                "ratio": round(e["allocated_gb"] / measured, 3),
            })  # fmt: skip
    return out


def judge(rows, est: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """Met when the extrapolation is within 5% of every direct measurement
    and the tracker within 15% of the RSS growth. A bare table (no checks)
    counts as documented."""
    if gone := not_measured("7", GOAL_TEXT, TARGET, est):
        return [gone]
    table = est["table"]
    if "cascade_checks" not in est:
        return [entry("7", GOAL_TEXT, f"{len(table)} settings", TARGET, bool(table))]
    checks, rss = est["cascade_checks"], est["rss_check"]
    worst = max(abs(c["rel_error"]) for c in checks)
    gb = {
        (r["model"], r["size"], r["precision"], r["checkpointing"], r["mode"]): r["gb"]
        for r in table
    }
    fp32 = gb.get(("fm-varnet-clip", "246x512", "fp32", False, "train"))
    small = gb.get(("fm-varnet-clip", "246x512", "bf16", True, "train"))
    figure = (
        f"FM-VarNet 246x512 training {fp32:.1f} GB fp32, {small:.1f} GB bf16+ckpt; "
        f"cascade extrapolation within {100 * worst:.1f}%"
    )
    met = bool(worst <= 0.05 and (rss is None or abs(1 - rss["ratio"]) <= 0.15))
    # on a GPU: the estimate against the allocator's own peak (reported, not judged:
    # the +-15 % of fmrecon.models.memory is a CPU-side expectation, unchecked on a GPU)
    on_cuda = cuda_checks(rows, table, cfg)
    note = ""
    if on_cuda:
        ratios = [c["ratio"] for c in on_cuda]
        note = (
            f"on CUDA, estimate / torch.cuda.max_memory_allocated {min(ratios):.2f}-"
            f"{max(ratios):.2f} over {len(ratios)} rows (CUDA context not included)"
        )
    detail = {
        "table": table,
        "cascade_checks": checks,
        "rss_check": rss,
        "cuda_checks": on_cuda,
        "assumptions": {
            "cuda_context_bytes": memory.CUDA_CONTEXT_BYTES,
            "allocator_slack": memory.ALLOCATOR_SLACK,
            "optimizer": "Adam (two fp32 moments)",
            "grads": "allocated before the step (an upper bound)",
        },
    }
    return [entry("7", GOAL_TEXT, figure, TARGET, met, "", note, detail)]


GOAL = Goal(
    number=7,
    key="memory_estimate",
    judge=judge,
    measure=measure,
    arguments=lambda cfg, device: {"quick": cfg.quick, "threads": cfg.threads},
    describe=lambda cfg: "goal 7: memory estimate (fmrecon.models.memory)",
)
