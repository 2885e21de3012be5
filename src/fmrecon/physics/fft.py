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
# the dtypes a tensor FFT accepts: complex64 (the data and the models), complex128
# (double-precision checks). The dtype is checked here, not left to promotion: CPU
# autocast would cast a low-precision input to fp32 silently and CUDA autocast does
# not cast FFTs at all, so a bf16/fp16 (or real) tensor must never get this far
_FFT_DTYPES = (torch.complex64, torch.complex128)


def _check_dtype(x: torch.Tensor, name: str) -> None:
    if x.dtype not in _FFT_DTYPES:
        raise TypeError(
            f"{name}: expected a complex64 tensor, got {x.dtype} (cast before the FFT: "
            "the k-space physics runs in complex64, also under bf16/fp16 autocast)"
        )


def _shift(x: torch.Tensor, inverse: bool) -> torch.Tensor:
    """``torch.fft.fftshift`` (``ifftshift`` when ``inverse``) over the last two axes,
    done on the real view (..., H, W, 2): the same values (a permutation), but
    torch.compile's inductor generates code for it (it has none for complex
    tensors, so a complex roll ran as one eager index copy per axis) and fuses it."""
    h, w = x.shape[-2:]
    shifts = (-(h // 2), -(w // 2)) if inverse else (h // 2, w // 2)
    return torch.view_as_complex(torch.roll(torch.view_as_real(x), shifts, dims=(-3, -2)))


def fft2c(x):
    """Image -> k-space. ``x``: complex (..., H, W) tensor or array."""
    if isinstance(x, torch.Tensor):
        _check_dtype(x, "fft2c")
        x = _shift(x, inverse=True)
        x = torch.fft.fft2(x, dim=_DIMS, norm="ortho")
        return _shift(x, inverse=False)
    x = np.fft.ifftshift(np.asarray(x), axes=_DIMS)
    x = np.fft.fft2(x, axes=_DIMS, norm="ortho")
    return np.fft.fftshift(x, axes=_DIMS)


def ifft2c(k):
    """K-space -> image. ``k``: complex (..., H, W) tensor or array."""
    if isinstance(k, torch.Tensor):
        _check_dtype(k, "ifft2c")
        k = _shift(k, inverse=True)
        k = torch.fft.ifft2(k, dim=_DIMS, norm="ortho")
        return _shift(k, inverse=False)
    k = np.fft.ifftshift(np.asarray(k), axes=_DIMS)
    k = np.fft.ifft2(k, axes=_DIMS, norm="ortho")
    return np.fft.fftshift(k, axes=_DIMS)
