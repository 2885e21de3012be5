"""The inference engine: one model on one device at one precision, masked
k-space in, magnitude images out.

Every place that runs a model over data calls it: training's steps and
validation (:class:`fmrecon.training.module.ReconModule`), ``fmrecon
evaluate`` (:func:`fmrecon.evaluation.evaluate.evaluate_models`), ``fmrecon
reconstruct`` (:func:`fmrecon.inference.reconstruct.reconstruct_volume`) and
the benchmark. So batching, device placement, autocast, the output check and
the one-line error when a model fails are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fmrecon.data.slices import Sample, collate
from fmrecon.errors import ConfigError
from fmrecon.metrics import center_crop
from fmrecon.utils import autocast_context, compile_model, compile_seconds

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Engine:
    """Runs ``model(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W) bool)
    -> (B, H, W)`` and checks what comes back.

    ``device``: where inputs go (and an ``nn.Module`` model is moved); None
    leaves both where they are (Lightning places them in training).
    ``precision``: ``"32"`` or ``"bf16"`` (autocast); training leaves it to
    Lightning (``"32"``). ``label`` names the model in error messages.
    Gradients flow unless the caller disables them (:meth:`stream` does).
    ``compile``: None (eager) or ``torch.compile`` options
    (:func:`fmrecon.utils.compile_options`): the model is compiled in place
    (:func:`fmrecon.utils.compile_model`); ``compile_seconds`` adds up the time
    this engine's calls spent compiling (the first call, a new shape).
    """

    def __init__(
        self,
        model: Model,
        device: str | torch.device | None = None,
        precision: str = "32",
        label: str | None = None,
        compile: dict | None = None,
    ):
        self.device = torch.device(device) if device is not None else None
        self.autocast = autocast_context(self.device or torch.device("cpu"), precision)
        if self.device is not None and isinstance(model, torch.nn.Module):
            model = model.to(self.device)
        self.model = model
        self.label = label or type(model).__name__
        self.compiled = compile is not None and isinstance(model, torch.nn.Module)
        if self.compiled:
            compile_model(model, compile)
        self.compile_seconds = 0.0

    def __call__(self, kspace: torch.Tensor, mask: torch.Tensor, where: str = "") -> torch.Tensor:
        """(B, C, H, W) complex, (B, 1, H, W) bool -> (B, H, W) float32, on the
        model's device. ``where`` (file, frame, slice) goes into error messages."""
        if self.device is not None:
            kspace, mask = kspace.to(self.device), mask.to(self.device)
        before = compile_seconds() if self.compiled else 0.0
        try:
            with self.autocast:
                out = self.model(kspace, mask)
        except RuntimeError as err:  # shape problems, out of memory, ...
            first = str(err).strip().split("\n")[0][:200]
            raise ConfigError(
                f"model '{self.label}' failed{' on ' + where if where else ''}: "
                f"{type(err).__name__}: {first}"
            ) from err
        if self.compiled:
            self.compile_seconds += compile_seconds() - before
        want = (kspace.shape[0], *kspace.shape[-2:])
        if tuple(out.shape) != want:
            raise ConfigError(
                f"model '{self.label}' returned shape {tuple(out.shape)} for k-space "
                f"{tuple(kspace.shape)}{' (' + where + ')' if where else ''}; "
                f"expected (B, H, W) = {want}"
            )
        return out.float()

    def predict(self, batch: Sample) -> torch.Tensor:
        """A batch's images (B, H, W) float32, centre-cropped to its targets'
        size (fastMRI's start ``(H - h) // 2``: the full field of view scored on
        the stored reference's region) when it has targets."""
        out = self(batch.kspace, batch.mask, where=describe_batch(batch))
        if batch.target.numel() and tuple(batch.target.shape[-2:]) != tuple(out.shape[-2:]):
            out = center_crop(out, batch.target.shape[-2:])
        return out

    def stream(
        self,
        dataset: Dataset,
        batches: Sequence[Sequence[int]],
        num_workers: int = 0,
        source: str | None = None,
    ) -> Iterator[tuple[Sequence[int], Sample, np.ndarray]]:
        """Reconstruct ``dataset`` (items are :class:`Sample`) in ``batches``
        (lists of item positions): yields (positions, batch, images (B, H, W)
        float32 NumPy, full field of view), without gradients, in order.
        ``source`` (the file's path) replaces the item's file name in errors."""
        with torch.inference_mode():
            for positions, batch in stream_batches(dataset, batches, num_workers):
                images = self(batch.kspace, batch.mask, where=describe_batch(batch, source))
                yield positions, batch, images.cpu().numpy()


def stream_batches(
    dataset: Dataset, batches: Sequence[Sequence[int]], num_workers: int = 0
) -> Iterator[tuple[Sequence[int], Sample]]:
    """(positions, collated :class:`Sample` batch) for each of ``batches``, in
    order, read by ``num_workers`` loader processes (0: this process)."""
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=collate)
    yield from zip(batches, loader, strict=True)


def describe_batch(batch: Sample, source: str | None = None) -> str:
    """``cine_sax.mat (frame 0, slice 1)``: the first item of a batch, for
    errors (``source`` in place of the file name)."""
    names = batch.fname if isinstance(batch.fname, list) else [batch.fname]
    frames = batch.frame if isinstance(batch.frame, list) else [batch.frame]
    slices = batch.slice if isinstance(batch.slice, list) else [batch.slice]
    name = source or (names[0] if names else "")
    if not name:
        return ""
    return f"{name} (frame {frames[0]}, slice {slices[0]})"


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    """``[[0, 1, ..], [..]]``: positions 0..n-1 in batches of ``batch_size``."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
