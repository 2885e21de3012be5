"""Synthetic multi-coil MRI data written in the real file formats.

Two generators, both deterministic for a given seed (subject ``i`` of seed ``s``
is the same whatever the number of subjects asked for):

- :func:`simulate_cmrxrecon`: cardiac cine in the CMRxRecon 2023 layout
  (``MultiCoil/Cine/TrainingSet/{FullSample,AccFactor04,08,10}/P001/cine_sax.mat``
  and ``cine_lax.mat``, with the official masks). The anatomy is an analytic
  2-D + time torso phantom (:func:`cardiac_phantom`): chest wall, subcutaneous
  fat, lungs with vessels, liver, spine, descending aorta and a beating heart
  whose left and right ventricles contract over the cardiac cycle (the blood
  pool shrinks in systole while the myocardium thickens, its area conserved),
  changing from base to apex along the slices.
- :func:`simulate_fastmri_brain`: axial T1 brain volumes in the fastMRI
  multi-coil layout (``multicoil_val/file_brain_AXT1_sim_0001.h5``), built from
  the MNI152 T1 template that ships inside nilearn (:func:`brain_phantom`), with a
  simulated skull and scalp and 2x readout oversampling like real fastMRI brain
  data.

Both apply smooth complex coil sensitivities (:func:`coil_maps`), a smooth image
phase, a smooth multiplicative tissue texture, and complex Gaussian noise in
k-space.

Geometry conventions (see DESIGN.md): images are (..., H, W) with H the readout
(fully sampled, CMRxRecon ``kx``) and W the phase-encode axis (``ky``). For the
cardiac phantom H runs along the patient's left-right axis (the longer torso
axis; patient's left at high H) and W along anterior-posterior (anterior at
low W), so the heart sits in the central third of H and the central half of W
like the CMRxRecon ranking crop assumes; show ``image.T`` for a radiological
view. For the brain H is anterior-posterior (anterior at row 0), W left-right.

Value scale: the coil-combined image of blood (cardiac) or white matter (brain)
has magnitude about :data:`IMAGE_SCALE` (5e-4), so RSS images are of order
1e-4..1e-3 like real CMRxRecon data; ``noise`` is the standard deviation of the
complex k-space noise (per coil and sample, orthonormal FFT) relative to that
scale.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage
from scipy.special import erfc

from fmrecon.data.h5io import atomic_path, write_mat73
from fmrecon.errors import ConfigError, DataError
from fmrecon.metrics import center_crop
from fmrecon.physics.fft import fft2c, ifft2c
from fmrecon.physics.masks import create_mask

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


# --------------------------------------------------------------------------- helpers


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


class _Canvas:
    """Painter's algorithm on a magnitude image with a label map."""

    def __init__(self, shape):
        self.img = np.zeros(shape)
        self.labels = np.zeros(shape, dtype=np.uint8)

    def paint(self, occ, value, label):
        occ = np.broadcast_to(occ, self.img.shape)
        self.img += occ * (value - self.img)
        self.labels[occ > 0.5] = LABELS[label]


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


def cardiac_curve(phase) -> np.ndarray:
    """Contraction s in [0, 1] over the cardiac cycle (``phase`` in [0, 1),
    0 = end-diastole): fast systole peaking at 35% of the cycle, slower
    diastolic filling."""
    p = np.mod(np.asarray(phase, dtype=float), 1.0)
    return np.where(
        p < 0.35,
        np.sin(0.5 * np.pi * p / 0.35) ** 2,
        np.cos(0.5 * np.pi * (p - 0.35) / 0.65) ** 2,
    )


# --------------------------------------------------------------------------- cardiac phantom


def sample_cardiac_anatomy(rng: SeedLike = 0) -> dict:
    """Random per-subject anatomy of the cardiac phantom (lengths in cm,
    angles in radians, intensities relative to blood = 1)."""
    rng = _as_rng(rng)
    u = rng.uniform
    return {
        "rotation": u(-0.14, 0.14),
        "shift": (u(-1.2, 1.2), u(-1.0, 1.0)),
        "torso": (u(13.5, 17.0), u(9.5, 11.8)),
        "fat": u(0.7, 2.0),
        "wall": u(1.0, 1.6),
        "heart": (u(1.5, 3.5), u(-2.6, -0.6)),
        "heart_angle": u(-0.35, 0.35),
        "lv_radius": u(2.1, 2.7),
        "lv_wall": u(0.8, 1.1),
        "lv_ef": u(0.5, 0.68),
        "rv_ef": u(0.4, 0.6),
        "rv_size": u(0.9, 1.2),
        "lv_length": u(7.5, 9.0),
        "liver": (u(-8.0, -5.5), u(1.0, 3.5), u(7.5, 10.0), u(5.5, 7.5)),
        "aorta_radius": u(0.9, 1.25),
        "slice_range": (u(0.0, 0.12), u(0.78, 0.92)),
        "vessels": rng.uniform(0, 1, size=(24, 3)),
        "intensity": {
            "blood": u(0.9, 1.1),
            "myocardium": u(0.24, 0.34),
            "fat": u(0.7, 0.95),
            "muscle": u(0.22, 0.32),
            "lung": u(0.02, 0.06),
            "liver": u(0.25, 0.38),
            "bone": u(0.35, 0.5),
            "csf": u(0.7, 0.95),
            "pericardial_fat": u(0.5, 0.8),
            "vessel": u(0.25, 0.45),
        },
    }


