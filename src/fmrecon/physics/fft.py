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


def fft2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D FFT over the last two axes WITHOUT the centring shifts (for
    sign-modulated data, :func:`shift_signs`). ``x``: complex tensor (..., H, W)."""
    _check_dtype(x, "fft2")
    return torch.fft.fft2(x, dim=_DIMS, norm="ortho")


def ifft2(k: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`fft2` (no shifts)."""
    _check_dtype(k, "ifft2")
    return torch.fft.ifft2(k, dim=_DIMS, norm="ortho")


def shift_signs(h: int, w: int, device=None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The centred FFT without its shifts, for even H and W: ``(s_n, s_k)``, real
    (H, W) tensors of +-1 with

        fft2c(x) = s_k * fft2(s_n * x),   ifft2c(k) = s_n * ifft2(s_k * k)

    (orthonormal ``fft2`` / ``ifft2``), ``s_n[a, b] = (-1)^(a + b)`` and
    ``s_k = (-1)^(H/2 + W/2) s_n``: the DFT's shift theorem (a shift by half the
    length in one domain is a multiplication by ``(-1)^index`` in the other). A
    chain of centred FFTs can so run on sign-modulated data (k-space ``s_k * k``,
    maps ``s_n * S``) with plain FFTs and no shifts (a shift is a copy of the whole
    array: two concatenations per axis pair). None for an odd H or W (the shifts
    are not half the length there, and no such identity holds)."""
    if h % 2 or w % 2:
        return None
    parity = torch.arange(h, device=device)[:, None] + torch.arange(w, device=device)
    s_n = 1.0 - 2.0 * (parity % 2).float()
    return s_n, (s_n if (h // 2 + w // 2) % 2 == 0 else -s_n)


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
