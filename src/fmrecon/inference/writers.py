"""What ``fmrecon reconstruct`` writes: CMRxRecon submission ``.mat`` files,
fastMRI ``reconstruction`` ``.h5`` files and PNG previews, each written
atomically, with the model's provenance in root attributes ``fmrecon_*``
(see :mod:`fmrecon.inference.reconstruct` for the layouts)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from torch import nn

from fmrecon import __version__
from fmrecon.data.h5io import atomic_path, open_h5, write_mat73
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import DataError
from fmrecon.metrics import cmrxrecon_crop, ranking_crop_size
from fmrecon.models.base import build_record

SUBMISSION_KEY = "img4ranking"  # CMRxRecon submission variable (run4Ranking.m)
FASTMRI_KEY = "reconstruction"  # fastMRI save_reconstructions dataset
MAX_PREVIEW_TILES = 36


def model_attrs(model: nn.Module) -> dict[str, str]:
    """What goes into each output's attributes about the model."""
    record = build_record(model)
    attrs = {
        "fmrecon_model": record.name if record else type(model).__name__,
        "fmrecon_checkpoint": str(record.checkpoint or "none") if record else "none",
        "fmrecon_encoder_weights": str((record.encoder_weights if record else None) or "none"),
        "fmrecon_version": __version__,
    }
    if random_encoder(model):
        attrs["fmrecon_warning"] = random_encoder_warning(model)
    return attrs


def random_encoder(model: nn.Module) -> bool:
    """True when the model's foundation-model encoder has random weights."""
    record = build_record(model)
    return record is not None and record.random_encoder


def random_encoder_warning(model: nn.Module) -> str:
    record = build_record(model)
    name = record.name if record else "model"
    return (
        f"model '{name}' has random-init encoder weights (no pretrained foundation model): "
        "its reconstructions are not those of the papers' systems"
    )


def submission_array(images: np.ndarray, crop: bool = True) -> np.ndarray:
    """(T, Z, H, W) images -> float32 (sx, sy, sz, t) in MATLAB axis order.

    With ``crop`` the ranking crop ``round(H/3) x round(W/2)`` (ESPIRiT
    ``crop.m`` placement, ``metrics.cmrxrecon_crop``) is applied; the caller
    has already kept the ranking frames and slices.
    """
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4:
        raise DataError(f"submission images must be (T, Z, H, W), got shape {arr.shape}")
    if crop:
        arr = cmrxrecon_crop(arr, ranking_crop_size(*arr.shape[-2:]))
    # (T, Z, H=kx, W=ky) -> MATLAB (sx, sy, sz, t); run4Ranking.m stores single(abs(img))
    return np.ascontiguousarray(arr.transpose(2, 3, 1, 0))


def write_submission(
    path: str | os.PathLike,
    images: np.ndarray,
    crop: bool = True,
    attrs: dict[str, str] | None = None,
) -> Path:
    """Write a CMRxRecon submission file: ``img4ranking`` single (sx, sy, sz, t).

    ``images``: (T, Z, H, W) magnitude, the ranking frames/slices (``crop``)
    or the whole volume (``crop=False``). ``attrs`` become root attributes
    (MATLAB ignores them). Atomic.
    """
    path = Path(path)
    data = submission_array(images, crop=crop)
    with atomic_path(path) as tmp:
        write_mat73(tmp, {SUBMISSION_KEY: data})
        if attrs:
            with h5py.File(tmp, "r+") as f:  # keeps the MATLAB user block
                f.attrs.update({k: str(v) for k, v in attrs.items()})
    return path


def write_fastmri_recon(
    path: str | os.PathLike,
    images: np.ndarray,
    info: VolumeInfo,
    attrs: dict[str, str] | None = None,
) -> Path:
    """Write ``reconstruction`` (slices, h, w) float32, already cropped, plus
    the source's ``acquisition``/``patient_id`` and ``attrs``. Atomic."""
    path = Path(path)
    with open_h5(info.path) as f:
        copied = {k: f.attrs[k] for k in ("acquisition", "patient_id") if k in f.attrs}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(FASTMRI_KEY, data=np.asarray(images, dtype=np.float32))
        f.attrs.update(copied)
        f.attrs.update({k: str(v) for k, v in (attrs or {}).items()})
    return path


def write_preview(
    path: str | os.PathLike,
    tiles: Sequence[tuple[str, np.ndarray]],
    title: str = "",
    ncols: int | None = None,
) -> Path:
    """A PNG grid of 2-D magnitude images (label, (h, w)), one grey scale
    for all (0 to the 99.5th percentile). Uses the Agg canvas, no pyplot."""
    from matplotlib.figure import Figure

    path = Path(path)
    tiles = list(tiles)
    if len(tiles) > MAX_PREVIEW_TILES:  # evenly spaced subset
        keep = np.linspace(0, len(tiles) - 1, MAX_PREVIEW_TILES).round().astype(int)
        tiles = [tiles[i] for i in keep]
    n = len(tiles)
    ncols = min(ncols or math.ceil(math.sqrt(n)), n)
    nrows = math.ceil(n / ncols)
    h, w = tiles[0][1].shape
    vmax = float(np.percentile(np.concatenate([t[1].ravel() for t in tiles]), 99.5)) or 1.0
    scale = 2.2 / max(h, w)
    width = max(ncols * w * scale + 0.2, 3.5)  # room for the title
    fig = Figure(figsize=(width, nrows * h * scale + 0.7), dpi=100, layout="compressed")
    for i, (label, img) in enumerate(tiles):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=7)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")  # the temporary name has no .png suffix
    return path
