"""Goal 5, the FM-UNETR feature cache (:mod:`fmrecon.models.feature_cache`):
an epoch after the first reaches at least 90% of the speed-up the cache can
give by construction.

The cache can only remove the frozen encoder's forward pass, so the speed-up
of a training epoch is bounded by its ceiling ``step / (step - encoder)``
(= ``1 / (1 - encoder share of a training step)``), both measured in the same
run. The encoder is 14-17% of an FM-UNETR step (the trainable UNETR decoder,
forward and backward, is the rest), so the ceiling is ~1.2x and the former
goal of 5x could never be met; the figure is the measured speed-up as a
fraction of the ceiling, i.e. how much of what caching can save it saves.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from fmrecon.data.slices import collate
from fmrecon.encoders.preprocess import prepare_images
from fmrecon.models.feature_cache import FeatureCache
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c
from fmrecon_bench.config import BenchConfig
from fmrecon_bench.goals.base import Goal, entry, not_measured
from fmrecon_bench.harness import (
    Runner,
    build_model,
    prepare_process,
    simulated_dataset,
    time_rounds,
)

GOAL_TEXT = "5 feature cache: training epoch speed-up / its ceiling"
TARGET = ">= 90% of ceiling"
MODES = ("train", "train_cached", "infer", "infer_cached")


def measure(quick: bool = False, threads: int | None = None) -> dict:
    """Per-item step times of full-size FM-UNETR (random CLIP-layout encoder)
    with and without the cache, on simulated cine slices (10 coils, 218x180;
    quick: 4 coils, 96x80) read with the official x4 mask files, on the CPU.
    After an untimed warm-up epoch and the first (cold) cached epoch, each
    item's training and inference steps with and without the cache run in
    the same rounds (paired, so drift cancels); a step includes reading its
    slice. Also the encoder's own forward on one item."""
    n_items, size, coils = (2, (96, 80), 4) if quick else (8, (218, 180), 10)
    reps = 2 if quick else 3
    prepare_process(threads)
    cpu = torch.device("cpu")
    model = build_model("fm-unetr-clip", None, cpu)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.01)
    runner = Runner(model, cpu, label="fm-unetr-clip", optimizer=opt)
    with tempfile.TemporaryDirectory(prefix="fmrecon-cache-bench-") as tmp:
        subjects = max(1, -(-n_items // 2))  # two frames per subject
        ds = simulated_dataset(Path(tmp) / "data", subjects, size, coils, slices=1, frames=2,
                               official_masks=True)  # fmt: skip
        ds.content_keys = True
        items = range(min(n_items, len(ds)))
        cache = FeatureCache(Path(tmp) / "cache")

        def step(i: int, mode: str):
            def call() -> None:
                model.feature_cache = cache if mode.endswith("_cached") else None
                batch = collate([ds[i]])
                with cache.batch_keys(batch.content_key):  # hashed by the loader, as in training
                    (runner.train if mode.startswith("train") else runner.infer)(batch, "fp32")

            return call

        # warm-up (allocator, oneDNN kernels), then the first cached epoch: all misses, written
        time_rounds({i: step(i, "train") for i in items}, repeats=0, warmup=1)
        cold = time_rounds({i: step(i, "train_cached") for i in items}, repeats=1, warmup=0)
        first = cache.summary()
        with torch.no_grad():
            s = ds[items[0]]
            pixels, _ = prepare_images(rss(ifft2c(s.kspace[None]), dim=1), model.encoder)

        def encode() -> None:  # the encoder's own cost
            with torch.no_grad():
                model.encode(pixels)

        groups = [{(mode, i): step(i, mode) for mode in MODES} for i in items]
        times = time_rounds(*groups, {"encoder": encode}, repeats=reps, warmup=0)
        stats = cache.summary()
        disk = sum(f.stat().st_size for f in cache.folder.rglob("*.fc"))
    model.feature_cache = None
    return {
        "model": "fm-unetr-clip (full size, random-init encoder)",
        "items": len(items),
        "size": list(size),
        "coils": coils,
        "threads": torch.get_num_threads(),
        "repeats": reps,
        "item_s": {mode: [times[(mode, i)] for i in items] for mode in MODES},
        "cold_epoch_s": sum(t for ts in cold.values() for t in ts),
        "encoder_s": times["encoder"],
        "first_epoch_misses": first["misses"],
        "cache": stats,
        "cache_bytes": disk,
    }


def ceiling(step_s: float, encoder_s: float) -> float:
    """The largest speed-up removing the encoder's forward can give a step of
    ``step_s`` seconds: ``step / (step - encoder)``. An encoder measured at
    least as long as the step (noise on a tiny model) gives no bound: inf."""
    rest = step_s - encoder_s
    return step_s / rest if rest > 0 else float("inf")


def judge(rows, fc: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """The uncached / cached epoch time of training (an epoch's time is the
    sum over its items of the fastest repeat of that item's step: other load
    on a shared machine only ever adds time) as a fraction of its ceiling
    (:func:`ceiling` of the mean uncached step and the encoder's fastest
    forward, same run); >= 90%."""
    if gone := not_measured("5", GOAL_TEXT, TARGET, fc, "fraction"):
        return [gone]

    def best(mode: str) -> float:
        return sum(min(ts) for ts in fc["item_s"][mode])

    n, (h, w), stats = fc["items"], fc["size"], fc["cache"]
    speedup = best("train") / best("train_cached")
    encoder = min(fc["encoder_s"])
    bound = ceiling(best("train") / n, encoder)
    fraction = speedup / bound
    share = encoder * n / best("train")
    per_item = 1e3 / max(1, stats["hits"] + stats["misses"])
    note = (
        f"epoch {best('train'):.2f} s -> {best('train_cached'):.2f} s ({n} items, "
        f"{h}x{w}): {speedup:.2f}x of a {bound:.2f}x ceiling (the frozen encoder is "
        f"{100 * share:.0f}% of a training step, and caching removes only it); inference "
        f"{best('infer') / best('infer_cached'):.2f}x"
    )
    detail = {
        "model": fc["model"], "items": n, "size": [h, w], "coils": fc["coils"],
        "threads": fc["threads"], "repeats": fc["repeats"],
        "speedup": round(speedup, 3),
        "ceiling": round(bound, 3),
        "fraction_of_ceiling": round(fraction, 3),
        "epoch_s_uncached": round(best("train"), 3),
        "epoch_s_cached": round(best("train_cached"), 3),
        "epoch_s_cached_first": round(fc["cold_epoch_s"], 3),
        "first_epoch_overhead": round(fc["cold_epoch_s"] / best("train"), 3),
        "inference_epoch_s": round(best("infer"), 3),
        "inference_epoch_s_cached": round(best("infer_cached"), 3),
        "inference_speedup": round(best("infer") / best("infer_cached"), 2),
        "encoder_forward_s_per_item": round(encoder, 4),
        "encoder_share_of_training_step": round(share, 3),
        "host_hash_ms_per_item": round(stats["hash_seconds"] * per_item, 2),
        "io_ms_per_item": round(stats["io_seconds"] * per_item, 2),
        "hits": stats["hits"], "misses": stats["misses"],
        "first_epoch_misses": fc["first_epoch_misses"], "cache_bytes": fc["cache_bytes"],
        "why": (
            "caching removes only the frozen encoder's forward; the trainable UNETR decoder "
            "(forward + backward at 224 px) is most of a step, so the speed-up is bounded by "
            "step / (step - encoder forward)"
        ),
    }  # fmt: skip
    return [entry("5", GOAL_TEXT, round(fraction, 3), TARGET, bool(fraction >= 0.9), "fraction",
                  note, detail)]  # fmt: skip


GOAL = Goal(
    number=5,
    key="feature_cache",
    judge=judge,
    measure=measure,
    arguments=lambda cfg, device: {"quick": cfg.quick, "threads": cfg.threads},
    describe=lambda cfg: "goal 5: feature cache (fmrecon.models.feature_cache)",
)
