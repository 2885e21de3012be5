"""Goal 1, the reference check: our E2E-VarNet against fastMRI's VarNet with
the same weights on the same input: at least 1.5x faster, eager against eager,
in inference and in a training step (issue 21; 1a), with the same output
(1b). Then, as figures only (1c), both compiled: fastMRI's VarNet with plain
``torch.compile`` on the whole module, ours through fmrecon's option
(:func:`fmrecon.utils.compile_model`, region by region)."""

from __future__ import annotations

import torch
from torch import nn

from fmrecon.models.varnet import VarNet
from fmrecon.utils import compile_options, compile_seconds, resolve_device
from fmrecon_bench.config import BenchConfig, options_of, size_label
from fmrecon_bench.goals.base import Goal, entry, missing
from fmrecon_bench.harness import (
    Runner,
    median,
    paired_ratio,
    prepare_process,
    simulated_batches,
    time_rounds,
)
from fmrecon_bench.machine import FASTMRI_HINT, optional_fastmri

# quick: goal 1 at the quick start's image size; at 64x48 a step takes ~50 ms
# and per-call overheads and noise, not the implementations, decide the ratio
QUICK_REFERENCE_SIZE = (128, 96)
SPEED = "1 reference check: speed-up, fastMRI VarNet / e2e-varnet time, eager"
OUTPUT = "1 reference check: output, max relative difference (same weights)"
COMPILED = "1 reference check: speed-up compiled, fastMRI VarNet / e2e-varnet time"
TARGET = 1.5  # issue 21: E2E-VarNet >= 1.5x faster than fastMRI's VarNet, eager vs eager


def reference_size(cfg: BenchConfig) -> tuple[int, int]:
    """Where goal 1 is measured: the first size (quick: at least 128x96)."""
    first = tuple(cfg.sizes[0])
    if not cfg.quick:
        return first
    return max(first, QUICK_REFERENCE_SIZE, key=lambda s: s[0] * s[1])


