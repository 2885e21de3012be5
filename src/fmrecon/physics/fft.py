"""Centred orthonormal 2-D Fourier transforms over the last two axes.

Convention (fastMRI, CMRxRecon): ``k = fftshift(fft2(ifftshift(x), norm="ortho"))``
and its inverse, so the DC sample sits at index ``n // 2`` of each axis.
Works on native complex ``torch.Tensor`` of any leading shape and on NumPy
arrays (the simulator and the readers use NumPy; the models use torch).
"""

from __future__ import annotations

import numpy as np
import torch

_DIMS = (-2, -1)


def fft2c(x):
    """Image -> k-space. ``x``: complex (..., H, W) tensor or array."""
    if isinstance(x, torch.Tensor):
        x = torch.fft.ifftshift(x, dim=_DIMS)
        x = torch.fft.fft2(x, dim=_DIMS, norm="ortho")
        return torch.fft.fftshift(x, dim=_DIMS)
    x = np.fft.ifftshift(np.asarray(x), axes=_DIMS)
    x = np.fft.fft2(x, axes=_DIMS, norm="ortho")
    return np.fft.fftshift(x, axes=_DIMS)


def ifft2c(k):
    """K-space -> image. ``k``: complex (..., H, W) tensor or array."""
    if isinstance(k, torch.Tensor):
        k = torch.fft.ifftshift(k, dim=_DIMS)
        k = torch.fft.ifft2(k, dim=_DIMS, norm="ortho")
        return torch.fft.fftshift(k, dim=_DIMS)
    k = np.fft.ifftshift(np.asarray(k), axes=_DIMS)
    k = np.fft.ifft2(k, axes=_DIMS, norm="ortho")
    return np.fft.fftshift(k, axes=_DIMS)