def _paint_torso(canvas, x, y, z, an, pixel, aorta_s):
    """Static torso anatomy of one slice at through-plane position ``z``
    (0 = base, 1 = apex); ``aorta_s`` (T, 1, 1) drives aortic pulsation."""
    it = an["intensity"]
    e = pixel
    at, bt = an["torso"]
    fat = an["fat"]
    wall = an["wall"]
    # body outline and subcutaneous fat, muscle wall, thoracic cavity (lungs)
    canvas.paint(_soft_ellipse(x, y, 0.0, 0.3, at, bt, p=2.4, edge=e), it["fat"], "fat")
    canvas.paint(
        _soft_ellipse(x, y, 0.0, 0.3, at - fat, bt - fat * 0.8, p=2.4, edge=e),
        it["muscle"],
        "muscle",
    )
    ca, cb, ccy = at - fat - wall, bt - fat * 0.8 - wall - 0.6, -0.2
    cavity = _soft_ellipse(x, y, 0.0, ccy, ca, cb, p=2.2, edge=e)
    canvas.paint(cavity, it["lung"], "lung")
    # pulmonary vessels: small bright dots inside the lungs
    for fx, fy, fr in an["vessels"]:
        vx = (fx * 2 - 1) * ca * 0.85
        vy = ccy + (fy * 2 - 1) * cb * 0.8
        canvas.paint(
            _soft_ellipse(x, y, vx, vy, 0.25 + 0.35 * fr, 0.25 + 0.35 * fr, edge=e) * cavity,
            it["vessel"],
            "vessel",
        )
    # liver (right, posterior-inferior): grows towards the apex slices
    lx, ly, la, lb = an["liver"]
    grow = np.clip((z - 0.25) / 0.75, 0.0, 1.0)
    if grow > 0:
        occ = _soft_ellipse(x, y, lx, ly, la * np.sqrt(grow), lb * np.sqrt(grow), 0.3, edge=e)
        canvas.paint(occ * cavity, it["liver"], "liver")
    # spine: vertebral body (marrow, cortical rim), spinal canal (CSF) and cord,
    # paraspinal muscles; sternum anteriorly
    sy = bt - fat * 0.8 - wall - 1.2
    canvas.paint(_soft_ellipse(x, y, -2.3, sy + 2.2, 1.8, 2.4, edge=e), it["muscle"], "muscle")
    canvas.paint(_soft_ellipse(x, y, 2.3, sy + 2.2, 1.8, 2.4, edge=e), it["muscle"], "muscle")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy, 1.8, 1.5, edge=e), it["bone"] * 0.3, "bone")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy, 1.6, 1.3, edge=e), it["bone"], "bone")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy + 2.1, 0.75, 0.7, edge=e), it["csf"], "csf")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy + 2.1, 0.4, 0.4, edge=e), it["muscle"], "muscle")
    canvas.paint(_soft_ellipse(x, y, 0.0, -bt + fat + 0.2, 1.4, 0.6, edge=e), it["bone"], "bone")
    # descending aorta, left-anterior of the spine, pulsating
    ar = an["aorta_radius"] * (1.0 + 0.08 * aorta_s)
    canvas.paint(_soft_ellipse(x, y, 1.9, sy - 2.4, ar + 0.15, ar + 0.15, edge=e), 0.2, "muscle")
    canvas.paint(_soft_ellipse(x, y, 1.9, sy - 2.4, ar, ar, edge=e), it["blood"] * 0.9, "aorta")


def _paint_sax_heart(canvas, x, y, z, an, pixel, s):
    """Short-axis heart at position ``z`` (0 = base, 1 = apex); ``s`` (T, 1, 1)
    is the contraction (0 = end-diastole, 1 = end-systole)."""
    it = an["intensity"]
    e = pixel
    hx, hy = an["heart"]
    ang = an["heart_angle"]
    # the whole heart moves slightly towards the apex (left-anterior) in systole
    cx = hx + 0.3 * s * np.cos(ang)
    cy = hy - 0.2 * s
    taper = np.sqrt(max(1.0 - (0.85 * z) ** 2, 0.08))
    ri0 = an["lv_radius"] * taper
    w0 = an["lv_wall"] * (1.0 - 0.15 * z)
    myo_area = (ri0 + w0) ** 2 - ri0**2
    ri = ri0 * np.sqrt(1.0 - an["lv_ef"] * s)
    ro = np.sqrt(ri**2 + myo_area)
    ro0 = ri0 + w0
    lv = (cx, cy, ro, ro * 0.96, ang)
    # RV: an ellipse on the patient's right-anterior side of the LV, wrapped
    # around it; the LV painted on top of it leaves a crescent
    rv_taper = np.sqrt(max(1.0 - (1.05 * z) ** 2, 0.0))
    rv = None
    if rv_taper > 0.05:
        rv_dir = np.pi + 0.6 + ang  # towards -x (right) and -y (anterior)
        rv_area = np.sqrt(1.0 - an["rv_ef"] * s)
        rb = an["rv_size"] * ro0 * 0.6 * rv_taper * rv_area
        ra = an["rv_size"] * ro0 * 1.2 * rv_taper * (0.5 + 0.5 * rv_area)
        dist = ro0 * 0.6 + rb * 0.5
        rv = (cx + dist * np.cos(rv_dir), cy + dist * np.sin(rv_dir), ra, rb, rv_dir + np.pi / 2)
    # epicardial fat: a thin rim around the ventricles, thicker at the grooves
    fat = _soft_ellipse(x, y, *_grow(lv, 0.3), edge=e)
    if rv is not None:
        fat = np.maximum(fat, _soft_ellipse(x, y, *_grow(rv, 0.75, 0.55), edge=e))
    canvas.paint(fat, it["pericardial_fat"], "pericardial_fat")
    if rv is not None:
        canvas.paint(
            _soft_ellipse(x, y, *_grow(rv, 0.3), edge=e), it["myocardium"], "rv_myocardium"
        )
        canvas.paint(_soft_ellipse(x, y, *rv, edge=e), it["blood"], "rv_blood")
    # LV: myocardium ring thickening as the blood pool shrinks
    canvas.paint(_soft_ellipse(x, y, *lv, edge=e), it["myocardium"], "lv_myocardium")
    canvas.paint(_soft_ellipse(x, y, cx, cy, ri, ri * 0.95, ang, edge=e), it["blood"], "lv_blood")
    # papillary muscles inside the blood pool (basal and mid slices)
    if z < 0.8:
        pr = 0.14 * ri0 * (1.0 + 0.4 * s)
        for pa in (ang + 0.8, ang + 2.2):
            px_ = cx + 0.7 * ri * np.cos(pa)
            py_ = cy + 0.7 * ri * np.sin(pa)
            canvas.paint(
                _soft_ellipse(x, y, px_, py_, pr, pr * 1.3, pa, edge=e),
                it["myocardium"],
                "lv_myocardium",
            )


