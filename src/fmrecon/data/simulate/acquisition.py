"""Acquisition of a phantom: smooth complex coil sensitivities, multi-coil
k-space with complex Gaussian noise, and one subject's (cardiac) or volume's
(brain) fully sampled data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fmrecon.data.simulate.brain import brain_phantom
from fmrecon.data.simulate.cardiac import cardiac_phantom, sample_cardiac_anatomy
from fmrecon.data.simulate.common import (
    BRAIN_COILS,
    BRAIN_FOV_MM,
    BRAIN_SIZE,
    BRAIN_SLICES,
    CARDIAC_COILS,
    CARDIAC_FOV_CM,
    CARDIAC_FRAMES,
    CARDIAC_SIZE,
    CARDIAC_SLICES,
    IMAGE_SCALE,
    LAX_VIEWS,
    NOISE,
    SeedLike,
    _as_rng,
    _grid,
    _rng,
    _smooth_phase,
    _soft_ellipse,
)
from fmrecon.errors import ConfigError
from fmrecon.metrics import center_crop
from fmrecon.physics.fft import fft2c, ifft2c


def coil_maps(
    shape: Sequence[int],
    n_coils: int,
    *,
    pixel: float,
    body_axes: tuple[float, float],
    body_centre: tuple[float, float] = (0.0, 0.0),
    z: Sequence[float] = (0.0,),
    standoff: float = 1.5,
    loop_radius: float = 5.0,
    flatness: float = 0.65,
    seed: SeedLike = 0,
) -> np.ndarray:
    """Complex coil sensitivities (Z, C, H, W) complex64 for images of
    ``shape`` (H, W) with square pixels of size ``pixel`` (cm).

    Coils sit on an ellipse ``standoff`` cm outside the body ellipse
    (``body_axes`` semi-axes along H and W), in two staggered rows along the
    slice axis; each has the smooth magnitude profile of a loop of radius
    ``loop_radius`` cm (3-D distance, so the slices at positions ``z`` (cm)
    see different profiles) and a smooth polynomial phase. Maps are
    normalised so that sum_c |S_c|^2 equals ``rss_raw^(2(1-flatness))``
    scaled to mean 1 inside the body: mildly brighter near the coils, as real
    coil-combined images are."""
    rng = _as_rng(seed)
    h, w = (int(s) for s in shape)
    x, y = _grid(h, w, pixel)
    x, y = x - body_centre[0], y - body_centre[1]
    ah, aw = body_axes[0] + standoff, body_axes[1] + standoff
    theta = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n_coils) / n_coils
    theta = theta + rng.normal(0.0, 0.15, n_coils)
    rows = np.where(np.arange(n_coils) % 2 == 0, -1.0, 1.0) * rng.uniform(2.0, 4.0)
    cz = rows + rng.normal(0.0, 0.5, n_coils)
    cx, cy = ah * np.cos(theta), aw * np.sin(theta)
    strength = rng.uniform(0.8, 1.2, n_coils)
    zz = np.asarray(z, dtype=float)[:, None, None, None]
    dist2 = (
        (x[None, None] - cx[None, :, None, None]) ** 2
        + (y[None, None] - cy[None, :, None, None]) ** 2
        + (zz - cz[None, :, None, None]) ** 2
    )
    # on-axis field of a loop of radius ``loop``: flat near the coil, ~d^-3/2 far
    loop = rng.uniform(0.8, 1.2, n_coils)[None, :, None, None] * loop_radius
    mag = strength[None, :, None, None] * (loop**2 / (dist2 + loop**2)) ** 0.75
    phase = _smooth_phase(rng, (1, n_coils, h, w), strength=0.8)
    maps = mag * np.exp(1j * phase)
    rss_raw = np.sqrt((np.abs(maps) ** 2).sum(axis=1, keepdims=True))
    maps = maps / rss_raw**flatness
    body = _soft_ellipse(x, y, 0.0, 0.0, body_axes[0], body_axes[1]) > 0.5
    norm = np.sqrt((np.abs(maps) ** 2).sum(axis=1))[:, body].mean(axis=-1)
    maps = maps / norm[:, None, None, None]
    return maps.astype(np.complex64)


def fold_fov(x: np.ndarray, width: int) -> np.ndarray:
    """Wrap-around of an acquisition whose phase-encode field of view is
    ``width`` columns of the grid the object is simulated on: images
    (..., W_obj) -> (..., width), the periodic sum of the columns (column
    ``W_obj // 2`` lands on ``width // 2``). Sampling the object's spectrum
    at the acquired line spacing 1 / FOV is exactly this periodic sum (DTFT)."""
    w_obj = x.shape[-1]
    out = np.zeros((*x.shape[:-1], width), dtype=x.dtype)
    dest = (np.arange(w_obj) - w_obj // 2 + width // 2) % width
    for j in range(0, w_obj, width):  # destinations within a chunk are distinct
        out[..., dest[j : j + width]] += x[..., j : j + width]
    return out


def _multicoil_kspace(image, maps, sigma, rng, width: int | None = None) -> np.ndarray:
    """k-space (..., Z, C, H, W) complex64 of images (..., Z, H, W_obj) through
    coil maps (Z, C, H, W_obj), plus complex Gaussian noise of std ``sigma``;
    coil images folded to ``width`` columns first (:func:`fold_fov`) when given."""
    lead = image.shape[:-3]
    n_slices, n_coils, h, w = maps.shape
    w = w if width is None else int(width)
    out = np.empty((*lead, n_slices, n_coils, h, w), dtype=np.complex64)
    for k in range(n_slices):
        coil_img = image[..., k, None, :, :] * maps[k]
        if w != maps.shape[-1]:
            coil_img = fold_fov(coil_img, w)
        out[..., k, :, :, :] = fft2c(coil_img.astype(np.complex64))
    if sigma > 0:
        noise = rng.standard_normal((*out.shape, 2), dtype=np.float32)
        noise *= np.float32(sigma / np.sqrt(2.0))
        out += noise.view(np.complex64)[..., 0]
    return out


def simulate_cardiac_subject(
    index: int,
    seed: int = 0,
    *,
    size: Sequence[int] = CARDIAC_SIZE,
    n_slices: int = CARDIAC_SLICES,
    n_frames: int = CARDIAC_FRAMES,
    n_coils: int = CARDIAC_COILS,
    noise: float = NOISE,
    view: str = "sax",
) -> dict:
    """One subject's fully sampled data: ``kspace`` (T, Z, C, H, W) complex64
    plus the noise-free ``image`` (T, Z, H, W), ``maps`` (Z, C, H, W) and
    ``labels`` (T, Z, H, W)."""
    h, w = (int(s) for s in size)
    anatomy = sample_cardiac_anatomy(_rng(seed, "cmrx", index, "anatomy"))
    n_views = n_slices if view == "sax" else LAX_VIEWS
    image, labels = cardiac_phantom(
        (h, w),
        n_views,
        n_frames,
        _rng(seed, "cmrx", index, view),
        view=view,
        anatomy=anatomy,
        return_labels=True,
    )
    pixel = CARDIAC_FOV_CM / h
    at, bt = anatomy["torso"]
    zpos = (np.arange(n_views) - (n_views - 1) / 2) * (1.0 if view == "sax" else 2.5)
    maps = coil_maps(
        (h, w),
        n_coils,
        pixel=pixel,
        body_axes=(at, bt),
        body_centre=anatomy["shift"],
        z=zpos,
        seed=_rng(seed, "cmrx", index, "coils", view),
    )
    kspace = _multicoil_kspace(
        image, maps, noise * IMAGE_SCALE, _rng(seed, "cmrx", index, "noise", view)
    )
    return {"kspace": kspace, "image": image, "maps": maps, "labels": labels}


def simulate_brain_volume(
    index: int,
    seed: int = 0,
    *,
    size: Sequence[int] = BRAIN_SIZE,
    n_slices: int = BRAIN_SLICES,
    n_coils: int = BRAIN_COILS,
    noise: float = NOISE,
    fov_fraction: float = 1.0,
) -> dict:
    """One brain volume: ``kspace`` (Z, C, H, W_acq) complex64, noise-free
    ``image`` (Z, H, W), ``maps`` (Z, C, H, W) and ``target`` (Z, H/2, W_acq)
    float32 (centre-cropped RSS of the noisy fully sampled k-space).

    ``fov_fraction`` < 1: the phase-encode (W, left-right) field of view is
    that fraction of the simulated grid's, as in brain scans whose FOV is
    smaller than the head: same pixels, W_acq = 2 round(fov_fraction W / 2)
    phase-encode lines, and the coil images wrap around into them
    (:func:`fold_fov`); the target shows the wrap-around, as fastMRI's do.
    Default 1: W_acq = W."""
    h, w = (int(s) for s in size)
    if not 0.0 < fov_fraction <= 1.0:
        raise ConfigError(f"fov_fraction must be in (0, 1], got {fov_fraction}")
    w_acq = w if fov_fraction == 1.0 else 2 * int(round(fov_fraction * w / 2))
    if w_acq < 2:
        raise ConfigError(f"fov_fraction {fov_fraction} leaves {w_acq} of {w} columns")
    image = brain_phantom((h, w), n_slices, _rng(seed, "brain", index, "phantom"))
    pixel_cm = BRAIN_FOV_MM / (h // 2) / 10.0
    zpos = (np.arange(n_slices) - (n_slices - 1) / 2) * 0.5
    maps = coil_maps(
        (h, w),
        n_coils,
        pixel=pixel_cm,
        body_axes=(9.8, 8.0),
        z=zpos,
        standoff=1.0,
        loop_radius=4.0,
        seed=_rng(seed, "brain", index, "coils"),
    )
    kspace = _multicoil_kspace(
        image[None], maps, noise * IMAGE_SCALE, _rng(seed, "brain", index, "noise"), width=w_acq
    )[0]
    target = np.sqrt((np.abs(ifft2c(kspace)) ** 2).sum(axis=1))
    target = np.ascontiguousarray(center_crop(target, (h // 2, w_acq))).astype(np.float32)
    return {"kspace": kspace, "image": image, "maps": maps, "target": target}
