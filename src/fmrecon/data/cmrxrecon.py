"""CMRxRecon 2023 / 2024 multi-coil ``.mat`` files (MATLAB v7.3 = HDF5).

Layouts, as the challenges' data descriptions give them (2023:
github.com/CmrxRecon/CMRxRecon, ``CMRxRecon/ChallengeDataFormat/Format_cine.txt``
and ``Format_mapping.txt``; 2024: github.com/CmrxRecon/CMRxRecon2024,
``ChallengeDataFormat/Format_Task1.txt`` and ``Format_Task2.txt``):

- 2023: ``MultiCoil/{Cine,Mapping}/{TrainingSet,ValidationSet}/{FullSample,AccFactor04,
  AccFactor08,AccFactor10}/P001/{cine_lax,cine_sax,T1map,T2map}.mat``; key ``kspace_full``
  or ``kspace_sub04|08|10``; masks ``*_mask.mat`` with key ``mask04|08|10``.
- 2024: ``MultiCoil/{Cine,Aorta,Mapping,Tagging}/TrainingSet/{FullSample,Mask_Task1,
  Mask_Task2}/P001/``; key ``kspace_full``; masks key ``mask`` in
  ``*_mask_Uniform{4,8,10}.mat`` (Task 1) and ``*_mask_kt{Uniform,Gaussian,Radial}R.mat``
  (Task 2).

MATLAB stores k-space as (kx, ky, coil, slice, time) (mapping: time = weighting);
h5py sees the axes reversed, (t, slice, coil, ky, kx), with complex numbers as
a compound of ``real``/``imag``. MATLAB drops trailing singleton axes, so
4-D (no time axis) and 3-D (single slice) files occur too. Inside fmrecon a
slice is (coil, kx, ky): H = kx (readout), W = ky (phase encode).
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from fmrecon.data.h5io import get_dataset, open_h5, read_complex, read_real
from fmrecon.data.types import NotKspaceFile, VolumeInfo
from fmrecon.errors import DataError

_SUB_KEY = re.compile(r"^kspace_sub(\d+)$")
_MASK_KEY = re.compile(r"^mask(\d*)$")


def _kspace_key(f: h5py.File) -> tuple[str, int | None]:
    if "kspace_full" in f:
        return "kspace_full", None
    for key in f:
        m = _SUB_KEY.match(key)
        if m:
            return key, int(m.group(1))
    keys = ", ".join(sorted(f.keys())) or "none"
    what = "a mask file" if any(_MASK_KEY.match(k) for k in f) else "no k-space"
    raise NotKspaceFile(
        f"{f.filename}: {what}: missing key 'kspace_full' or 'kspace_subXX' (keys: {keys})"
    )


def _check_complex(ds: h5py.Dataset) -> None:
    names = ds.dtype.names
    ok = (names is not None and {"real", "imag"} <= set(names)) or np.issubdtype(
        ds.dtype, np.complexfloating
    )
    if not ok:
        raise DataError(
            f"{ds.file.filename}: '{ds.name.lstrip('/')}' has dtype {ds.dtype}, expected complex "
            "(compound real/imag)"
        )


def inspect(path: Path) -> VolumeInfo:
    """Describe a CMRxRecon k-space file (reads only its metadata). A MATLAB
    v5/v7 file (not HDF5) is :class:`NotKspaceFile`: the challenge ships k-space
    as v7.3, and v7 files in a data folder are submissions (``img4ranking``,
    as ``fmrecon reconstruct`` and the official tools write them) or masks."""
    if _is_matlab_v5(path):
        raise NotKspaceFile(
            f"{path}: MATLAB v5/v7 .mat file; fmrecon reads k-space from v7.3 (HDF5) files "
            "as CMRxRecon ships them (re-save with `save(..., '-v7.3')`)"
        )
    with open_h5(path) as f:
        key, acc = _kspace_key(f)
        ds = get_dataset(f, key, ndim=(3, 4, 5))
        _check_complex(ds)
        shape = (1,) * (5 - ds.ndim) + tuple(ds.shape)  # (t, slice, coil, ky, kx)
    nt, nz, nc, ny, nx = shape
    if min(shape) < 1 or nx < 8 or ny < 8:
        raise DataError(f"{path}: '{key}' has shape {shape} (h5py order), too small an image")
    return VolumeInfo(
        path=Path(path),
        format="cmrxrecon",
        key=key,
        n_frames=nt,
        n_slices=nz,
        n_coils=nc,
        shape=(nx, ny),
        subject=Path(path).parent.name,
        modality=Path(path).stem,
        acceleration=acc,
    )


def _is_matlab_v5(path: Path) -> bool:
    """True for a MATLAB v5/v7 file: its 128-byte header starts ``MATLAB 5.0``
    (v7.3 files start with the same text in their 512-byte user block, so the
    HDF5 signature at offset 512 tells them apart)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(520)
    except OSError:
        return False
    return head.startswith(b"MATLAB 5.0") and head[512:520] != b"\x89HDF\r\n\x1a\n"


