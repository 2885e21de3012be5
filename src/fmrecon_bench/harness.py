"""The benchmark's harness: simulated inputs, models with random encoders, the
training step and the inference call, and the timing loop. Every goal and
the table use these, and nothing else, to build, run and time a model.

Inputs are simulated cardiac slices (:mod:`fmrecon.data.simulate`) with the
CMRxRecon x4 line mask: realistic values matter on CPU (random-noise k-space
and targets can drive the networks into denormal floats, many times slower).
Models run through fmrecon's inference engine
(:class:`fmrecon.inference.engine.Engine`), and a training step computes the
trainer's own objective (:func:`fmrecon.training.objective.training_loss`).

Timing: figures are medians over ``repeats`` rounds after ``warmup`` untimed
ones. Where several things are timed in the same rounds their order is
reversed every other round (ABBA), and a ratio of two of them is the median
of the per-round ratios: on a shared 2-core machine a core can go missing for
tens of seconds, which per-round pairs cancel.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from fmrecon.data.formats import discover
from fmrecon.data.simulate import simulate_cardiac_subject, simulate_cmrxrecon
from fmrecon.data.slices import Sample, SliceDataset, collate
from fmrecon.inference.engine import Engine
from fmrecon.losses import SSIMLoss
from fmrecon.models.base import build_record
from fmrecon.models.registry import create_model, get_spec
from fmrecon.physics.coils import num_low_frequencies, rss
from fmrecon.physics.fft import ifft2c
from fmrecon.physics.masks import MaskFunc, create_mask
from fmrecon.training.objective import training_loss

# ----------------------------------------------------------------------------- inputs


def x4_mask(width: int) -> MaskFunc:
    """The CMRxRecon 2023 x4 line mask: every 4th line and 24 ACS lines
    (``W // 2`` on images narrower than 48)."""
    return create_mask("cmrxrecon-uniform", 4, num_acs=min(24, width // 2))


def to_device(batch: Sample, device) -> Sample:
    """The batch with its tensors on ``device``."""
    moved = {
        f.name: getattr(batch, f.name).to(device)
        for f in dataclasses.fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }
    return dataclasses.replace(batch, **moved)


def simulated_batches(
    h: int, w: int, coils: int, n: int = 1, seed: int = 0, device="cpu"
) -> list[Sample]:
    """``n`` batches of one simulated cardiac frame each (one subject, one
    slice, ``coils`` coils) under the x4 mask: kspace (1, C, H, W) complex64
    masked, mask (1, 1, H, W) bool, target (1, H, W) (RSS of the fully
    sampled slice) and max_value (1,) (the target's maximum)."""
    sim = simulate_cardiac_subject(0, seed, size=(h, w), n_slices=1, n_frames=n, n_coils=coils)
    full = torch.from_numpy(sim["kspace"][:, 0])  # (n, C, H, W)
    mask = torch.from_numpy(x4_mask(w)((h, w)))[None]  # (1, H, W)
    target = rss(ifft2c(full), dim=1).float()  # (n, H, W)
    acs = torch.tensor(num_low_frequencies(mask), dtype=torch.int64)
    batches = []
    for i in range(n):
        item = Sample(
            kspace=full[i] * mask,
            mask=mask,
            target=target[i],
            max_value=target[i].amax(),
            num_low_frequencies=acs,
            fname="simulated",
            frame=i,
        )
        batches.append(to_device(collate([item]), device))
    return batches


def simulated_dataset(
    root: Path,
    subjects: int,
    size: tuple[int, int],
    coils: int,
    slices: int,
    frames: int,
    official_masks: bool = False,
) -> SliceDataset:
    """A simulated CMRxRecon 2023 cine set (short axis only, x4 mask files)
    written under ``root``, read as a slice dataset with the x4 mask: the
    official mask files (fixed), or a fresh draw per item."""
    simulate_cmrxrecon(
        root, subjects, seed=0, size=size, n_slices=slices, n_frames=frames, n_coils=coils,
        accelerations=(4,), lax=False,
    )  # fmt: skip
    volumes = [v for v in discover(root)[0] if v.fully_sampled]
    mask = x4_mask(size[1])
    if official_masks:
        return SliceDataset(volumes, mask, official_masks=True)
    return SliceDataset(volumes, mask, mask_seed="random")


# ----------------------------------------------------------------------------- models


def prepare_process(threads: int | None, seed: int = 0) -> None:
    """Torch threads (None: torch's default) and the seed of a measurement."""
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)


def build_model(name: str, options: dict | None, device) -> nn.Module:
    """The registered model with random weights (the encoder too): timing and
    memory do not depend on them."""
    kw = dict(options or {})
    if get_spec(name).encoder is not None:
        kw.setdefault("encoder_weights", "random")
        kw.setdefault("allow_random_encoder", True)
    return create_model(name, **kw).to(device)


def model_name(model: nn.Module, default: str) -> str:
    """The registered name of a built or loaded model (its build record)."""
    record = build_record(model)
    return record.name if record is not None else default


def checkpointing_switch(model: nn.Module) -> Callable[[bool], None]:
    """A function that turns per-cascade activation checkpointing of a
    VarNet-type model on or off (cheap: the flags are found once here)."""
    holders = [m for m in model.modules() if hasattr(m, "checkpoint_cascades")]

    def switch(on: bool) -> None:
        for m in holders:
            m.checkpoint_cascades = bool(on)

    return switch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a timing is complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Runner:
    """One model on one device with its optimizer: ``train(batch, precision)``
    is one training step (the trainer's objective, SSIM loss in fp32 on the
    engine's images, then backward and an optimizer step); ``infer(batch,
    precision)`` one forward under inference mode -> (B, H, W) float32.
    ``precision`` is ``"fp32"`` or ``"bf16"`` (autocast). The optimizer is
    Adam (lr ``lr``) unless one is given; None when nothing is trainable.
    ``compile``: torch.compile options (fmrecon's, through the engine), None: eager."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        label: str | None = None,
        lr: float = 1e-4,
        optimizer: torch.optim.Optimizer | None = None,
        compile: dict | None = None,
    ):
        self.model, self.device, self.label = model, device, label
        self.compile = compile  # torch.compile options of the engines (None: eager)
        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer is None and params:
            optimizer = torch.optim.Adam(params, lr=lr)
        self.opt = optimizer
        self.loss = SSIMLoss().to(device)
        self._engines: dict[str, Engine] = {}

    @property
    def trainable(self) -> bool:
        return self.opt is not None

    def engine(self, precision: str) -> Engine:
        if precision not in self._engines:
            self._engines[precision] = Engine(self.model, self.device, precision, self.label,
                                              compile=self.compile)  # fmt: skip
        return self._engines[precision]

    def train(self, batch: Sample, precision: str = "fp32") -> None:
        self.model.train()
        loss = training_loss(self.engine(precision), self.loss, batch)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        sync(self.device)

    def infer(self, batch: Sample, precision: str = "fp32") -> torch.Tensor:
        self.model.eval()
        with torch.inference_mode():
            out = self.engine(precision)(batch.kspace, batch.mask)
        sync(self.device)
        return out


# ----------------------------------------------------------------------------- timing


def timed(fn: Callable[[], object]) -> float:
    """Seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def round_order(items, r: int) -> list:
    """Round ``r``'s order: reversed every other round (ABBA), so that no
    call always runs first or right after the same other one."""
    items = list(items)
    return items[::-1] if r % 2 else items


def time_rounds(
    *groups: Mapping[object, Callable[[], object]], repeats: int, warmup: int
) -> dict[object, list[float]]:
    """``warmup`` untimed rounds, then ``repeats`` timed ones. A round calls
    every group's functions, group after group, each group in round order
    (:func:`round_order`). Returns key -> seconds per timed round."""
    times: dict[object, list[float]] = {key: [] for group in groups for key in group}
    for r in range(warmup + repeats):
        for group in groups:
            for key, fn in round_order(group.items(), r):
                t = timed(fn)
                if r >= warmup:
                    times[key].append(t)
    return times


def median(xs) -> float | None:
    return statistics.median(xs) if xs else None


def ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def paired_ratio(a: list[float], b: list[float]) -> float | None:
    """Median over rounds of ``a[i] / b[i]`` when the two were measured in the
    same rounds (adjacent in time, so a slow spell of the machine cancels);
    else the ratio of the medians."""
    if a and b and len(a) == len(b):
        return statistics.median(x / y for x, y in zip(a, b, strict=True))
    return ratio(median(a), median(b))
