"""What ``fmrecon reconstruct`` writes, each file atomically: CMRxRecon
submission ``.mat`` files, fastMRI ``reconstruction`` ``.h5`` files, NIfTI
volumes, PNG previews (DICOM series: :mod:`fmrecon.inference.dicom`), with
the model's provenance (``fmrecon_*``) where each format can hold it (see
:mod:`fmrecon.inference.reconstruct` for the layouts)."""

from __future__ import annotations

import gzip
import json
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
from fmrecon.errors import ConfigError, DataError
from fmrecon.inference.geometry import Geometry, nifti_affine
from fmrecon.metrics import cmrxrecon_crop, ranking_array_2025, ranking_crop_size
from fmrecon.models.base import build_record

SUBMISSION_KEY = "img4ranking"  # CMRxRecon submission variable (run4Ranking.m)
FASTMRI_KEY = "reconstruction"  # fastMRI save_reconstructions dataset
MAX_PREVIEW_TILES = 36
#: MATLAB's limit on one variable of a v7 (MAT v5 format) file; larger ones need -v7.3
MAT_V7_LIMIT_BYTES = 2**31
_MAT5_HEADER_BYTES = 116  # descriptive text at the start of a MAT v5 file
DISPLAY_PERCENTILE = 99.5  # previews, NIfTI cal_max and DICOM windows: 0 to this percentile


# ----------------------------------------------------------------------------- formats

FORMATS = ("mat", "h5", "nifti", "dicom", "png")
#: one line per format: what it writes
FORMAT_HELP = {
    "mat": "<name>.mat: img4ranking single (sx, sy, sz, t), MATLAB v7 (v5 format) as the "
    "official CMRxRecon tools read it (CMRxRecon input: the submission; other input: every "
    "slice and frame)",
    "h5": "<name>.h5: reconstruction (slices, h, w) float32 as fastMRI writes it, reconSpace "
    "crop (several frames, CMRxRecon cine or raw data: (frames, slices, h, w))",
    "nifti": "<name>.nii.gz: float32 (x, y, slices[, frames]), every slice and frame",
    "dicom": "<name>_dicom/: MR Image Storage, one file per slice and frame",
    "png": "<name>.png: a preview grid",
}
SUFFIX = {"mat": ".mat", "h5": ".h5", "nifti": ".nii.gz", "dicom": "_dicom", "png": ".png"}
#: other names users type for a format (file suffixes)
ALIASES = {"nii": "nifti", "nii.gz": "nifti", "dcm": "dicom", "hdf5": "h5"}
DEFAULT_FORMATS = {"cmrxrecon": ("mat",), "fastmri": ("h5",), "ismrmrd": ("h5",)}


