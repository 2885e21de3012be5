"""Goal 1, the reference check: our E2E-VarNet against fastMRI's VarNet with
the same weights on the same input, time (no slower) and output (the same)."""

from __future__ import annotations

import torch
from torch import nn

from fmrecon.models.varnet import VarNet
from fmrecon.utils import resolve_device
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
SPEED = "1 reference check: speed, e2e-varnet / fastMRI VarNet time"
OUTPUT = "1 reference check: output, max relative difference (same weights)"


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


def measure(size, coils, repeats, warmup, device, threads, options=None) -> dict:
    """Both models with the same weights on the same input: the output
    difference (fp32, eval mode), then inference and training steps timed
    in the same rounds."""
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
    calls = {
        "infer_ours": lambda: r_ours.infer(batch, "fp32"),
        "infer_ref": lambda: r_ref.infer(batch, "fp32"),
        "train_ours": lambda: r_ours.train(batch, "fp32"),
        "train_ref": lambda: r_ref.train(batch, "fp32"),
    }
    times = time_rounds(calls, repeats=repeats, warmup=warmup)
    return {"available": True, "max_rel_diff": rel, "times": times, "config": kw,
            "threads": torch.get_num_threads()}  # fmt: skip


def judge(rows, ref: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """1a: the worse of the inference and training-step ratios (paired
    rounds), <= 1; 1b: the largest output difference relative to fastMRI's
    largest output value, <= 1e-4."""
    at = size_label(reference_size(cfg))
    if "error" in ref:
        return [missing("1a", SPEED, "<= 1.0", f"failed: {ref['error']}", "x")]
    if not ref.get("available"):
        why = ref.get("note", FASTMRI_HINT) if ref else "not run"
        return [missing("1a", SPEED, "<= 1.0", why, "x"), missing("1b", OUTPUT, "<= 1e-4", why)]
    tt = ref["times"]
    t = {k: median(v) for k, v in tt.items()}
    ri = paired_ratio(tt["infer_ours"], tt["infer_ref"])
    rt = paired_ratio(tt["train_ours"], tt["train_ref"])
    worst = max(ri, rt)
    detail = {"size": at, "coils": cfg.coils, "inference_ratio": ri,
              "train_step_ratio": rt, **{f"{k}_s": v for k, v in t.items()},
              "times": ref["times"], "config": ref["config"]}  # fmt: skip
    d = ref["max_rel_diff"]
    return [
        entry(
            "1a", SPEED, worst, "<= 1.0", worst <= 1.0, "x",
            f"worst of inference {ri:.2f} ({t['infer_ours']:.3g} s vs "
            f"{t['infer_ref']:.3g} s) and training step {rt:.2f} ({t['train_ours']:.3g} s "
            f"vs {t['train_ref']:.3g} s) at {at}; median of {len(tt['train_ours'])} "
            f"paired rounds",
            detail,
        ),
        entry("1b", OUTPUT, d, "<= 1e-4", d <= 1e-4, "", f"fp32, eval mode, at {at}"),
    ]  # fmt: skip


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
        "device": device,
        "threads": cfg.threads,
    },  # fmt: skip
    describe=lambda cfg: (
        f"goal 1: e2e-varnet vs fastMRI VarNet at {size_label(reference_size(cfg))}"
    ),
    before_table=True,
)
