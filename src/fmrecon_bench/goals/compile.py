"""Goal 8, torch.compile through fmrecon's own option: FM-VarNet's training step
(forward, SSIM loss, backward through the frozen encoder, Adam) and its
inference each at least 1.35x faster compiled than eager (issue 21).

One model, one process: the model is compiled in place through the bench's
runner (``compile_options(True)`` -> :func:`fmrecon.utils.compile_model`, as
``trainer.compile`` / ``--compile`` do), and its eager calls run the same
module, weights and optimizer under ``torch.compiler.set_stance("force_eager")``
(PyTorch's switch that runs compiled functions' original code). The compile
warm-up (inference and training graphs) is timed apart; then eager and
compiled calls alternate in paired rounds (ABBA), and a ratio is the median of
the per-round ratios. E2E-VarNet is measured the same way after it, as
figures (not judged)."""

from __future__ import annotations

import time

import torch

from fmrecon.utils import compile_options, compile_seconds, resolve_device
from fmrecon_bench.config import BenchConfig, fm_varnet, options_of, size_label
from fmrecon_bench.goals.base import Goal, entry, missing, not_measured
from fmrecon_bench.harness import (
    Runner,
    build_model,
    median,
    paired_ratio,
    prepare_process,
    simulated_batches,
    time_rounds,
)

TARGET = 1.35  # issue 21: compiled >= 1.35x faster than eager, training step and inference
SPEED = "8 torch.compile: {model} eager / compiled time"
E2E = "e2e-varnet"


def eager(fn):
    """``fn`` run with every compiled region's original (eager) code."""

    def call():
        with torch.compiler.set_stance("force_eager"):
            return fn()

    return call


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: the bench's output difference (goal 1b's too)."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def measure_one(model: str, options: dict | None, batch, dev, repeats: int, warmup: int,
                compile: dict) -> dict:  # fmt: skip
    """One model compiled in place: compile warm-up (a training step, then an
    inference), paired rounds of eager and compiled inference and training steps,
    then the compiled and the eager output of the trained model."""
    net = build_model(model, options, dev)
    runner = Runner(net, dev, label=model, compile=compile)
    before, t0 = compile_seconds(), time.perf_counter()
    if runner.trainable:  # the training graphs (forward and backward), as the table does
        runner.train(batch)
    runner.infer(batch)  # then the inference graphs
    warm_s = time.perf_counter() - t0
    compile_s = compile_seconds() - before
    calls = {"infer_eager": eager(lambda: runner.infer(batch)),
             "infer_compiled": lambda: runner.infer(batch)}  # fmt: skip
    if runner.trainable:
        calls |= {"train_eager": eager(lambda: runner.train(batch)),
                  "train_compiled": lambda: runner.train(batch)}  # fmt: skip
    times = time_rounds(calls, repeats=repeats, warmup=warmup)
    recompile_s = compile_seconds() - before - compile_s  # > 0: a graph recompiled in the rounds
    # after the Adam steps of the rounds: the FM models' heads start at zero, so
    # an untrained FM-VarNet returns its zero-filled input and would hide its denoisers
    steps = (warmup + repeats) * 2 + 1 if runner.trainable else 0
    got = runner.infer(batch)
    want = eager(lambda: runner.infer(batch))()
    return {"model": model, "options": options or {}, "times": times,
            "compile_s": compile_s, "warmup_s": warm_s, "recompile_s": recompile_s,
            "max_rel_diff": _rel(got, want), "adam_steps_before_diff": steps}  # fmt: skip


def measure(model, options, size, coils, repeats, warmup, device, threads, compile=None,
            e2e: bool = True, e2e_options=None) -> dict:  # fmt: skip
    """``model`` (FM-VarNet), then E2E-VarNet when ``e2e``, each compiled
    through fmrecon's option (``compile``: its options, default
    ``compile_options(True)``) and timed against itself eager."""
    prepare_process(threads)
    dev = resolve_device(device)
    compile = compile or compile_options(True)
    batch = simulated_batches(*size, coils, device=dev)[0]
    out = {"size": list(size), "coils": coils, "threads": torch.get_num_threads(),
           "compile": compile, "fm": measure_one(model, options, batch, dev, repeats, warmup,
                                                 compile)}  # fmt: skip
    if e2e:
        out["e2e"] = measure_one(E2E, e2e_options, batch, dev, repeats, warmup, compile)
    return out


