"""Differentiable preprocessing of MR images for a frozen encoder (FM-VarNet
paper, sec. 3.1): magnitude -> percentile scaling -> 3 channels -> resize to
the encoder's input size -> mean/std normalisation.

The percentile is our choice: the paper only says "percentile-based scaling"
(citing Cekmeceli et al. 2024). We divide by the per-image 99.5th percentile of
the magnitude and clamp to [0, 1]: the common upper clipping point of
medical-image intensity normalisation, high enough to keep nearly all of the
anatomy's dynamic range and low enough that a few bright outliers (vessels with
inflow, fat, artefacts) do not compress everything else. No lower percentile is
subtracted: magnitude is non-negative and the background stays at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fmrecon.encoders.registry import IMAGENET_MEAN, IMAGENET_STD
from fmrecon.physics.coils import native_complex
from fmrecon.utils import resize_bilinear

DEFAULT_PERCENTILE = 99.5


def magnitude(image: torch.Tensor) -> torch.Tensor:
    """Complex or real (B, H, W) / (B, 1, H, W) -> real magnitude (B, H, W)."""
    if image.ndim == 4:
        if image.shape[1] != 1:
            raise ValueError(f"expected (B, 1, H, W), got {tuple(image.shape)}")
        image = image[:, 0]
    if image.ndim != 3:
        raise ValueError(f"expected an image (B, H, W) or (B, 1, H, W), got {tuple(image.shape)}")
    if image.is_complex() and not native_complex():
        # under torch.compile: |z| on the real view (the backward of a complex abs is
        # complex arithmetic, which inductor does not generate code for); gradient
        # z/|z| and 0 at 0 as abs's
        return torch.linalg.vector_norm(torch.view_as_real(image), dim=-1)
    mag = image.abs()  # complex: |z| (gradient z/|z|, 0 at 0); real: |x|
    return mag if mag.is_floating_point() else mag.float()


def percentile_scale(mag: torch.Tensor, percentile: float | None = DEFAULT_PERCENTILE):
    """Divide each (H, W) image by its ``percentile``-th percentile (None: its
    max) and clamp to [0, 1]. Returns (scaled (B, H, W), scale (B,)).

    The scale is computed on detached values (a constant for autograd), so
    gradients flow through the division and the clamp only (zero above the
    percentile). An image whose percentile is 0 uses its max, an all-zero image 1.
    """
    flat = mag.detach().flatten(1)
    amax = flat.amax(dim=1)
    if percentile is None or percentile >= 100:
        scale = amax
    else:
        if not 0 < percentile < 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        scale = upper_quantile(flat.float(), percentile / 100.0).to(flat.dtype)
        scale = torch.where(scale > 0, scale, amax)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (mag / scale.view(-1, 1, 1)).clamp(0.0, 1.0), scale


def upper_quantile(flat: torch.Tensor, q: float) -> torch.Tensor:
    """``torch.quantile(flat, q, dim=1)`` (linear interpolation, NaN in a row ->
    NaN), bit for bit, for (B, N) float32 ``flat``, from the ``N - floor(q (N - 1))``
    largest values of each row instead of a full sort: the 99.5th percentile of a
    218 x 180 image needs the top 197 of 39,240. The rank is ATen's (``q`` in
    float32 times the last index, rounded to float32; aten/src/ATen/native/Sorting.cpp),
    computed on Python floats so that torch.compile sees no tensor-to-number call."""
    n = flat.shape[1]
    rank = _to_float32(_to_float32(q) * (n - 1))  # the product is exact in double (N <= 2^24)
    below, above = int(rank), math.ceil(rank)
    top = flat.topk(n - below, dim=1).values  # descending: top[:, j] is sorted[:, n - 1 - j]
    out = torch.lerp(top[:, n - 1 - below], top[:, n - 1 - above], rank - below)
    # a row holding NaN: quantile's is NaN; topk, like sort, ranks NaN above all values
    return out.masked_fill(top[:, 0].isnan(), float("nan"))


def _to_float32(v: float) -> float:
    """``v`` (>= 0, below 2^128) rounded to the nearest float32, ties to even."""
    m, e = math.frexp(v)  # v = m 2^e, 0.5 <= m < 1: 24 significant bits are m 2^24
    return math.ldexp(round(m * 2**24), e - 24)  # Python's round: half to even


def normalization_stats(
    encoder, stats: str | tuple[Sequence[float], Sequence[float]] = "imagenet"
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for ``stats``: "imagenet" (the paper, all encoders), "encoder"
    (the model's own pre-training stats, ``encoder.mean``/``encoder.std``) or an
    explicit (mean, std) pair of 3-sequences."""
    if isinstance(stats, str):
        if stats == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        if stats == "encoder":
            return tuple(encoder.mean), tuple(encoder.std)
        raise ValueError(f"stats must be 'imagenet', 'encoder' or (mean, std), got {stats!r}")
    mean, std = stats
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("stats (mean, std) need 3 values each")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def prepare_images(
    image: torch.Tensor,
    encoder,
    percentile: float | None = DEFAULT_PERCENTILE,
    stats: str | tuple[Sequence[float], Sequence[float]] = "imagenet",
) -> tuple[torch.Tensor, torch.Tensor]:
    """MR image -> encoder pixels, differentiably.

    ``image``: complex or real (B, H, W) or (B, 1, H, W). ``encoder``: a
    FrozenEncoder (or anything with ``image_size`` S; an int S also works with
    the default stats). Returns ``pixels`` (B, 3, S, S) and the per-image
    ``scale`` (B,) the magnitude was divided by (detached), so callers can undo
    it. Resizing is bilinear, align_corners=False, antialias off
    (differentiable, deterministic); it is done on one channel before the
    3-channel replication, which is the same result at a third of the cost.
    """
    size = int(encoder) if isinstance(encoder, int) else int(encoder.image_size)
    x, scale = percentile_scale(magnitude(image), percentile)
    x = x.unsqueeze(1)  # (B, 1, H, W)
    if tuple(x.shape[-2:]) != (size, size):
        x = resize_bilinear(x, (size, size))  # antialias off; compiles as ATen's kernels
    # per channel with Python numbers: no tensor is made from them (on a GPU that is a
    # host-to-device copy that waits for the GPU), nothing is cached across calls (a
    # cache filled inside a compiled graph broke its guard and, filled under
    # inference_mode, could not be saved by a later training step's backward)
    mean, std = normalization_stats(encoder, stats)
    return torch.cat([(x - m) / s for m, s in zip(mean, std, strict=True)], dim=1), scale
