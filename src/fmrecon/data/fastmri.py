"""fastMRI ``.h5`` files (multi-coil and single-coil).

Keys: ``kspace`` (slices, coils, H, W) complex64 (single-coil: (slices, H, W)),
``reconstruction_rss`` (slices, 320, 320) (single-coil: ``reconstruction_esc``),
``ismrmrd_header`` (XML); attrs ``max``, ``norm``, ``acquisition``,
``patient_id``; test files add ``mask`` (W,). Masks act on the last axis W.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fmrecon.data.h5io import get_dataset, open_h5, read_complex, read_real
from fmrecon.data.ismrmrd_header import IsmrmrdHeader, read_header
from fmrecon.data.types import NotKspaceFile, VolumeInfo
from fmrecon.errors import DataError
from fmrecon.physics.masks import StoredMask


def acq_limits(header: IsmrmrdHeader | None, width: int) -> tuple[int, int] | None:
    """Encoded phase-encode range [start, end) from the ISMRMRD header, as
    fastMRI's data transforms compute it (padding_left = enc_size_y // 2 -
    enc_limits_center; padding_right = padding_left + enc_limits_max + 1);
    None when the header lacks a value or the range does not fit in ``width``."""
    if header is None:
        return None
    enc_y = header.encoded_matrix.y
    center = header.kspace_encoding_step_1.center
    maximum = header.kspace_encoding_step_1.maximum
    if enc_y is None or center is None or maximum is None:
        return None
    start = enc_y // 2 - center
    end = start + maximum + 1
    if not (0 <= start < end <= width):
        return None
    return start, end


def inspect(path: Path) -> VolumeInfo:
    """Describe a fastMRI file (reads only its metadata)."""
    with open_h5(path) as f:
        if "kspace" not in f:
            keys = ", ".join(sorted(f.keys())) or "none"
            raise NotKspaceFile(f"{path}: missing key 'kspace' (keys: {keys})")
        ds = get_dataset(f, "kspace", ndim=(3, 4))
        if not np.issubdtype(ds.dtype, np.complexfloating):
            raise DataError(f"{path}: 'kspace' has dtype {ds.dtype}, expected complex")
        shape = tuple(ds.shape) if ds.ndim == 4 else (ds.shape[0], 1, *ds.shape[1:])
        ns, nc, h, w = shape
        target_key = next((k for k in ("reconstruction_rss", "reconstruction_esc") if k in f), None)
        if target_key is not None:
            tds = get_dataset(f, target_key, ndim=3)
            if tds.shape[0] != ns:
                raise DataError(
                    f"{path}: '{target_key}' has {tds.shape[0]} slices, 'kspace' has {ns}"
                )
        attrs = dict(f.attrs)
        limits = acq_limits(read_header(f), w)
    if min(h, w) < 8 or ns < 1:
        raise DataError(f"{path}: 'kspace' has shape {shape}, too small an image")
    max_value = attrs.get("max")
    return VolumeInfo(
        path=Path(path),
        format="fastmri",
        key="kspace",
        n_frames=1,
        n_slices=ns,
        n_coils=nc,
        shape=(h, w),
        subject=str(attrs.get("patient_id", Path(path).stem)),
        modality=str(attrs.get("acquisition", "unknown")),
        target_key=target_key,
        max_value=float(max_value) if max_value is not None else None,
        acq_limits=limits,
    )


def read_kspace(f: h5py.File, info: VolumeInfo, frame: int, slc: int) -> np.ndarray:
    """One slice, complex64 (coil, H, W); reads only that slice."""
    raw = read_complex(f[info.key], (slc,))
    return raw if raw.ndim == 3 else raw[None]


def read_target(f: h5py.File, info: VolumeInfo, slc: int) -> np.ndarray | None:
    """The stored reference image of a slice (float32) (h, w), or None."""
    if info.target_key is None:
        return None
    return read_real(f[info.target_key], (slc,)).astype(np.float32, copy=False)


def recon_size(info: VolumeInfo) -> tuple[int, int]:
    """The (h, w) fastMRI crops a reconstruction to: the ISMRMRD header's
    reconSpace matrix (x, y), else ``reconstruction_rss``'s size, else (H, W).

    As fastMRI's ``VarNetModule``: when W is narrower than the reconSpace
    width (FLAIR 203 files) the crop is (W, W); never larger than (H, W).
    """
    h, w = info.shape
    size = None
    with open_h5(info.path) as f:
        header = read_header(f)
        if header is not None:
            x, y = header.recon_matrix.x, header.recon_matrix.y
            if x is not None and y is not None and x > 0 and y > 0:
                size = (x, y)
        if size is None and info.target_key is not None and info.target_key in f:
            size = tuple(int(s) for s in f[info.target_key].shape[-2:])
    if size is None:
        return h, w
    if w < size[1]:
        size = (w, w)
    return min(size[0], h), min(size[1], w)


def read_mask(info: VolumeInfo) -> np.ndarray | None:
    """The ``mask`` dataset of a fastMRI test file as bool (W,), or None when
    it has none."""
    with open_h5(info.path) as f:
        if "mask" not in f:
            return None
        raw = read_real(get_dataset(f, "mask", ndim=1))
    w = info.shape[1]
    if raw.shape != (w,):
        raise DataError(f"{info.path}: 'mask' has shape {raw.shape}, expected ({w},) (W lines)")
    if not np.all((raw == 0) | (raw == 1)) or not raw.any():
        raise DataError(f"{info.path}: 'mask' must hold 0/1 values with at least one line")
    return raw.astype(bool)


def read_fastmri_mask(info: VolumeInfo) -> StoredMask | None:
    """The ``mask`` dataset of a fastMRI test file as a mask function, or None."""
    lines = read_mask(info)
    return None if lines is None else StoredMask(lines, source=str(info.path))
