"""The brain phantom: axial T1 slices of the MNI152 template that ships
inside nilearn, with a simulated skull and scalp, on a grid with 2x readout
oversampling like real fastMRI brain data. Images are (Z, H, W): H
anterior-posterior (anterior at row 0), W left-right."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import erfc

from fmrecon.data.simulate.common import (
    BRAIN_FOV_MM,
    BRAIN_SIZE,
    BRAIN_SLICES,
    IMAGE_SCALE,
    SeedLike,
    _as_rng,
    _smooth_field,
    _smooth_phase,
)
from fmrecon.errors import DataError

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
