"""fastMRI ``.h5`` files (multi-coil and single-coil).

Keys: ``kspace`` (slices, coils, H, W) complex64 (single-coil: (slices, H, W)),
``reconstruction_rss`` (slices, 320, 320) (single-coil: ``reconstruction_esc``),
``ismrmrd_header`` (XML); attrs ``max``, ``norm``, ``acquisition``,
``patient_id``; test files add ``mask``. Masks act on the last axis W.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np

from fmrecon.data.h5io import get_dataset, open_h5, read_complex, read_real
from fmrecon.data.volumes import NotKspaceFile, VolumeInfo
from fmrecon.errors import DataError

_NS = {"m": "http://www.ismrm.org/ISMRMRD"}


def _acq_limits(f: h5py.File, width: int) -> tuple[int, int] | None:
    """Encoded phase-encode range [start, end) from the ISMRMRD header, as
    fastMRI's data transforms compute it (padding_left = enc_size_y // 2 -
    enc_limits_center; padding_right = padding_left + enc_limits_max + 1)."""
    if "ismrmrd_header" not in f:
        return None
    try:
        raw = f["ismrmrd_header"][()]
        root = ET.fromstring(raw.decode() if isinstance(raw, bytes) else str(raw))
        enc = root.find("m:encoding", _NS)
        enc_y = int(enc.find("m:encodedSpace/m:matrixSize/m:y", _NS).text)
        lim = enc.find("m:encodingLimits/m:kspace_encoding_step_1", _NS)
        center = int(lim.find("m:center", _NS).text)
        maximum = int(lim.find("m:maximum", _NS).text)
    except (AttributeError, ValueError, TypeError, ET.ParseError):
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
        limits = _acq_limits(f, w)
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
    """The stored reference image of a slice (float32), or None."""
    if info.target_key is None:
        return None
    return read_real(f[info.target_key], (slc,)).astype(np.float32, copy=False)
