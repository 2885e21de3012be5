"""Goal 2, the truncated encoder: FM-VarNet builds and runs only the 6 ViT
blocks it uses, which must be at least 1.8x faster than the full encoder."""

from __future__ import annotations

import torch

from fmrecon.encoders import build_encoder
from fmrecon.utils import resolve_device
from fmrecon_bench.config import BenchConfig
from fmrecon_bench.goals.base import Goal, entry, not_measured
from fmrecon_bench.harness import (
    build_model,
    median,
    paired_ratio,
    prepare_process,
    sync,
    time_rounds,
)

GOAL_TEXT = "2 truncated encoder: full / 6-block encoder forward time (224x224, batch 1)"
TARGET = ">= 1.8x, 6 blocks built"


def measure(encoder, blocks, repeats, warmup, device, threads) -> dict:
    """The truncated encoder (``blocks``) against the full one, forward and
    forward+backward to the input pixels, at the encoder's input size, timed
    in the same rounds; and the blocks FM-VarNet builds."""
    prepare_process(threads)
    dev = resolve_device(device)
    with torch.device("meta"):  # what the FM-VarNet builds, without memory
        built = len(build_model("fm-varnet-clip", None, "meta").encoder.blocks)
    trunc = build_encoder(encoder, num_layers=blocks, weights="random", allow_random=True).to(dev)
    full = build_encoder(encoder, num_layers=None, weights="random", allow_random=True).to(dev)
    s = trunc.image_size
    x = torch.randn(1, 3, s, s, device=dev)

    def fwd(enc):
        with torch.no_grad():
            enc(x)
        sync(dev)

    def fwd_bwd(enc, used=None):
        xi = x.clone().requires_grad_(True)
        feats = enc(xi)[:used]
        sum(f.mean() for f in feats).backward()
        sync(dev)

    calls = {
        "fwd_trunc": lambda: fwd(trunc),
        "fwd_full": lambda: fwd(full),
        "fb_trunc": lambda: fwd_bwd(trunc),
        "fb_full": lambda: fwd_bwd(full),
        # the full encoder when only the first `blocks` outputs are used
        "fb_full_used": lambda: fwd_bwd(full, blocks),
    }
    return {
        "encoder": encoder,
        "image_size": s,
        "blocks_trunc": trunc.num_layers,
        "blocks_full": full.num_layers,
        "fm_varnet_encoder_blocks": built,
        "times": time_rounds(calls, repeats=repeats, warmup=warmup),
        "threads": torch.get_num_threads(),
    }


def judge(rows, enc: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """The forward-time ratio full / truncated (paired rounds) >= 1.8, and
    FM-VarNet building exactly 6 blocks."""
    if gone := not_measured("2", GOAL_TEXT, TARGET, enc):
        return [gone]
    tt = enc["times"]
    t = {k: median(v) for k, v in tt.items()}
    rf = paired_ratio(tt["fwd_full"], tt["fwd_trunc"])
    rb = paired_ratio(tt["fb_full"], tt["fb_trunc"])
    ru = paired_ratio(tt["fb_full_used"], tt["fb_trunc"])
    built = enc["fm_varnet_encoder_blocks"]
    return [entry(
        "2", GOAL_TEXT, rf, TARGET, rf >= 1.8 and built == 6, "x",
        f"forward {t['fwd_trunc']:.3g} s vs {t['fwd_full']:.3g} s; forward+backward "
        f"{t['fb_trunc']:.3g} s vs {t['fb_full']:.3g} s ({rb:.2f}x); FM-VarNet builds "
        f"{built} of {enc['blocks_full']} blocks",
        {"forward_ratio": rf, "fwd_bwd_ratio": rb, "fwd_bwd_ratio_first6_used": ru,
         **{f"{k}_s": v for k, v in t.items()}, "encoder": enc["encoder"],
         "blocks": [enc["blocks_trunc"], enc["blocks_full"]],
         "fm_varnet_encoder_blocks": built, "times": enc["times"]},
    )]  # fmt: skip


GOAL = Goal(
    number=2,
    key="encoder",
    judge=judge,
    measure=measure,
    arguments=lambda cfg, device: {
        "encoder": cfg.encoder,
        "blocks": 6,
        "repeats": max(cfg.repeats, 3),
        "warmup": max(cfg.warmup, 1),
        "device": device,
        "threads": cfg.threads,
    },  # fmt: skip
    describe=lambda cfg: f"goal 2: 6-block vs full {cfg.encoder} encoder",
    before_table=True,
)