def parse_formats(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """``--format`` values (each may list several, comma-separated) in
    :data:`FORMATS` order, or None for the default per input type."""
    if not values:
        return None
    names = [n.strip().lower().lstrip(".") for v in values for n in str(v).split(",") if n.strip()]
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ConfigError(
            f"--format {unknown[0]}: unknown format (choose from {', '.join(FORMATS)})"
        )
    return tuple(f for f in FORMATS if f in names) or None


# ----------------------------------------------------------------------------- provenance


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


def provenance_line(attrs: dict[str, str]) -> str:
    """One line naming the model and checkpoint of ``attrs`` (``model_attrs``)."""
    line = (
        f"fmrecon {attrs.get('fmrecon_version', __version__)} reconstruction by model "
        f"{attrs.get('fmrecon_model', '?')}, checkpoint {attrs.get('fmrecon_checkpoint', 'none')}"
    )
    if attrs.get("fmrecon_encoder_weights", "none") != "none":
        line += f", encoder weights {attrs['fmrecon_encoder_weights']}"
    return line


def provenance_path(path: str | os.PathLike) -> Path:
    """The JSON beside a ``.mat`` output holding its provenance (``x.mat.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_json(path: str | os.PathLike, content: dict) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    return path


def display_max(images: np.ndarray) -> float:
    """Top of the display range: the 99.5th percentile (the max if that is 0)."""
    vmax = float(np.percentile(images, DISPLAY_PERCENTILE)) if images.size else 0.0
    return vmax if vmax > 0 else float(np.max(images, initial=0.0))


# ----------------------------------------------------------------------------- CMRxRecon .mat


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


def mat_version(nbytes: int) -> str:
    """ "5": the MAT v5 format MATLAB's ``save`` writes by default (v7) and
    ``scipy.io.loadmat`` reads; "7.3" (HDF5) when a variable of ``nbytes``
    would pass v7's 2 GB limit."""
    return "7.3" if nbytes + 4096 >= MAT_V7_LIMIT_BYTES else "5"


def write_submission(
    path: str | os.PathLike,
    images: np.ndarray,
    crop: bool = True,
    attrs: dict[str, str] | None = None,
) -> Path:
    """Write a CMRxRecon submission file: ``img4ranking`` single (sx, sy, sz, t).

    ``images``: (T, Z, H, W) magnitude, the ranking frames/slices (``crop``)
    or the whole volume (``crop=False``). Written as the official
    ``run4Ranking.m`` ``save`` does, MATLAB's default v7 (MAT v5) format, so
    MATLAB's ``load`` and the challenge's Python scorer (``scipy.io.loadmat``)
    both read (sx, sy, sz, t); a variable over v7's 2 GB limit is written as
    v7.3 (HDF5; h5py then sees the axes reversed) with ``attrs`` also as root
    attributes. ``attrs`` go to ``<path>.json`` and, shortened, into the MAT
    header text (a v5 file has no attributes). Atomic.
    """
    return write_img4ranking(path, submission_array(images, crop=crop), attrs)


def submission_array_2025(images: np.ndarray, crop: bool = True) -> np.ndarray:
    """CMRxRecon 2025: (T, Z, H, W) images -> ``img4ranking`` as
    ``run4Ranking_2025.m`` saves it (``metrics.ranking_array_2025``: the ranking
    crop, single, MATLAB order (sx, sy, sz, t) with trailing singleton dims
    dropped, e.g. (sx, sy, sz) for the 4-D modalities); ``crop=False``: the whole
    volume in that order, trailing singletons dropped likewise."""
    if crop:
        return ranking_array_2025(images)
    data = submission_array(images, crop=False)
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    return np.ascontiguousarray(data)


def write_img4ranking(
    path: str | os.PathLike, data: np.ndarray, attrs: dict[str, str] | None = None
) -> Path:
    """Write ``img4ranking`` = ``data`` (MATLAB order) as :func:`write_submission`
    describes: MAT v5 (v7.3 over v7's limit), provenance in ``<path>.json``. Atomic."""
    path = Path(path)
    version = mat_version(data.nbytes)
    with atomic_path(path) as tmp:
        if version == "5":
            text = provenance_line(attrs) if attrs else f"fmrecon {__version__}"
            _write_mat5(tmp, {SUBMISSION_KEY: data}, text)
        else:
            write_mat73(tmp, {SUBMISSION_KEY: data})
            if attrs:
                with h5py.File(tmp, "r+") as f:  # keeps the MATLAB user block
                    f.attrs.update({k: str(v) for k, v in attrs.items()})
    if attrs:
        dims = dict(zip(("sx", "sy", "sz", "t"), data.shape, strict=False))
        info = {"variable": SUBMISSION_KEY, "dims": dims, "mat_version": version}
        write_json(provenance_path(path), {**attrs, "fmrecon_file": info})
    return path


def _write_mat5(path: Path, variables: dict[str, np.ndarray], text: str) -> None:
    """A MAT v5 file (``scipy.io.savemat``, no compression) whose 116-byte
    header text (MATLAB's descriptive field) names its provenance."""
    from scipy.io import savemat

    with open(path, "wb") as fh:  # a file object: savemat would append .mat to the name
        savemat(fh, variables, format="5", do_compression=False)
        header = f"MATLAB 5.0 MAT-file, {text}".encode("ascii", "replace")
        header = header[:_MAT5_HEADER_BYTES].ljust(_MAT5_HEADER_BYTES, b" ")
        fh.seek(0)
        fh.write(header)


# ----------------------------------------------------------------------------- fastMRI .h5


def write_fastmri_recon(
    path: str | os.PathLike,
    images: np.ndarray,
    info: VolumeInfo,
    attrs: dict[str, str] | None = None,
) -> Path:
    """Write ``reconstruction`` (slices, h, w) (or (frames, slices, h, w))
    float32, already cropped, plus ``attrs`` and, from fastMRI input, the
    source's ``acquisition``/``patient_id``. Atomic."""
    path = Path(path)
    copied = {}
    if info.format == "fastmri":
        with open_h5(info.path) as f:
            copied = {k: f.attrs[k] for k in ("acquisition", "patient_id") if k in f.attrs}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(FASTMRI_KEY, data=np.asarray(images, dtype=np.float32))
        f.attrs.update(copied)
        f.attrs.update({k: str(v) for k, v in (attrs or {}).items()})
    return path


# ----------------------------------------------------------------------------- NIfTI


def nifti_array(images: np.ndarray) -> np.ndarray:
    """(T, Z, H, W) -> float32 (H, W, Z, T), or (H, W, Z) for one frame."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4:
        raise DataError(f"NIfTI images must be (T, Z, H, W), got shape {arr.shape}")
    arr = arr.transpose(2, 3, 1, 0)
    return np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def write_nifti(
    path: str | os.PathLike,
    images: np.ndarray,
    geometry: Geometry,
    slices: Sequence[int],
    attrs: dict[str, str] | None = None,
) -> Path:
    """Write a ``.nii.gz`` volume (H, W, Z[, T]) float32 of ``images`` (T, Z,
    H, W) holding ``slices`` (contiguous), with the affine of
    :mod:`fmrecon.inference.geometry`, ``cal_max`` = the 99.5th percentile,
    ``descrip`` = model and voxel-size source, and ``attrs`` plus the
    geometry as JSON in a header extension (code 6, comment). Atomic."""
    import nibabel as nib

    path = Path(path)
    data = nifti_array(images)
    h, w = data.shape[:2]
    affine = nifti_affine(geometry, h, w, slices)
    img = nib.Nifti1Image(data, affine)
    # NIfTI-1 xform codes: "scanner" (1) for raw data's own slice positions and
    # orientation, "aligned" (2) where they are our stated convention
    code = "scanner" if geometry.centres is not None else "aligned"
    img.set_sform(affine, code=code)
    img.set_qform(affine, code=code)
    hdr = img.header
    hdr.set_xyzt_units("mm", "unknown")  # the frame interval is not in the input files
    hdr["cal_min"], hdr["cal_max"] = 0.0, display_max(data)
    size = "voxels from header" if geometry.known else "1 mm voxels ASSUMED"
    model = (attrs or {}).get("fmrecon_model", "?")
    hdr["descrip"] = f"fmrecon {model}; {size}".encode("ascii", "replace")[:79]
    meta = {**(attrs or {}), "fmrecon_geometry": geometry.note}
    hdr.extensions.append(nib.nifti1.Nifti1Extension(6, json.dumps(meta).encode()))
    with atomic_path(path) as tmp:  # nibabel picks the format by name: compress here
        with gzip.open(tmp, "wb", compresslevel=1) as fh:
            fh.write(img.to_bytes())
    return path


# ----------------------------------------------------------------------------- PNG


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
    vmax = display_max(np.concatenate([t[1].ravel() for t in tiles])) or 1.0
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
