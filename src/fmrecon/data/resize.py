"""Bring fully sampled multi-coil k-space to a fixed image size before masking.

The models take ``(masked_kspace, mask)`` and form the zero-filled image
themselves, so an input size such as the MIDL 2025 paper's ("The input images
have a resolution of 224x224") has to be produced on the fully sampled k-space,
before the mask is applied; the target is then the RSS of the transformed coil
images and the mask is made at the new width. :class:`KspaceResize` does it, and
the same object is used by the training dataset and by evaluation (both build a
:class:`fmrecon.data.slices.SliceDataset` with ``resize=``).

Steps, on one slice (C, H, W) complex, H = readout (kx), W = phase encode (ky):

1. ``readout_oversampling`` f > 1: coil images, keep the central H // f rows
   (the readout field of view the scanner oversampled; CMRxRecon's raw k-space
   keeps the 2x readout oversampling, e.g. cine 512 x 246, the outer half of the
   readout field of view is empty), back to k-space. This is the usual
   oversampling removal of a reconstruction pipeline (ISMRMRD: encodedSpace x is
   2x reconSpace x; crop after the inverse FFT along the readout).
2. ``size`` (h, w) with ``method``:

   - ``"kspace"`` (default): keep the central h x w k-space samples (zero-pad
     where the matrix is smaller): the same field of view at a lower (or, with
     padding, sinc-interpolated higher) resolution. The samples kept are
     acquired samples, unchanged but for a factor ``sqrt(h w / (H W))`` that
     keeps image intensities (orthonormal FFT) at the native scale.
   - ``"crop"``: centre-crop (zero-pad) the coil images to h x w: the native
     resolution, a smaller field of view.

Centring follows fastMRI's ``center_crop`` (start ``(H - h) // 2``) and the
centred orthonormal FFT of :mod:`fmrecon.physics.fft`, so DC stays at index
``n // 2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fmrecon.errors import ConfigError
from fmrecon.physics.fft import fft2c, ifft2c

METHODS = ("kspace", "crop")


def crop_or_pad(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Centre-crop and/or zero-pad the last two axes of ``x`` to ``size``
    (crop start ``(H - h) // 2`` as fastMRI's ``center_crop``; a pad puts the
    input at ``(h - H) // 2``, so a pad followed by a crop is the identity)."""
    out_shape = x.shape[:-2] + (int(size[0]), int(size[1]))
    out = np.zeros(out_shape, dtype=x.dtype)
    src, dst = [], []
    for n, m in zip(x.shape[-2:], out_shape[-2:], strict=True):
        if m <= n:
            s = (n - m) // 2
            src.append(slice(s, s + m))
            dst.append(slice(0, m))
        else:
            d = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(d, d + n))
    out[(..., *dst)] = x[(..., *src)]
    return out


@dataclass(frozen=True)
class KspaceResize:
    """The transform described in the module doc. ``size`` None keeps the
    (oversampling-free) native size; ``readout_oversampling`` 1 keeps the readout."""

    size: tuple[int, int] | None = None
    method: str = "kspace"
    readout_oversampling: int = 1

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"image resize method must be one of {', '.join(METHODS)}, "
                              f"got '{self.method}'")  # fmt: skip
        if self.size is not None:
            object.__setattr__(self, "size", parse_image_size(self.size, "image size"))
        f = self.readout_oversampling
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise ConfigError(f"readout oversampling must be an int >= 1, got {f!r}")

    @property
    def active(self) -> bool:
        return self.size is not None or self.readout_oversampling > 1

    def shape(self, h: int, w: int) -> tuple[int, int]:
        """The (H, W) a native (h, w) slice becomes."""
        if self.size is not None:
            return self.size
        return (h // self.readout_oversampling, w)

    def __call__(self, kspace: np.ndarray) -> np.ndarray:
        """(..., H, W) complex k-space -> (..., h, w) complex64 k-space."""
        k = np.asarray(kspace)
        h, w = k.shape[-2:]
        f = self.readout_oversampling
        if f > 1:
            if h // f < 1:
                raise ConfigError(f"readout oversampling {f} leaves no rows of a {h}-row readout")
            k = fft2c(crop_or_pad(ifft2c(k), (h // f, w)))
        if self.size is not None:
            if self.method == "kspace":
                n_in = k.shape[-2] * k.shape[-1]
                k = crop_or_pad(k, self.size) * math.sqrt(self.size[0] * self.size[1] / n_in)
            else:
                k = fft2c(crop_or_pad(ifft2c(k), self.size))
        return np.ascontiguousarray(k, dtype=np.complex64)

    def describe(self) -> str:
        parts = []
        if self.readout_oversampling > 1:
            parts.append(f"readout oversampling x{self.readout_oversampling} removed")
        if self.size is not None:
            how = "k-space crop/pad" if self.method == "kspace" else "image centre crop/pad"
            parts.append(f"{self.size[0]}x{self.size[1]} by {how}")
        return ", ".join(parts) or "native size"


def parse_image_size(value, what: str = "data.image_size") -> tuple[int, int] | None:
    """None, or two ints >= 1 (a single int means a square) -> (h, w)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    try:
        ok = len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        )
    except TypeError:
        ok = False
    if not ok:
        raise ConfigError(f"{what} must be null or two integers >= 1 [H, W], got {value!r}")
    return int(value[0]), int(value[1])


def check_official_masks(
    resize: KspaceResize | None, official: bool, setting: str, switch: str = ""
) -> None:
    """Refuse the challenge's official mask files together with a k-space
    resize: the files are (kx, ky) arrays at the native size only. ``setting``
    names what asked for the resize in the one-line ConfigError (a config key,
    a command-line option), ``switch`` what asked for the mask files."""
    if not official or resize is None or not resize.active:
        return
    raise ConfigError(
        f"{setting} ({resize.describe()}): the challenge's mask files"
        + (f" ({switch})" if switch else "")
        + " exist at the native size only (its mask files are (kx, ky) arrays of the acquired "
        "native size); generate masks of the same kind at the new size instead "
        "(data.mask.official: false / no --official-masks; cmrxrecon24-uniform is the official "
        "UniformSampling.m construction at any width)"
    )