def _grow(shape, da, db=None):
    """An ellipse tuple (cx, cy, a, b, angle) with semi-axes grown by da, db."""
    cx, cy, a, b, angle = shape
    return cx, cy, a + da, b + (da if db is None else db), angle


def _paint_lax_heart(canvas, x, y, view, an, pixel, s):
    """Long-axis heart: view 0 = 2-chamber (LV, LA), 1 = 3-chamber (LV, LA,
    outflow tract and aortic root), 2 = 4-chamber (LV, RV, LA, RA). The mitral
    plane descends towards the apex in systole and the atria fill."""
    it = an["intensity"]
    e = pixel
    hx, hy = an["heart"]
    # long axis from the base (right-posterior) to the apex (left-anterior)
    axis = -0.55 + an["heart_angle"] + (0.0, 0.15, -0.1)[view]
    ca, sa = np.cos(axis), np.sin(axis)
    # across the heart, towards the right ventricle (patient's right-anterior)
    pa, pb = np.cos(axis - np.pi / 2), np.sin(axis - np.pi / 2)
    L0 = an["lv_length"] * (0.95, 1.0, 1.0)[view]
    R0 = an["lv_radius"] * (1.0, 0.95, 1.05)[view]
    w0 = an["lv_wall"]
    descent = 1.1 * s
    # mitral plane centre, moving towards the apex in systole
    mx = hx - 0.45 * L0 * ca + descent * ca
    my = hy - 0.45 * L0 * sa + descent * sa
    length = L0 - descent - 0.2 * s
    radius = R0 * (1.0 - 0.22 * s)
    myo = np.sqrt(radius**2 + ((R0 + w0) ** 2 - R0**2)) - radius
    lv_myo = (mx, my, length + myo * 1.2, radius + myo, axis)
    lv_blood = (mx, my, length, radius, axis)
    # atria behind the mitral (and tricuspid) plane; they fill in systole
    la_len = 2.2 + 0.5 * s
    la_w = 2.1 + 0.15 * s
    shift = -0.4 * R0 if view == 2 else 0.0
    la = (
        mx - (la_len - 0.2) * ca + shift * pa,
        my - (la_len - 0.2) * sa + shift * pb,
        la_len,
        la_w,
        axis,
    )
    chambers = [lv_myo, _grow(la, 0.25)]
    rv = ra_ = ao = None
    if view == 1:  # outflow tract and aortic root towards the base, on the septal side
        ao_axis = axis + np.pi - 0.8
        ao = (
            mx + 0.55 * R0 * pa + 2.0 * np.cos(ao_axis),
            my + 0.55 * R0 * pb + 2.0 * np.sin(ao_axis),
            2.6,
            1.2,
            ao_axis,
        )
        chambers.append(_grow(ao, 0.25))
    if view == 2:  # right heart beside the septum
        off = R0 + w0 + 0.3 + 1.5 * an["rv_size"]
        rvx, rvy = mx + off * pa, my + off * pb
        rv_w = 1.5 * an["rv_size"] * np.sqrt(1.0 - an["rv_ef"] * s)
        rv = (rvx, rvy, 0.75 * L0 * (1.0 - 0.15 * s), rv_w, axis)
        ra_ = (rvx - (la_len - 0.2) * ca, rvy - (la_len - 0.2) * sa, la_len, la_w - 0.2, axis)
        chambers += [_grow(rv, 0.3), _grow(ra_, 0.25)]
    lv_half = _soft_halfplane(x, y, mx, my, axis, edge=e)
    fat = _soft_ellipse(x, y, *_grow(lv_myo, 0.35), edge=e) * lv_half
    for shape in chambers[1:]:
        fat = np.maximum(fat, _soft_ellipse(x, y, *_grow(shape, 0.35), edge=e))
    canvas.paint(fat, it["pericardial_fat"], "pericardial_fat")
    canvas.paint(_soft_ellipse(x, y, *_grow(la, 0.25), edge=e), it["myocardium"], "atrium")
    canvas.paint(_soft_ellipse(x, y, *la, edge=e), it["blood"], "atrium")
    if ao is not None:
        canvas.paint(_soft_ellipse(x, y, *_grow(ao, 0.25), edge=e), it["myocardium"], "muscle")
        canvas.paint(_soft_ellipse(x, y, *ao, edge=e), it["blood"], "aorta")
    if rv is not None:
        rv_half = _soft_halfplane(x, y, rv[0], rv[1], axis, edge=e)
        canvas.paint(_soft_ellipse(x, y, *_grow(ra_, 0.25), edge=e), it["myocardium"], "atrium")
        canvas.paint(_soft_ellipse(x, y, *ra_, edge=e), it["blood"], "atrium")
        canvas.paint(
            _soft_ellipse(x, y, *_grow(rv, 0.3), edge=e) * rv_half,
            it["myocardium"],
            "rv_myocardium",
        )
        canvas.paint(_soft_ellipse(x, y, *rv, edge=e) * rv_half, it["blood"], "rv_blood")
    # LV: half prolate ellipse from the mitral plane to the apex
    canvas.paint(_soft_ellipse(x, y, *lv_myo, edge=e) * lv_half, it["myocardium"], "lv_myocardium")
    canvas.paint(_soft_ellipse(x, y, *lv_blood, edge=e) * lv_half, it["blood"], "lv_blood")
    # mitral valve leaflets: thin dark bars hinged at the annulus, open in diastole
    gap = radius * (0.8 - 0.65 * s)
    leaf = np.maximum((radius - gap) / 2, 0.1)
    for sign in (-1.0, 1.0):
        off = sign * (gap + (radius - gap) / 2)
        canvas.paint(
            _soft_ellipse(x, y, mx + off * pa, my + off * pb, 0.18, leaf, axis, edge=e),
            it["myocardium"],
            "lv_myocardium",
        )