def speedups(m: dict) -> dict:
    """Eager / compiled time (paired rounds) of inference and training step."""
    t = m["times"]
    return {
        k: paired_ratio(t.get(f"{k}_eager"), t.get(f"{k}_compiled")) for k in ("infer", "train")
    }


def _note(m: dict, r: dict, at: str) -> str:
    t = {k: median(v) for k, v in m["times"].items()}
    n = len(m["times"]["infer_compiled"])
    parts = [
        f"inference {r['infer']:.2f}x ({t['infer_eager']:.3g} s -> {t['infer_compiled']:.3g} s)"
    ]
    if r["train"] is not None:
        parts.append(f"training step {r['train']:.2f}x ({t['train_eager']:.3g} s -> "
                     f"{t['train_compiled']:.3g} s)")  # fmt: skip
    recompiled = (
        f", recompiled {m['recompile_s']:.0f} s in the rounds" if m["recompile_s"] > 0.5 else ""
    )
    return (f"{' and '.join(parts)} at {at}; compile {m['compile_s']:.0f} s apart{recompiled}; "
            f"compiled vs eager output {m['max_rel_diff']:.1e}; median of {n} paired "
            "rounds")  # fmt: skip


def judge(rows, res: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """8: the worse of FM-VarNet's inference and training-step speed-ups
    (eager time / compiled time, paired rounds), >= 1.35x; 8e: E2E-VarNet's,
    reported, not judged."""
    fm = fm_varnet(cfg)
    at = size_label(cfg.sizes[0])
    goal, target = SPEED.format(model=fm), f">= {TARGET}x"
    if gone := not_measured("8", goal, target, res, "x"):
        return [gone]
    r = speedups(res["fm"])
    worst = min(v for v in r.values() if v is not None)
    detail = {"size": at, "inference_speedup": r["infer"], "train_step_speedup": r["train"],
              **{k: res["fm"][k] for k in ("compile_s", "warmup_s", "recompile_s",
                                           "max_rel_diff", "times")},
              "compile": res["compile"]}  # fmt: skip
    out = [entry("8", goal, worst, target, worst >= TARGET, "x", _note(res["fm"], r, at), detail)]
    if "e2e" not in res:
        out.append(missing("8e", SPEED.format(model=E2E), "reported, not judged",
                           "not measured (--quick)", "x"))  # fmt: skip
        return out
    e = speedups(res["e2e"])
    low = min(v for v in e.values() if v is not None)
    out.append(entry("8e", SPEED.format(model=E2E), low, "reported, not judged", None, "x",
                     _note(res["e2e"], e, at),
                     {"inference_speedup": e["infer"], "train_step_speedup": e["train"],
                      **{k: res["e2e"][k] for k in ("compile_s", "max_rel_diff",
                                                    "times")}}))  # fmt: skip
    return out


def _arguments(cfg: BenchConfig, device: str) -> dict:
    fm = fm_varnet(cfg)
    return {"model": fm, "options": options_of(cfg, fm), "size": list(cfg.sizes[0]),
            "coils": cfg.coils, "repeats": max(cfg.repeats, 3 if cfg.quick else 5),
            "warmup": max(cfg.warmup, 1), "device": device, "threads": cfg.threads,
            "compile": cfg.compile or compile_options(True), "e2e": not cfg.quick,
            "e2e_options": options_of(cfg, E2E)}  # fmt: skip


GOAL = Goal(
    number=8,
    key="compile",
    judge=judge,
    measure=measure,
    arguments=_arguments,
    describe=lambda cfg: (
        f"goal 8: {fm_varnet(cfg)} eager vs compiled (fmrecon's option) at "
        f"{size_label(cfg.sizes[0])}" + ("" if cfg.quick else ", then e2e-varnet")
    ),
)