def read_kspace(f: h5py.File, info: VolumeInfo, frame: int, slc: int) -> np.ndarray:
    """One 2-D multi-coil slice, complex64 (coil, kx, ky); reads only that slice."""
    ds = f[info.key]
    index = {5: (frame, slc), 4: (slc,), 3: ()}[ds.ndim]
    raw = read_complex(ds, index)  # (coil, ky, kx)
    return np.ascontiguousarray(raw.transpose(0, 2, 1))


def read_target(f: h5py.File, info: VolumeInfo, slc: int) -> None:
    """CMRxRecon files store no reference image (the target is the RSS of
    the fully sampled k-space): always None."""
    return None


def read_mask(path: str | Path) -> np.ndarray:
    """A CMRxRecon mask file as bool (kx, ky) or, for k-t masks, (t, kx, ky)."""
    with open_h5(path) as f:
        keys = [k for k in f if _MASK_KEY.match(k)]
        if len(keys) != 1:
            found = ", ".join(sorted(f.keys())) or "none"
            raise DataError(f"{path}: expected one key 'mask' or 'maskXX' (keys: {found})")
        ds = get_dataset(f, keys[0], ndim=(2, 3))
        raw = read_real(ds)
    if not np.all(np.isfinite(raw)) or not np.all((raw == 0) | (raw == 1)):
        raise DataError(f"{path}: mask '{keys[0]}' holds values other than 0 and 1")
    return np.ascontiguousarray(np.swapaxes(raw, -1, -2)).astype(bool)


def undersampled_mask_path(path: str | Path) -> Path:
    """The mask file the challenge ships beside an undersampled file:
    ``AccFactor04/P001/cine_sax.mat`` -> ``AccFactor04/P001/cine_sax_mask.mat``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_mask.mat")


def official_mask_path(full_path: str | Path, acceleration: int, pattern: str = "Uniform") -> Path:
    """The official mask file that goes with a fully sampled file.

    2023: ``FullSample/P001/cine_sax.mat`` -> ``AccFactor04/P001/cine_sax_mask.mat``;
    2024: ``FullSample/P001/cine_sax.mat`` -> ``Mask_Task1/P001/cine_sax_mask_Uniform4.mat``
    (``pattern`` ktUniform/ktGaussian/ktRadial -> ``Mask_Task2``).
    """
    full_path = Path(full_path)
    subject_dir = full_path.parent
    set_dir = subject_dir.parent.parent
    stem = full_path.stem
    r = int(acceleration)
    task = "Mask_Task2" if pattern.startswith("kt") else "Mask_Task1"
    candidates = [set_dir / task / subject_dir.name / f"{stem}_mask_{pattern}{r}.mat"]
    if pattern == "Uniform":  # the 2023 layout has uniform masks only
        candidates.insert(0, set_dir / f"AccFactor{r:02d}" / subject_dir.name / f"{stem}_mask.mat")
    for c in candidates:
        if c.exists():
            return c
    raise DataError(
        f"{full_path}: no official mask for R={r} (looked for {' and '.join(map(str, candidates))})"
    )