def cardiac_phantom(
    size: Sequence[int] = CARDIAC_SIZE,
    n_slices: int = CARDIAC_SLICES,
    n_frames: int = CARDIAC_FRAMES,
    seed: SeedLike = 0,
    *,
    view: str = "sax",
    anatomy: dict | None = None,
    scale: float = IMAGE_SCALE,
    texture: bool = True,
    phase: bool = True,
    return_labels: bool = False,
):
    """Complex cine images (T, Z, H, W) complex64 of one simulated subject.

    ``view`` "sax": ``n_slices`` short-axis slices from base to apex; "lax":
    long-axis views (slice k = 2-, 3-, 4-chamber, cycling). Blood magnitude is
    about ``scale``. ``anatomy`` (from :func:`sample_cardiac_anatomy`) defaults
    to one drawn from ``seed``. With ``return_labels`` also returns the tissue
    label map (T, Z, H, W) uint8 (see :data:`LABELS`).
    """
    h, w = (int(s) for s in size)
    rng = _as_rng(seed)
    an = sample_cardiac_anatomy(rng) if anatomy is None else anatomy
    pixel = CARDIAC_FOV_CM / h
    x0, y0 = _grid(h, w, pixel)
    # subject pose: rotate and shift the whole body
    c, s_ = np.cos(an["rotation"]), np.sin(an["rotation"])
    dx, dy = x0 - an["shift"][0], y0 - an["shift"][1]
    x = (dx * c + dy * s_)[None]
    y = (-dx * s_ + dy * c)[None]
    t = np.arange(n_frames) / n_frames
    s = cardiac_curve(t)[:, None, None]
    z_lo, z_hi = an["slice_range"]
    zs = np.linspace(z_lo, z_hi, n_slices) if n_slices > 1 else np.array([0.45])
    mag = np.zeros((n_frames, n_slices, h, w))
    labels = np.zeros((n_frames, n_slices, h, w), dtype=np.uint8)
    for k in range(n_slices):
        canvas = _Canvas((n_frames, h, w))
        if view == "sax":
            _paint_torso(canvas, x, y, zs[k], an, pixel, s)
            _paint_sax_heart(canvas, x, y, zs[k], an, pixel, s)
        elif view == "lax":
            _paint_torso(canvas, x, y, 0.45, an, pixel, s)
            _paint_lax_heart(canvas, x, y, k % 3, an, pixel, s)
        else:
            raise ConfigError(f"unknown cardiac view '{view}' (expected sax or lax)")
        mag[:, k] = canvas.img
        labels[:, k] = canvas.labels
    if texture:
        tex = 1.0 + 0.07 * _smooth_field(rng, (n_slices, h, w), corr=3.0 / pixel)
        tex *= 1.0 + 0.04 * _smooth_field(rng, (n_slices, h, w), corr=0.5 / pixel)
        mag *= tex[None]
    img = mag * scale
    if phase:
        img = img * np.exp(1j * _smooth_phase(rng, (n_slices, h, w)))[None]
    img = img.astype(np.complex64)
    return (img, labels) if return_labels else img


# --------------------------------------------------------------------------- coils


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


