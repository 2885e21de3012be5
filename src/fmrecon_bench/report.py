"""A run's result as text (machine, the table, the goals, the memory
estimate, errors) and as a JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fmrecon.data.h5io import atomic_path
from fmrecon.models.memory import format_table
from fmrecon_bench.profile import format_profile
from fmrecon_bench.table import onoff


def json_default(obj):
    """Tensors, arrays, paths and numpy scalars in results -> JSON."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (Path, set, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    return str(obj)


def _s(x) -> str:
    """Seconds with 3 significant digits."""
    return "-" if x is None else f"{x:.3g}"


def _mb(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def format_figure(g: dict) -> str:
    """A goal's figure in its unit: 42.7% (fraction), 1.96x (x), text as it is."""
    f, unit = g.get("figure"), g.get("unit", "")
    if f is None:
        return "-"
    if isinstance(f, str):
        return f
    if isinstance(f, bool):
        return str(f)
    if unit == "fraction":
        return f"{100 * f:.1f}%"
    if unit == "x":
        return f"{f:.2f}x"
    return f"{f:.3g}"


def _table(head, lines) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [head, *lines]]  # fmt: skip


def _header(result: dict) -> list[str]:
    m, s = result["machine"], result["settings"]
    bf = m.get("bf16") or {}
    bf_text = ("yes (" + ", ".join(bf.get("cpu_flags") or [bf.get("source", "")]) + ")"
               if bf.get("supported") else "no")  # fmt: skip
    cal = m.get("calibration_gflops") or {}
    return [
        f"fmrecon-bench{' --quick' if s['quick'] else ''}: {m['cpu']}, "
        f"{m['logical_cores']} logical cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"device {s['device']}{' ' + m['gpu'] if m.get('gpu') else ''}, bf16 hardware {bf_text}, "
        f"TF32 {'on' if s.get('tf32') else 'off'}"
        + (f", torch.compile {_compiled(s['compile'])}" if s.get("compile") else ", eager"),
        f"batch 1, {s['coils']} coils, simulated cardiac slices, x4 mask; median of "
        f"{s['repeats']} after {s['warmup']} warm-up; fp32 matmul {cal.get('start')} -> "
        f"{cal.get('end')} GFLOP/s (start -> end); {result['elapsed_s']:.0f} s",
        "",
    ]


def _compiled(options: dict) -> str:
    """``inductor default`` / ``eager backend``: what the compiled rows ran."""
    backend = options.get("backend", "inductor")
    return f"inductor {options.get('mode')}" if backend == "inductor" else f"{backend} backend"


def _achieved(r: dict) -> str:
    """An inference row's GFLOP/s and its fraction of the run's matmul rate."""
    rate, frac = r.get("infer_gflops_per_s"), r.get("infer_matmul_fraction")
    if rate is None:
        return "-"
    return f"{rate:.3g}" + (f" ({100 * frac:.0f}%)" if frac is not None else "")


def _rows(result: dict) -> list[str]:
    s = result["settings"]
    head = ("model", "size", "prec", "ckpt", "infer s", "GFLOP/s (% of matmul)", "train s",
            "infer MB", "train MB", "base MB")  # fmt: skip
    lines = [
        (r["model"], r["size"], r["precision"], onoff(r["checkpointing"]),
         _s(r["infer_s"]), _achieved(r), _s(r["train_s"]), _mb(r["infer_mem_mb"]),
         _mb(r["train_mem_mb"]), _mb(r["mem_base_mb"]))
        for r in result["rows"]
    ]  # fmt: skip
    rate = (result["machine"].get("calibration_gflops") or {}).get("start")
    method = next((r["mem_method"] for r in result["rows"] if r.get("mem_method")), "-")
    out = _table(head, lines) + [
        f"infer s = seconds per slice, train s = seconds per training step (forward, SSIM "
        f"loss, backward, Adam); MB = peak above the built model and inputs, gradients and "
        f"Adam state included ({method}, "
        f"one fresh process per variant); base MB = memory after building",
        "GFLOP/s = the inference's FLOPs (FlopCounterMode: matmuls and convolutions) / infer s, "
        f"and its share of this run's fp32 matmul rate ({rate} GFLOP/s at the start; bf16 "
        "rows can exceed 100%)",
    ]
    if s.get("compile"):  # one timing process per model and size: its compile time
        spent = {(r["model"], r["size"]): r["compile_s"] for r in result["rows"]
                 if r.get("compile_s") is not None}  # fmt: skip
        out.append(
            f"torch.compile ({_compiled(s['compile'])}, fmrecon's option): every variant compiled "
            "before timing and memory; seconds compiling: "
            + (", ".join(f"{m} {size} {t:.0f}" for (m, size), t in spent.items()) or "-")
        )
    if not s.get("interleave", True):
        out.append(
            "quick: each variant timed once in its own process, so ratios between "
            "variants are rough; the full bench times them round-robin in one process"
        )
    opts = s.get("model_options") or {}
    reduced = [f"{k} {v['num_cascades']} cascades" for k, v in opts.items() if "num_cascades" in v]
    if reduced:
        out.append("reduced models (goals 1, 3, 4 measured on them): " + ", ".join(reduced))
    return [*out, ""]


def _goals(result: dict) -> list[str]:
    head = ("goal", "figure", "target", "met")
    met = {True: "yes", False: "NO", None: "n/a"}
    lines = [(g["goal"], format_figure(g), g.get("target", ""), met.get(g.get("met"), "?"))
             for g in result["goals"]]  # fmt: skip
    return _table(head, lines) + [
        f"  {g['id']}: {g['note']}" for g in result["goals"] if g.get("note")
    ]


def format_report(result: dict) -> str:
    """The human-readable report: machine, the table, the goals."""
    out = _header(result)
    if result["rows"]:
        out += _rows(result)
    if result["goals"]:
        out += _goals(result)
    profiles = [p for p in result.get("profile") or [] if "rows" in p]
    if profiles:  # where the time goes (fmrecon_bench.profile)
        rate = (result["machine"].get("calibration_gflops") or {}).get("start")
        out += ["", "where the time goes (inference forward; GFLOP/s of matmuls and "
                "convolutions, FlopCounterMode):"] + format_profile(profiles, rate)  # fmt: skip
    if result.get("memory_estimate"):
        out += ["", "memory estimate (fmrecon.models.memory, GPU, batch 1):"]
        out.append(format_table(result["memory_estimate"]))
    if result["errors"]:
        out += ["", "errors:"] + [f"  {e}" for e in result["errors"]]
    return "\n".join(out)


def write_json(result: dict, path: str | os.PathLike) -> None:
    """Write the result atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=json_default) + "\n")
