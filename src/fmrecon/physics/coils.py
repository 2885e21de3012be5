"""Coil sensitivities: SENSE expand/reduce, root-sum-of-squares, ACS region.

Shapes: multi-coil k-space and sensitivity maps are complex (..., C, H, W);
coil-combined images are complex (..., H, W). ``H`` is the readout (fully
sampled) axis, ``W`` the phase-encode axis that masks act on.
"""

from __future__ import annotations

import numpy as np
import torch

from fmrecon.physics.fft import fft2c, ifft2c


def sens_expand(image: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """E: coil-combined image (..., H, W) -> multi-coil k-space (..., C, H, W)."""
    return fft2c(image.unsqueeze(-3) * sens)


def sens_reduce(kspace: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """R = E^H: multi-coil k-space (..., C, H, W) -> image (..., H, W)."""
    return (ifft2c(kspace) * sens.conj()).sum(dim=-3)


def rss(x, dim: int = -3):
    """Root-sum-of-squares of complex or real coil images along ``dim``."""
    if isinstance(x, torch.Tensor):
        return torch.sqrt((x.abs() ** 2).sum(dim=dim))
    return np.sqrt((np.abs(x) ** 2).sum(axis=dim))


def _as_bool_tensor(mask) -> torch.Tensor:
    if isinstance(mask, torch.Tensor):
        return mask.bool()
    return torch.from_numpy(np.array(mask, dtype=bool))


def num_low_frequencies(mask) -> int:
    """Number of contiguous sampled phase-encode lines around the k-space
    centre (index ``W // 2``) of a mask broadcastable to (..., H, W).

    A line counts as sampled when every readout sample of it is sampled in
    every leading index (so a 2-D radial mask yields its fully sampled block's
    width only where that block spans the whole readout; use ``acs_region``
    for blocks). Returns 0 when the centre line is not sampled.
    """
    m = _as_bool_tensor(mask)
    lines = m.reshape(-1, m.shape[-2], m.shape[-1]).all(dim=0).all(dim=0)
    w = lines.shape[0]
    c = w // 2
    if not bool(lines[c]):
        return 0
    left = c
    while left > 0 and bool(lines[left - 1]):
        left -= 1
    right = c
    while right < w - 1 and bool(lines[right + 1]):
        right += 1
    return right - left + 1


def acs_region(mask) -> tuple[slice, slice]:
    """The fully sampled centre block of a mask (..., H, W), as (row, column)
    slices of the part that every leading index (frame, batch) samples.

    Grows a square around the centre ``(H // 2, W // 2)`` while it stays fully
    sampled, then extends each side as far as the block stays fully sampled.
    Line masks give all rows by the ACS lines; 2-D masks give their block (the
    16x16 of CMRxRecon 2024 k-t radial, possibly a little larger where spokes
    cover its edge) -- a spoke through the centre does not turn the block into
    that spoke's row. An unsampled centre gives the empty block at the centre.
    """
    m = _as_bool_tensor(mask)
    m = m.reshape(-1, m.shape[-2], m.shape[-1]).all(dim=0).cpu().numpy()
    h, w = m.shape
    t, b, lo, hi = h // 2, h // 2 + 1, w // 2, w // 2 + 1  # half-open [t, b) x [lo, hi)
    if not m[t, lo]:
        return slice(t, t), slice(lo, lo)
    while t > 0 and b < h and lo > 0 and hi < w and m[t - 1 : b + 1, lo - 1 : hi + 1].all():
        t, b, lo, hi = t - 1, b + 1, lo - 1, hi + 1
    grown = True
    while grown:
        grown = False
        while t > 0 and m[t - 1, lo:hi].all():
            t, grown = t - 1, True
        while b < h and m[b, lo:hi].all():
            b, grown = b + 1, True
        while lo > 0 and m[t:b, lo - 1].all():
            lo, grown = lo - 1, True
        while hi < w and m[t:b, hi].all():
            hi, grown = hi + 1, True
    return slice(t, b), slice(lo, hi)


def extract_acs(kspace: torch.Tensor, mask) -> torch.Tensor:
    """Zero every k-space sample outside the ACS block of ``mask``
    (the input of ESPIRiT-style or learned sensitivity estimation)."""
    rows, cols = acs_region(mask)
    out = torch.zeros_like(kspace)
    out[..., rows, cols] = kspace[..., rows, cols]
    return out