def _multicoil_kspace(image, maps, sigma, rng) -> np.ndarray:
    """k-space (..., Z, C, H, W) complex64 of images (..., Z, H, W) through
    coil maps (Z, C, H, W), plus complex Gaussian noise of std ``sigma``."""
    lead = image.shape[:-3]
    n_slices, n_coils, h, w = maps.shape
    out = np.empty((*lead, n_slices, n_coils, h, w), dtype=np.complex64)
    for k in range(n_slices):
        coil_img = image[..., k, None, :, :] * maps[k]
        out[..., k, :, :, :] = fft2c(coil_img.astype(np.complex64))
    if sigma > 0:
        noise = rng.standard_normal((*out.shape, 2), dtype=np.float32)
        noise *= np.float32(sigma / np.sqrt(2.0))
        out += noise.view(np.complex64)[..., 0]
    return out


# --------------------------------------------------------------------------- CMRxRecon writer


def cmrxrecon_mask(nx: int, ny: int, acceleration: int) -> np.ndarray:
    """The official CMRxRecon 2023 mask as its mask file stores it: MATLAB
    order (kx, ky), float64 (see ``fmrecon.physics.masks.CMRxReconUniformMask``)."""
    return create_mask("cmrxrecon-uniform", acceleration)((nx, ny)).astype(np.float64)


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


def _matlab_view(stored: np.ndarray) -> np.ndarray:
    """A C-contiguous array in HDF5 order (what the file stores) as a view in
    MATLAB order (all axes reversed), so write_mat73 stores it without a copy."""
    return stored.transpose(tuple(range(stored.ndim))[::-1])


def simulate_cmrxrecon(
    out_dir: str | Path,
    n_subjects: int = CARDIAC_SUBJECTS,
    seed: int = 0,
    *,
    size: Sequence[int] = CARDIAC_SIZE,
    n_slices: int = CARDIAC_SLICES,
    n_frames: int = CARDIAC_FRAMES,
    n_coils: int = CARDIAC_COILS,
    accelerations: Sequence[int] = ACCELERATIONS,
    noise: float = NOISE,
    lax: bool = True,
    undersampled: bool = False,
    progress: Progress = None,
) -> list[Path]:
    """Write ``n_subjects`` cine subjects in the CMRxRecon 2023 layout under
    ``out_dir/MultiCoil/Cine/TrainingSet``: ``FullSample/P001/cine_sax.mat``
    (key ``kspace_full``, MATLAB dims (kx, ky, coil, slice, time) complex64,
    kx = size[0], ky = size[1]) and, for each R, ``AccFactorRR/P001/cine_sax.mat``
    (key ``kspace_subRR`` = kspace_full * mask, only with ``undersampled``) and
    ``cine_sax_mask.mat`` (key ``maskRR``, (kx, ky) float64); the same for ``cine_lax`` (3 long-axis
    views) when ``lax``. Returns the paths written; ``progress(path)`` is
    called after each file."""
    h, w = _check_size(size, "cmrxrecon")
    _rng(seed)  # validates the seed
    n_subjects = _check_positive(n_subjects, "subjects")
    n_slices = _check_positive(n_slices, "slices")
    n_frames = _check_positive(n_frames, "frames")
    n_coils = _check_positive(n_coils, "coils")
    accelerations = _check_accelerations(accelerations, w)
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    base = Path(out_dir) / "MultiCoil" / "Cine" / "TrainingSet"
    masks = {r: cmrxrecon_mask(h, w, r) for r in accelerations}
    written: list[Path] = []

    def emit(path: Path, arrays: dict, compression=None) -> None:
        write_mat73(path, arrays, compression=compression)
        written.append(path)
        if progress is not None:
            progress(path)

    for i in range(n_subjects):
        subject = f"P{i + 1:03d}"
        for view in ("sax", "lax") if lax else ("sax",):
            sim = simulate_cardiac_subject(
                i,
                seed,
                size=(h, w),
                n_slices=n_slices,
                n_frames=n_frames,
                n_coils=n_coils,
                noise=noise,
                view=view,
            )
            # HDF5 order (T, Z, C, ky, kx) = MATLAB (kx, ky, coil, slice, time) reversed
            full = np.ascontiguousarray(np.swapaxes(sim.pop("kspace"), -1, -2))
            emit(
                base / "FullSample" / subject / f"cine_{view}.mat",
                {"kspace_full": _matlab_view(full)},
            )
            for r in accelerations:
                sub = (
                    full * masks[r].T.astype(np.float32) if undersampled else None
                )  # mask (kx, ky) -> (ky, kx)
                folder = base / f"AccFactor{r:02d}" / subject
                # MATLAB's save -v7.3 compresses; the masked copies shrink ~R-fold
                if undersampled:
                    emit(
                        folder / f"cine_{view}.mat",
                        {f"kspace_sub{r:02d}": _matlab_view(sub)},
                        compression="gzip",
                    )
                del sub
                emit(folder / f"cine_{view}_mask.mat", {f"mask{r:02d}": masks[r]}, "gzip")
    return written


def _check_accelerations(accelerations: Sequence[int], ny: int) -> tuple[int, ...]:
    out = []
    for r in accelerations:
        if int(r) != r or not 2 <= r <= 99:
            raise ConfigError(f"acceleration must be an integer in 2..99, got {r!r}")
        out.append(int(r))
    if ny < CMRX_ACS_LINES + 2:
        raise ConfigError(f"ky = {ny} too small for {CMRX_ACS_LINES} ACS lines")
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------------------- brain phantom

_MNI_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


