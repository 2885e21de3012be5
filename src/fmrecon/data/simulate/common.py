"""Shared parts of the simulator: default sizes and scales, tissue labels,
seeding (one independent stream per subject and component), input checks,
pixel grids, soft-edged shapes and smooth random fields and phases."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.special import erfc

from fmrecon.errors import ConfigError

#: magnitude of the coil-combined image of blood (cardiac) / white matter (brain)
IMAGE_SCALE = 5e-4
#: defaults of the cardiac data set: matrix (kx, ky), slices, frames, coils
CARDIAC_SIZE = (128, 96)  # (kx, ky): 24 ACS lines are 25% of ky (real cine: ~10%)
CARDIAC_SLICES = 3
CARDIAC_FRAMES = 6
CARDIAC_COILS = 10
CARDIAC_SUBJECTS = 8
#: number of long-axis views written to ``cine_lax.mat`` (2-, 3- and 4-chamber)
LAX_VIEWS = 3
#: defaults of the fastMRI brain data set: k-space (H, W) incl. 2x readout
#: oversampling (target (H/2, W)), slices, coils, volumes
BRAIN_SIZE = (128, 64)
BRAIN_SLICES = 6
BRAIN_COILS = 12
BRAIN_VOLUMES = 3
#: default k-space noise (std relative to IMAGE_SCALE) and accelerations
NOISE = 0.02
ACCELERATIONS = (4, 8, 10)
#: number of fully sampled central ky lines of the CMRxRecon 2023 masks
CMRX_ACS_LINES = 24
#: smallest matrix accepted along either axis
MIN_SIZE = 32

#: field of view along H of the cardiac phantom (cm); pixels are square
CARDIAC_FOV_CM = 40.0
#: field of view of the brain target image along the anterior-posterior axis (mm)
BRAIN_FOV_MM = 250.0

#: tissue labels returned by ``cardiac_phantom(..., return_labels=True)``
LABELS = {
    "air": 0,
    "fat": 1,
    "muscle": 2,
    "lung": 3,
    "liver": 4,
    "bone": 5,
    "csf": 6,
    "aorta": 7,
    "pericardial_fat": 8,
    "lv_myocardium": 9,
    "lv_blood": 10,
    "rv_blood": 11,
    "rv_myocardium": 12,
    "atrium": 13,
    "vessel": 14,
}

Progress = Callable[[Path], None] | None
SeedLike = int | np.random.Generator


def _rng(seed: int, *tags) -> np.random.Generator:
    """A generator keyed by the seed and string/int tags, so that each subject
    and each component draws from its own stream."""
    if int(seed) < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    words = [int(seed)]
    for tag in tags:
        words.append(zlib.crc32(tag.encode()) if isinstance(tag, str) else int(tag))
    return np.random.default_rng(np.random.SeedSequence(words))


def _as_rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else _rng(int(seed), "phantom")


def _check_size(size: Sequence[int], what: str) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: size must be two integers H W, got {size!r}") from None
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ConfigError(f"{what}: size {h}x{w} too small (each side must be >= {MIN_SIZE})")
    return h, w


def _check_positive(value: int, name: str, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _grid(h: int, w: int, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Physical coordinates (H, W) of pixel centres, with the FFT centre
    (index n//2) at 0."""
    x = (np.arange(h) - h // 2) * pixel
    y = (np.arange(w) - w // 2) * pixel
    return x[:, None], y[None, :]


def _soft_ellipse(x, y, cx, cy, a, b, angle=0.0, p=2.0, edge=0.5):
    """Anti-aliased occupancy in [0, 1] of a (super)ellipse with centre
    (cx, cy), semi-axes (a, b) along its own axes rotated by ``angle``,
    exponent ``p``. The edge is an error-function ramp over about ``edge``
    units (the signed distance is linearised from the implicit function).
    All parameters broadcast (e.g. (T, 1, 1) for per-frame shapes)."""
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u = np.abs(dx * c + dy * s) / a
    v = np.abs(-dx * s + dy * c) / b
    if p == 2.0:
        r = np.sqrt(u * u + v * v)
        r = np.maximum(r, 1e-6)
        grad = np.sqrt((u / a) ** 2 + (v / b) ** 2) / r
    else:
        r = (u**p + v**p) ** (1.0 / p)
        r = np.maximum(r, 1e-6)
        grad = r ** (1.0 - p) * np.sqrt((u ** (p - 1) / a) ** 2 + (v ** (p - 1) / b) ** 2)
    dist = (r - 1.0) / np.maximum(grad, 1e-9)
    return 0.5 * erfc(dist / (0.6 * edge))


def _soft_halfplane(x, y, cx, cy, angle, edge=0.5):
    """Occupancy of the half plane ``(p - c) . (cos a, sin a) >= 0``."""
    d = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    return 0.5 * erfc(-d / (0.6 * edge))


def _smooth_field(rng, shape, corr: float) -> np.ndarray:
    """Gaussian random field over the last two axes with correlation length
    ``corr`` pixels, zero mean and unit standard deviation per image."""
    h, w = shape[-2:]
    noise = rng.standard_normal(shape)
    fh = np.fft.fftfreq(h)[:, None]
    fw = np.fft.rfftfreq(w)[None, :]
    filt = np.exp(-2.0 * np.pi**2 * corr**2 * (fh**2 + fw**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=(h, w))
    field -= field.mean(axis=(-2, -1), keepdims=True)
    field /= field.std(axis=(-2, -1), keepdims=True) + 1e-12
    return field


def _smooth_phase(rng, shape, strength: float = 1.0) -> np.ndarray:
    """Smooth (second-order polynomial) phase maps in radians, one per image of
    ``shape`` (..., H, W), spanning a few radians over the field of view."""
    lead = shape[:-2]
    h, w = shape[-2:]
    u = np.linspace(-1.0, 1.0, h)[:, None]
    v = np.linspace(-1.0, 1.0, w)[None, :]
    basis = np.stack(
        np.broadcast_arrays(np.ones((h, w)), u, v, u * v, u * u - 1 / 3, v * v - 1 / 3)
    )
    scales = strength * np.array([np.pi, 1.2, 1.2, 0.6, 0.5, 0.5])
    coef = rng.standard_normal((*lead, 6)) * scales
    return np.tensordot(coef, basis, axes=(-1, 0))
