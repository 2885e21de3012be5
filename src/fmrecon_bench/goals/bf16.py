"""Goal 3, bf16 autocast: FM-VarNet's training step at least 1.5x faster
than in fp32 on bf16 hardware (3a, from the table), at the same quality: the
SSIM of a fixed evaluation within 0.002 of fp32's (3b)."""

from __future__ import annotations

import statistics

from fmrecon.losses import ssim
from fmrecon.models.io import load_model
from fmrecon.utils import resolve_device
from fmrecon_bench.config import BenchConfig, cine_size, fm_varnet, options_of, size_label
from fmrecon_bench.goals.base import Goal, entry, missing, not_measured
from fmrecon_bench.harness import (
    Runner,
    build_model,
    model_name,
    paired_ratio,
    prepare_process,
    simulated_batches,
)
from fmrecon_bench.machine import bf16_support
from fmrecon_bench.table import find_row, onoff


def measure(model, options, size, coils, n_slices, checkpoint, train_steps, device,
            threads) -> dict:  # fmt: skip
    """SSIM of one model (same weights) on the same simulated slices with
    the fixed x4 mask, fp32 vs bf16 autocast.

    With ``checkpoint``: that trained model. Without: ``model`` with random
    weights trained for ``train_steps`` fp32 Adam steps (lr 1e-3, the FM-VarNet
    paper's) on the same slices. The FM models' heads start at zero, so an
    untrained model is exactly the zero-filled reconstruction and bf16 would
    never reach its denoisers' output; after a few steps every cascade adds a
    small learned correction, as in training (the fp32 SSIM is reported)."""
    prepare_process(threads)
    dev = resolve_device(device)
    if checkpoint:
        net = load_model(checkpoint).to(dev)
        weights = f"checkpoint {checkpoint}"
    else:
        net = build_model(model, options, dev)
        weights = f"random, then {train_steps} fp32 Adam steps"
    runner = Runner(net, dev, label=model, lr=1e-3)
    slices = simulated_batches(*size, coils, n=n_slices, device=dev)
    if not checkpoint and runner.trainable:
        for i in range(train_steps):
            runner.train(slices[i % len(slices)], "fp32")
    s32, s16, rel = [], [], []
    for x in slices:
        a, b = runner.infer(x, "fp32"), runner.infer(x, "bf16")
        s32.append(float(ssim(a, x.target, x.max_value)[0]))
        s16.append(float(ssim(b, x.target, x.max_value)[0]))
        rel.append(float((a - b).abs().max() / a.abs().max().clamp_min(1e-30)))
    return {
        "model": model_name(net, model),
        "weights": weights,
        "slices": n_slices,
        "size": list(size),
        "ssim_fp32": statistics.fmean(s32),
        "ssim_bf16": statistics.fmean(s16),
        "abs_diff": abs(statistics.fmean(s32) - statistics.fmean(s16)),
        "max_abs_diff_per_slice": max(abs(p - q) for p, q in zip(s32, s16, strict=True)),
        "max_rel_output_diff": max(rel),
        "bf16": bf16_support(dev.type),
    }


def _speed(rows: list[dict], cfg: BenchConfig, machine: dict) -> dict:
    """3a: the fp32 / bf16 training-step time ratio of FM-VarNet at the cine
    size (checkpointing off), from the table's rows; judged on bf16 hardware only."""
    fm, cine = fm_varnet(cfg), size_label(cine_size(cfg.sizes))
    goal = f"3 bf16 autocast: {fm} training step fp32 / bf16 time at {cine}"
    bf = (machine.get("bf16") or {}).get("supported")
    per = {}
    for s in cfg.sizes:
        for c in (False, True):
            a = find_row(rows, fm, s, "fp32", c)
            b = find_row(rows, fm, s, "bf16", c)
            if a and b and a["train_s"] and b["train_s"]:
                per[f"{size_label(s)} ckpt {onoff(c)}"] = {
                    "train_ratio": paired_ratio(a["train_times"], b["train_times"]),
                    "infer_ratio": paired_ratio(a["infer_times"], b["infer_times"]),
                    "fp32_s": a["train_s"], "bf16_s": b["train_s"],
                }  # fmt: skip
    head = per.get(f"{cine} ckpt off")
    if head is None:
        return missing("3a", goal, ">= 1.5x (bf16 hardware)",
                       f"no fp32 and bf16 rows of {fm} at {cine}", "x")  # fmt: skip
    r = head["train_ratio"]
    note = (f"{head['fp32_s']:.3g} s vs {head['bf16_s']:.3g} s; bf16 hardware: "
            f"{'yes' if bf else 'no (target does not apply)'}")  # fmt: skip
    return entry("3a", goal, r, ">= 1.5x (bf16 hardware)", (r >= 1.5) if bf else None, "x",
                 note, {"per_size": per, "bf16": machine.get("bf16")})  # fmt: skip


def judge(rows, ev: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """3a (:func:`_speed`) and 3b: |mean SSIM fp32 - mean SSIM bf16| <= 0.002."""
    goal = (
        f"3 bf16 autocast: |SSIM fp32 - SSIM bf16|, fixed evaluation at {size_label(cfg.sizes[0])}"
    )
    if gone := not_measured("3b", goal, "<= 0.002", ev):
        return [_speed(rows, cfg, machine), gone]
    d = ev["abs_diff"]
    quality = entry(
        "3b", goal, d, "<= 0.002", d <= 0.002, "",
        f"SSIM {ev['ssim_fp32']:.4f} (fp32) vs {ev['ssim_bf16']:.4f} (bf16) on "
        f"{ev['slices']} simulated slice(s), x4 mask; {ev['model']}, {ev['weights']}",
        ev,
    )  # fmt: skip
    return [_speed(rows, cfg, machine), quality]


def _arguments(cfg: BenchConfig, device: str) -> dict:
    fm = fm_varnet(cfg)
    return {"model": fm, "options": options_of(cfg, fm), "size": list(cfg.sizes[0]),
            "coils": cfg.coils, "n_slices": 1 if cfg.quick else 3,
            "checkpoint": cfg.eval_checkpoint, "train_steps": cfg.train_steps,
            "device": device, "threads": cfg.threads}  # fmt: skip


GOAL = Goal(
    number=3,
    key="bf16_eval",
    judge=judge,
    measure=measure,
    arguments=_arguments,
    describe=lambda cfg: (
        f"goal 3: {fm_varnet(cfg)} SSIM fp32 vs bf16 at {size_label(cfg.sizes[0])}"
    ),
)