@functools.lru_cache(maxsize=1)
def mni_template() -> np.ndarray:
    """The MNI152 T1 template shipped inside nilearn as float32 (x, y, z) =
    (197, 233, 189) at 1 mm (x left to right, y posterior to anterior, z
    inferior to superior), scaled to max 1 — the image that
    ``nilearn.datasets.load_mni152_template(resolution=1)`` returns, read from
    the wheel without importing nilearn (no network). Raises DataError if it
    is not available."""
    spec = importlib.util.find_spec("nilearn")
    path = None
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "datasets" / "data" / _MNI_FILE
        if candidate.is_file():
            path = candidate
    try:
        if path is not None:
            import nibabel

            data = np.asarray(nibabel.load(path).dataobj, dtype=np.float32)
        else:
            from nilearn.datasets import load_mni152_template

            data = np.asarray(load_mni152_template(resolution=1).dataobj, dtype=np.float32)
    except Exception as err:  # missing package, file or a (forbidden) download attempt
        raise DataError(
            "the MNI152 T1 template that ships inside nilearn is not available offline "
            f"({type(err).__name__}: {err}); install nilearn>=0.10 to simulate brain data"
        ) from None
    data /= data.max()
    return data


def _head_slice(template: np.ndarray, zc: int, an: dict) -> np.ndarray:
    """One axial template slab (3 mm) at index ``zc``, padded, with CSF, skull
    and scalp added outside the brain; (x, y) at 1 mm."""
    slab = template[:, :, max(zc - 1, 0) : zc + 2].mean(axis=-1)
    slab = np.pad(slab, 30)
    brain = slab > 0.04
    env = ndimage.gaussian_filter(brain.astype(float), 5.0) > 0.25
    env = ndimage.binary_fill_holes(env)
    dist = ndimage.distance_transform_edt(~env) - ndimage.distance_transform_edt(env)
    it = an["intensity"]
    layers = (  # (outer distance in mm, value): CSF, outer table, diploe, inner table, fat, skin
        (2.0, it["csf"]),
        (3.5, 0.03),
        (6.0 + an["skull"], it["diploe"]),
        (7.5 + an["skull"], 0.03),
        (12.0 + an["skull"] + an["scalp"], it["fat"]),
        (14.0 + an["skull"] + an["scalp"], it["skin"]),
    )
    head = np.zeros_like(slab)
    for outer, value in reversed(layers):
        occ = 0.5 * erfc((dist - outer) / 0.8)
        head += occ * (value - head)
    # inside the envelope: brain where the template has tissue, CSF between
    inside = 0.5 * erfc(dist / 0.8)
    head = head * (1.0 - inside) + inside * np.maximum(slab, it["csf"])
    return head


def sample_brain_anatomy(rng: SeedLike = 0) -> dict:
    """Random per-volume pose, slice range and intensities of the brain phantom."""
    rng = _as_rng(rng)
    u = rng.uniform
    return {
        "z_range": (int(rng.integers(45, 62)), int(rng.integers(120, 142))),
        "rotation": u(-0.14, 0.14),
        "scale": u(0.9, 1.08),
        "shift": (u(-5.0, 5.0), u(-6.0, 6.0)),
        "gamma": u(0.8, 1.25),
        "skull": u(0.0, 2.5),
        "scalp": u(0.0, 3.0),
        "intensity": {
            "csf": u(0.06, 0.14),
            "diploe": u(0.2, 0.4),
            "fat": u(0.7, 0.95),
            "skin": u(0.3, 0.45),
        },
    }