class FastmriInputs(nn.Module):
    """fastMRI's VarNet called as ours: masked k-space (B, C, H, W) complex ->
    (B, C, H, W, 2) real (a view), mask (B, 1, H, W) -> (B, 1, 1, W, 1)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.view_as_real(kspace), mask[:, :, :1, :, None])


def measure(size, coils, repeats, warmup, device, threads, options=None, compiled=False,
            compile=None) -> dict:  # fmt: skip
    """Both models with the same weights on the same input: the output
    difference (fp32, eval mode), then inference and training steps timed
    in the same rounds. With ``compiled``: then both compiled (ours through
    fmrecon's option ``compile``, default ``compile_options(True)``; fastMRI's
    with ``torch.compile`` on the whole module, the same defaults), the
    compile warm-up timed apart, and the same four calls timed again."""
    fastmri = optional_fastmri()
    if fastmri is None:
        return {"available": False, "note": FASTMRI_HINT}
    prepare_process(threads)
    dev = resolve_device(device)
    kw = {"num_cascades": 12, "chans": 18, "pools": 4, "sens_chans": 8, "sens_pools": 4}
    kw.update({k: v for k, v in (options or {}).items() if k in kw})
    ours = VarNet(**kw).to(dev)
    ref = fastmri.models.VarNet(**kw).to(dev)
    ref.load_state_dict(ours.state_dict())
    batch = simulated_batches(*size, coils, device=dev)[0]
    r_ours = Runner(ours, dev, label="e2e-varnet")
    r_ref = Runner(FastmriInputs(ref), dev, label="fastMRI VarNet")
    a, b = r_ours.infer(batch, "fp32"), r_ref.infer(batch, "fp32")
    rel = float((a - b).abs().max() / b.abs().max())
    times = time_rounds(_calls(r_ours, r_ref, batch), repeats=repeats, warmup=warmup)
    out = {"available": True, "max_rel_diff": rel, "times": times, "config": kw,
           "threads": torch.get_num_threads()}  # fmt: skip
    if compiled:
        out["compiled"] = _compiled(ours, ref, batch, dev, repeats, warmup,
                                    compile or compile_options(True))  # fmt: skip
    return out


def _calls(r_ours: Runner, r_ref: Runner, batch) -> dict:
    return {
        "infer_ours": lambda: r_ours.infer(batch, "fp32"),
        "infer_ref": lambda: r_ref.infer(batch, "fp32"),
        "train_ours": lambda: r_ours.train(batch, "fp32"),
        "train_ref": lambda: r_ref.train(batch, "fp32"),
    }


def _compiled(ours, ref, batch, dev, repeats: int, warmup: int, options: dict) -> dict:
    """Both models compiled (after the eager rounds, which trained them: the
    weights are loaded equal again), each compile warm-up timed apart."""
    ref.load_state_dict(ours.state_dict())
    r_ours = Runner(ours, dev, label="e2e-varnet", compile=options)
    plain = dict(options)  # torch.compile's own keywords, the same values
    if plain.get("backend", "inductor") != "inductor":
        plain.pop("mode", None)  # modes are inductor's
    r_ref = Runner(FastmriInputs(torch.compile(ref, **plain)), dev, label="fastMRI VarNet")
    spent, outs = {"ours": 0.0, "ref": 0.0}, {}
    runners = (("ours", r_ours), ("ref", r_ref))
    for name, r in runners:  # both outputs before a training step changes the weights
        before = compile_seconds()
        outs[name] = r.infer(batch, "fp32")
        spent[name] += compile_seconds() - before
    for name, r in runners:
        before = compile_seconds()
        r.train(batch, "fp32")
        spent[name] += compile_seconds() - before
    rel = float((outs["ours"] - outs["ref"]).abs().max() / outs["ref"].abs().max())
    times = time_rounds(_calls(r_ours, r_ref, batch), repeats=repeats, warmup=warmup)
    return {"times": times, "compile_s": spent, "max_rel_diff": rel, "options": options}


def speedups(times: dict) -> tuple[float, float]:
    """fastMRI time / ours (paired rounds): inference, training step."""
    return (paired_ratio(times["infer_ref"], times["infer_ours"]),
            paired_ratio(times["train_ref"], times["train_ours"]))  # fmt: skip


def _pair_note(times: dict, ri: float, rt: float, at: str) -> str:
    t = {k: median(v) for k, v in times.items()}
    return (f"worst of inference {ri:.2f}x ({t['infer_ref']:.3g} s -> {t['infer_ours']:.3g} s) "
            f"and training step {rt:.2f}x ({t['train_ref']:.3g} s -> {t['train_ours']:.3g} s) "
            f"at {at}; median of {len(times['train_ours'])} paired rounds")  # fmt: skip


def judge(rows, ref: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """1a: the worse of the inference and training-step speed-ups (fastMRI's
    time / ours, paired rounds), >= 1.5x; 1b: the largest output difference
    relative to fastMRI's largest output value, <= 1e-4; 1c: the speed-ups
    with both models compiled, reported, not judged."""
    at = size_label(reference_size(cfg))
    target = f">= {TARGET}x"
    if "error" in ref:
        return [missing("1a", SPEED, target, f"failed: {ref['error']}", "x")]
    if not ref.get("available"):
        why = ref.get("note", FASTMRI_HINT) if ref else "not run"
        return [missing("1a", SPEED, target, why, "x"), missing("1b", OUTPUT, "<= 1e-4", why)]
    tt = ref["times"]
    t = {k: median(v) for k, v in tt.items()}
    ri, rt = speedups(tt)
    worst = min(ri, rt)
    detail = {"size": at, "coils": cfg.coils, "inference_speedup": ri,
              "train_step_speedup": rt, **{f"{k}_s": v for k, v in t.items()},
              "times": ref["times"], "config": ref["config"]}  # fmt: skip
    d = ref["max_rel_diff"]
    out = [
        entry("1a", SPEED, worst, target, worst >= TARGET, "x", _pair_note(tt, ri, rt, at),
              detail),
        entry("1b", OUTPUT, d, "<= 1e-4", d <= 1e-4, "", f"fp32, eval mode, at {at}"),
    ]  # fmt: skip
    c = ref.get("compiled")
    if c is None:
        why = "not measured (--quick: compiling both models takes minutes)" if cfg.quick else (
            "not measured")  # fmt: skip
        return [*out, missing("1c", COMPILED, "reported, not judged", why, "x")]
    ci, ct = speedups(c["times"])
    s = c["compile_s"]
    note = (_pair_note(c["times"], ci, ct, at) + f"; fastMRI: torch.compile on the whole "
            f"module, ours: fmrecon's option; compile {s['ref']:.0f} s / {s['ours']:.0f} s "
            f"apart; outputs {c['max_rel_diff']:.1e} apart")  # fmt: skip
    cdetail = {"inference_speedup": ci, "train_step_speedup": ct, **c}
    return [*out, entry("1c", COMPILED, min(ci, ct), "reported, not judged", None, "x", note,
                        cdetail)]  # fmt: skip


GOAL = Goal(
    number=1,
    key="reference",
    judge=judge,
    measure=measure,
    arguments=lambda cfg, device: {
        "size": list(reference_size(cfg)),
        "coils": cfg.coils,
        "repeats": max(cfg.repeats, 3 if cfg.quick else 5),
        "warmup": max(cfg.warmup, 1),
        "options": options_of(cfg, "e2e-varnet"),
        "compiled": not cfg.quick,  # the pair compiled: minutes of compiling
        "compile": cfg.compile or compile_options(True),
        "device": device,
        "threads": cfg.threads,
    },  # fmt: skip
    describe=lambda cfg: (
        f"goal 1: e2e-varnet vs fastMRI VarNet at {size_label(reference_size(cfg))}"
    ),
    before_table=True,
)