def brain_phantom(
    size: Sequence[int] = BRAIN_SIZE,
    n_slices: int = BRAIN_SLICES,
    seed: SeedLike = 0,
    *,
    anatomy: dict | None = None,
    scale: float = IMAGE_SCALE,
    texture: bool = True,
    phase: bool = True,
) -> np.ndarray:
    """Complex axial T1 brain images (Z, H, W) complex64 from the MNI152
    template: H = size[0] rows (anterior-posterior, with 2x readout
    oversampling: the head fills the central H/2 rows, zero background
    around), W = size[1] columns (left-right); pixels of BRAIN_FOV_MM / (H/2)
    mm. White matter magnitude is about ``scale``."""
    h, w = (int(s) for s in size)
    rng = _as_rng(seed)
    an = sample_brain_anatomy(rng) if anatomy is None else anatomy
    template = mni_template()
    pixel = BRAIN_FOV_MM / (h // 2)  # mm
    z0, z1 = an["z_range"]
    zs = np.linspace(z0, z1, n_slices).round().astype(int) if n_slices > 1 else [90]
    # output grid (mm): rows anterior (top) to posterior, columns patient's
    # right to left (radiological)
    ap = -(np.arange(h) - h // 2) * pixel
    lr = -(np.arange(w) - w // 2) * pixel
    AP, LR = np.meshgrid(ap, lr, indexing="ij")
    c, s = np.cos(an["rotation"]), np.sin(an["rotation"])
    k = 1.0 / an["scale"]
    tx = k * (c * LR - s * AP) + an["shift"][0]
    ty = k * (s * LR + c * AP) + an["shift"][1]
    # template voxel of the head centre (MNI x=0, y=-18) + 30 voxels padding
    coords = np.stack([tx + 98 + 30, ty + 116 + 30])
    sigma = max(0.42 * pixel * k - 0.3, 0.0)
    mag = np.empty((n_slices, h, w))
    for i, zc in enumerate(zs):
        head = _head_slice(template, int(zc), an)
        if sigma > 0:
            head = ndimage.gaussian_filter(head, sigma)
        mag[i] = ndimage.map_coordinates(head, coords, order=1, mode="constant", cval=0.0)
    mag = np.clip(mag, 0.0, None) ** an["gamma"]
    if texture:
        bias = 1.0 + 0.08 * _smooth_field(rng, (n_slices, h, w), corr=60.0 / pixel)
        mag *= bias
    img = mag / 0.85 * scale  # white matter of the template is ~0.85
    if phase:
        img = img * np.exp(1j * _smooth_phase(rng, (n_slices, h, w)))
    return img.astype(np.complex64)


# --------------------------------------------------------------------------- fastMRI writer

_ISMRMRD = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
 <subjectInformation><patientID>{pid}</patientID></subjectInformation>
 <acquisitionSystemInformation>
  <systemVendor>fmrecon simulation</systemVendor>
  <receiverChannels>{coils}</receiverChannels>
 </acquisitionSystemInformation>
 <experimentalConditions><H1resonanceFrequency_Hz>123000000</H1resonanceFrequency_Hz>
 </experimentalConditions>
 <encoding>
  <encodedSpace>
   <matrixSize><x>{H}</x><y>{W}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{fov_h:.1f}</x><y>{fov_w:.1f}</y><z>5.0</z></fieldOfView_mm>
  </encodedSpace>
  <reconSpace>
   <matrixSize><x>{h}</x><y>{W}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{fov_r:.1f}</x><y>{fov_w:.1f}</y><z>5.0</z></fieldOfView_mm>
  </reconSpace>
  <trajectory>cartesian</trajectory>
  <encodingLimits>
   <kspace_encoding_step_1><minimum>0</minimum><maximum>{wmax}</maximum><center>{wc}</center>
   </kspace_encoding_step_1>
   <kspace_encoding_step_2><minimum>0</minimum><maximum>0</maximum><center>0</center>
   </kspace_encoding_step_2>
   <slice><minimum>0</minimum><maximum>{zmax}</maximum><center>{zc}</center></slice>
  </encodingLimits>
 </encoding>
 <sequenceParameters><TR>250</TR><TE>2.64</TE><flipAngle_deg>70</flipAngle_deg>
 </sequenceParameters>
</ismrmrdHeader>
"""


def ismrmrd_header(kspace_shape: Sequence[int], patient_id: str = "") -> str:
    """A minimal ISMRMRD XML header for fastMRI k-space (slices, coils, H, W)
    with 2x readout oversampling (reconSpace (H/2, W))."""
    z, coils, hh, ww = (int(s) for s in kspace_shape)
    pixel = BRAIN_FOV_MM / (hh // 2)
    return _ISMRMRD.format(
        pid=patient_id,
        coils=coils,
        H=hh,
        W=ww,
        h=hh // 2,
        fov_h=pixel * hh,
        fov_r=pixel * (hh // 2),
        fov_w=pixel * ww,
        wmax=ww - 1,
        wc=ww // 2,
        zmax=z - 1,
        zc=z // 2,
    )


def simulate_brain_volume(
    index: int,
    seed: int = 0,
    *,
    size: Sequence[int] = BRAIN_SIZE,
    n_slices: int = BRAIN_SLICES,
    n_coils: int = BRAIN_COILS,
    noise: float = NOISE,
) -> dict:
    """One brain volume: ``kspace`` (Z, C, H, W) complex64, noise-free
    ``image`` (Z, H, W), ``maps`` (Z, C, H, W) and ``target`` (Z, H/2, W)
    float32 (centre-cropped RSS of the noisy fully sampled k-space)."""
    h, w = (int(s) for s in size)
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
        image[None], maps, noise * IMAGE_SCALE, _rng(seed, "brain", index, "noise")
    )[0]
    target = np.sqrt((np.abs(ifft2c(kspace)) ** 2).sum(axis=1))
    target = np.ascontiguousarray(center_crop(target, (h // 2, w))).astype(np.float32)
    return {"kspace": kspace, "image": image, "maps": maps, "target": target}


def simulate_fastmri_brain(
    out_dir: str | Path,
    n_volumes: int = BRAIN_VOLUMES,
    seed: int = 0,
    *,
    size: Sequence[int] = BRAIN_SIZE,
    n_slices: int = BRAIN_SLICES,
    n_coils: int = BRAIN_COILS,
    noise: float = NOISE,
    folder: str = "multicoil_val",
    progress: Progress = None,
) -> list[Path]:
    """Write ``n_volumes`` axial T1 brain volumes as fastMRI multi-coil files
    ``out_dir/multicoil_val/file_brain_AXT1_sim_0001.h5``: ``kspace`` (slices,
    coils, H, W) complex64 with H = size[0] including 2x readout
    oversampling, ``reconstruction_rss`` (slices, H/2, W) float32, ``ismrmrd_header``,
    attrs ``max``, ``norm``, ``acquisition`` = "AXT1", ``patient_id``."""
    h, w = _check_size(size, "fastmri")
    _rng(seed)  # validates the seed
    if h % 2:
        raise ConfigError(f"fastmri: H = {h} must be even (2x readout oversampling)")
    n_volumes = _check_positive(n_volumes, "subjects")
    n_slices = _check_positive(n_slices, "slices")
    n_coils = _check_positive(n_coils, "coils")
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    mni_template()  # fail early, with a DataError, if the template is missing
    written: list[Path] = []
    for i in range(n_volumes):
        sim = simulate_brain_volume(
            i, seed, size=(h, w), n_slices=n_slices, n_coils=n_coils, noise=noise
        )
        target = sim["target"]
        pid = hashlib.sha256(f"fmrecon-sim-brain-{seed}-{i}".encode()).hexdigest()
        path = Path(out_dir) / folder / f"file_brain_AXT1_sim_{i + 1:04d}.h5"
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=sim["kspace"])
            f.create_dataset("reconstruction_rss", data=target)
            f.create_dataset(
                "ismrmrd_header", data=np.bytes_(ismrmrd_header(sim["kspace"].shape, pid))
            )
            f.attrs["max"] = float(target.max())
            f.attrs["norm"] = float(np.linalg.norm(target))
            f.attrs["acquisition"] = "AXT1"
            f.attrs["patient_id"] = pid
        written.append(path)
        if progress is not None:
            progress(path)
    return written


# --------------------------------------------------------------------------- figure


def plot_subject(
    path: str | Path,
    seed: int = 0,
    *,
    size: Sequence[int] = (128, 96),
    n_frames: int = 10,
    n_coils: int = CARDIAC_COILS,
    brain_size: Sequence[int] = (256, 128),
    noise: float = NOISE,
) -> Path:
    """Save a PNG overview of simulated subject 0 of ``seed``: RSS of every
    frame of a mid-ventricular short-axis slice (full field of view, then
    zoomed on the heart), the slices from base to apex and the long-axis
    views, the coil-map magnitudes of that slice, and fastMRI brain targets.
    Cardiac images are shown transposed (radiological view: anterior up,
    patient's left on the right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_sax = 5
    sax = simulate_cardiac_subject(
        0, seed, size=size, n_slices=n_sax, n_frames=n_frames, n_coils=n_coils, noise=noise
    )
    lax = simulate_cardiac_subject(
        0, seed, size=size, n_frames=n_frames, n_coils=n_coils, noise=noise, view="lax"
    )
    ncol = max(n_frames, n_coils, n_sax + LAX_VIEWS)
    brain = simulate_brain_volume(0, seed, size=brain_size, n_slices=ncol, noise=noise)
    sax_rss = np.sqrt((np.abs(ifft2c(sax["kspace"])) ** 2).sum(axis=2))  # (T, Z, H, W)
    lax_rss = np.sqrt((np.abs(ifft2c(lax["kspace"])) ** 2).sum(axis=2))
    mid = n_sax // 2
    es = int(np.argmax(cardiac_curve(np.arange(n_frames) / n_frames)))
    # zoom window centred on the left ventricle of the mid slice
    h, w = size
    heart = np.isin(sax["labels"][0, mid], [LABELS["lv_blood"], LABELS["lv_myocardium"]])
    ci, cj = (int(round(float(c.mean()))) for c in np.nonzero(heart))
    hh, hw = int(h * 0.22), int(w * 0.28)
    ci, cj = min(max(ci, hh), h - hh), min(max(cj, hw), w - hw)
    zoom = (slice(ci - hh, ci + hh), slice(cj - hw, cj + hw))

    fig, axes = plt.subplots(5, ncol, figsize=(1.9 * ncol, 1.9 * 5 * 0.85), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()

    def show(ax, img, title, vmax):
        ax.imshow(img, cmap="gray", vmin=0, vmax=vmax, interpolation="lanczos")
        ax.set_title(title, fontsize=8)

    vmax = np.percentile(sax_rss[:, mid], 99.7)
    for t in range(n_frames):
        tag = " (ED)" if t == 0 else " (ES)" if t == es else ""
        show(axes[0, t], sax_rss[t, mid].T, f"SAX frame {t + 1}{tag}", vmax)
        show(axes[1, t], sax_rss[t, mid][zoom].T, f"heart, frame {t + 1}", vmax)
    for z in range(n_sax):
        where = "base" if z == 0 else "apex" if z == n_sax - 1 else f"slice {z + 1}"
        show(axes[2, z], sax_rss[0, z].T, f"SAX {where}", np.percentile(sax_rss[0, z], 99.7))
    views = [(0, v, "ED") for v in range(LAX_VIEWS)] + [(es, LAX_VIEWS - 1, "ES"), (es, 0, "ES")]
    for j, (t, v, tag) in enumerate(views[: ncol - n_sax]):
        img = lax_rss[t, v].T
        show(axes[2, n_sax + j], img, f"LAX {v + 2}-chamber {tag}", np.percentile(img, 99.7))
    maps = np.abs(sax["maps"][mid])
    for c in range(n_coils):
        show(axes[3, c], maps[c].T, f"|coil {c + 1}|", maps.max())
    target = brain["target"]
    bmax = np.percentile(target, 99.7)
    for z in range(target.shape[0]):
        show(axes[4, z], target[z], f"brain slice {z + 1}", bmax)
    fig.suptitle(
        f"fmrecon simulated data (seed {seed}): cine {size[0]}x{size[1]} (kx x ky), "
        f"{n_coils} coils, RSS of fully sampled k-space; fastMRI AXT1 brain, k-space "
        f"{brain_size[0]}x{brain_size[1]}, reconstruction_rss",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", facecolor="white")
    plt.close(fig)
    return path
