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

- 2025 (multi-center, multi-vendor): ``MultiCoil/{Modality}/TrainingSet/FullSample/
  {Center}/{Vendor}/{Patient}/{name}.mat`` (key ``kspace``, older ``kspace_full``) and
  ``{Task}/MultiCoil/{Modality}/ValidationSet/UnderSample_{Task}/.../{name}_kus_{P}{R}.mat``
  (key ``kus``) with ``Mask_{Task}/.../{name}_mask_{P}{R}.mat``; the layout is read by
  :mod:`fmrecon.data.cmrxrecon2025`. These files are also read as MATLAB v5/v7
  (:mod:`fmrecon.data.matv5`, MATLAB order); a 2025 key in another layout, or a 2023 key
  in the 2025 layout, is an error naming the file.

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

from fmrecon.data import cmrxrecon2025 as layout
from fmrecon.data.h5io import get_dataset, open_h5, read_complex, read_real
from fmrecon.data.matv5 import MatV5File, is_matlab_v5, open_mat
from fmrecon.data.types import NotKspaceFile, VolumeInfo
from fmrecon.errors import DataError
from fmrecon.physics.masks import mask_frames, parse_pattern_2025

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
    as ``fmrecon reconstruct`` and the official tools write them) or masks.
    Files in the 2025 layout are read by :func:`inspect_2025` (v7.3 and v5/v7)."""
    loc = layout.locate(path)
    if loc is not None:
        return inspect_2025(Path(path), loc)
    if is_matlab_v5(path):
        _refuse_2025_keys(path, MatV5File(path).keys())
        raise NotKspaceFile(
            f"{path}: MATLAB v5/v7 .mat file; fmrecon reads k-space from v7.3 (HDF5) files "
            "as CMRxRecon ships them (re-save with `save(..., '-v7.3')`)"
        )
    with open_h5(path) as f:
        _refuse_2025_keys(path, f.keys())
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


_2025_FORM = "MultiCoil/{Modality}/{Set}/{FullSample|UnderSample_Task}/{Center}/{Vendor}/{Patient}/"


def _refuse_2025_keys(path, keys) -> None:
    """A file with a 2025 k-space key (``kspace``, ``kus``) and no 2023 one, outside
    the 2025 folder layout: an error (the center, vendor and patient are unknown)."""
    keys = set(keys)
    if "kspace_full" in keys or any(_SUB_KEY.match(k) for k in keys):
        return
    found = [k for k in ("kus", "kspace") if k in keys]
    if found:
        where = (
            "in a 2023/2024 folder layout"
            if layout.in_2023_layout(path)
            else "outside the 2025 folder layout"
        )
        raise DataError(
            f"{path}: CMRxRecon 2025 file (key '{found[0]}') {where}; expected "
            f"{_2025_FORM}{Path(path).name}"
        )


def inspect_2025(path: Path, loc: layout.Location) -> VolumeInfo:
    """Describe a k-space file of the 2025 layout (v7.3 or v5/v7): its key must
    be the one of its folder (``kspace``/``kspace_full`` in FullSample, ``kus`` in
    UnderSample_*), a ``_kus_`` file needs its mask beside it, of a matching shape."""
    if loc.kind == "mask":
        raise NotKspaceFile(f"{path}: a mask file ({loc.sample} folder)")
    with open_mat(path) as f:
        keys = list(f.keys())
        key = _key_2025(path, loc, keys)
        if isinstance(f, MatV5File):
            matlab = f.variables[key][0]
            ndim = len(matlab)
            shape = tuple(matlab[::-1])
        else:
            ds = get_dataset(f, key, ndim=(2, 3, 4, 5))
            _check_complex(ds)
            ndim, shape = ds.ndim, tuple(ds.shape)
    if ndim < 2 or ndim > 5:
        raise DataError(f"{path}: '{key}' has {ndim} dimensions, expected (nx, ny, nc, nz[, nt])")
    if loc.four_d and ndim == 5:
        raise DataError(
            f"{path}: {loc.modality} k-space is (nx, ny, nc, nz) with no time axis, "
            f"got 5 dimensions {shape[::-1]} (MATLAB order)"
        )
    nt, nz, nc, ny, nx = (1,) * (5 - ndim) + shape  # MATLAB drops trailing singletons
    if min(nt, nz, nc) < 1 or nx < 8 or ny < 8:
        raise DataError(f"{path}: '{key}' has shape {shape[::-1]} (MATLAB order), too small")
    info = VolumeInfo(
        path=path,
        format="cmrxrecon",
        key=key,
        n_frames=nt,
        n_slices=nz,
        n_coils=nc,
        shape=(nx, ny),
        subject=loc.subject,
        modality=loc.name,
        acceleration=float(loc.acceleration) if loc.kind == "kus" else None,
        center=loc.center,
        vendor=loc.vendor,
        field_strength=loc.field_strength,
        modality_folder=loc.modality,
        task=loc.task if loc.kind == "kus" else None,
        pattern=loc.pattern,
    )
    if loc.kind == "kus":
        _check_kus_mask(info)
    return info


def _key_2025(path: Path, loc: layout.Location, keys: list[str]) -> str:
    """The k-space key of a 2025 file, with one-line errors for the wrong kind."""
    old = [k for k in keys if _SUB_KEY.match(k)]
    if old:
        raise DataError(
            f"{path}: CMRxRecon 2023 file (key '{old[0]}') in the 2025 folder layout "
            f"({loc.sample}/{loc.center}/{loc.vendor}/{loc.patient}); 2025 keys are "
            "'kspace' (FullSample) and 'kus' (UnderSample_*)"
        )
    found = ", ".join(sorted(keys)) or "none"
    if loc.kind == "full":
        for k in layout.KSPACE_KEYS:
            if k in keys:
                return k
        if layout.KUS_KEY in keys:
            raise DataError(f"{path}: undersampled 'kus' in a FullSample folder")
        if any(_MASK_KEY.match(k) for k in keys) or "img4ranking" in keys:
            raise NotKspaceFile(f"{path}: no k-space (keys: {found})")
        raise DataError(f"{path}: missing key 'kspace' (keys: {found})")
    if loc.pattern is None:
        raise DataError(
            f"{path}: an {loc.sample} file must be named {{name}}_kus_{{Pattern}}{{R}}.mat "
            "(e.g. cine_sax_kus_ktRadial8.mat)"
        )
    if layout.KUS_KEY in keys:
        return layout.KUS_KEY
    if "img4ranking" in keys:
        raise NotKspaceFile(f"{path}: a submission file (img4ranking), no k-space")
    if any(k in keys for k in layout.KSPACE_KEYS):
        raise DataError(f"{path}: fully sampled k-space in an {loc.sample} folder (key 'kus')")
    raise DataError(f"{path}: missing key 'kus' (keys: {found})")


def _check_kus_mask(info: VolumeInfo) -> None:
    """The mask of a ``_kus_`` file exists and fits: (nx, ny), or (nx, ny, nt)."""
    parse_pattern_2025(f"{info.pattern}{int(info.acceleration)}", info.path)
    mask_path = layout.kus_mask_path(info.path)
    if not mask_path.exists():
        raise DataError(
            f"{info.path}: _kus_ file without its mask file "
            f"{Path(*mask_path.parts[-5:]).as_posix()}"
        )
    mask_frames(read_mask(mask_path), info.n_frames, info.shape, mask_path, info.path)


def read_kspace(f: h5py.File, info: VolumeInfo, frame: int, slc: int) -> np.ndarray:
    """One 2-D multi-coil slice, complex64 (coil, kx, ky); reads only that slice
    (of a v5/v7 file, the whole variable once, kept while ``f`` is open)."""
    if isinstance(f, MatV5File):
        nx, ny = info.shape
        # MATLAB order; restore the trailing singleton axes MATLAB drops
        full = f.array(info.key).reshape((nx, ny, info.n_coils, info.n_slices, info.n_frames))
        return np.ascontiguousarray(full[:, :, :, slc, frame].transpose(2, 0, 1), np.complex64)
    ds = f[info.key]
    index = {5: (frame, slc), 4: (slc,), 3: ()}[ds.ndim]
    raw = read_complex(ds, index)  # (coil, ky, kx)
    return np.ascontiguousarray(raw.transpose(0, 2, 1))


def read_target(f: h5py.File, info: VolumeInfo, slc: int) -> None:
    """CMRxRecon files store no reference image (the target is the RSS of
    the fully sampled k-space): always None."""
    return None


def read_mask(path: str | Path) -> np.ndarray:
    """A CMRxRecon mask file as bool (kx, ky) or, for k-t masks, (t, kx, ky). A 2025
    mask may also be a MATLAB v5/v7 file (read in MATLAB order (nx, ny[, nt]))."""
    if layout.locate(path) is not None and is_matlab_v5(path):
        with MatV5File(path) as f:
            keys = [k for k in f.keys() if _MASK_KEY.match(k)]
            if len(keys) != 1:
                found = ", ".join(sorted(f.keys())) or "none"
                raise DataError(f"{path}: expected one key 'mask' (keys: {found})")
            raw = np.asarray(f.array(keys[0]))
        if raw.ndim not in (2, 3):
            raise DataError(f"{path}: mask '{keys[0]}' has {raw.ndim} dimensions, expected 2 or 3")
        raw = raw.transpose(tuple(range(raw.ndim))[::-1])  # h5py's order, as below
        return _mask_values(raw, path, keys[0])
    with open_h5(path) as f:
        keys = [k for k in f if _MASK_KEY.match(k)]
        if len(keys) != 1:
            found = ", ".join(sorted(f.keys())) or "none"
            raise DataError(f"{path}: expected one key 'mask' or 'maskXX' (keys: {found})")
        ds = get_dataset(f, keys[0], ndim=(2, 3))
        raw = read_real(ds)
    return _mask_values(raw, path, keys[0])


def _mask_values(raw: np.ndarray, path, key: str) -> np.ndarray:
    """A mask in h5py order ((t,) ky, kx) as bool ((t,) kx, ky), values checked."""
    if raw.dtype == np.bool_:
        raw = raw.astype(np.uint8)
    if not np.all(np.isfinite(raw)) or not np.all((raw == 0) | (raw == 1)):
        raise DataError(f"{path}: mask '{key}' holds values other than 0 and 1")
    return np.ascontiguousarray(np.swapaxes(raw, -1, -2)).astype(bool)


def undersampled_mask_path(path: str | Path) -> Path:
    """The mask file the challenge ships with an undersampled file:
    ``AccFactor04/P001/cine_sax.mat`` -> ``AccFactor04/P001/cine_sax_mask.mat``;
    2025: ``UnderSample_TaskR1/C/V/P/x_kus_Uniform8.mat`` ->
    ``Mask_TaskR1/C/V/P/x_mask_Uniform8.mat``."""
    path = Path(path)
    loc = layout.locate(path)
    if loc is not None and loc.kind == "kus" and loc.pattern is not None:
        return layout.kus_mask_path(path)
    return path.with_name(f"{path.stem}_mask.mat")


def official_mask_path(full_path: str | Path, acceleration: int, pattern: str = "Uniform") -> Path:
    """The official mask file that goes with a fully sampled file.

    2023: ``FullSample/P001/cine_sax.mat`` -> ``AccFactor04/P001/cine_sax_mask.mat``;
    2024: ``FullSample/P001/cine_sax.mat`` -> ``Mask_Task1/P001/cine_sax_mask_Uniform4.mat``
    (``pattern`` ktUniform/ktGaussian/ktRadial -> ``Mask_Task2``);
    2025: ``FullSample/C/V/P/cine_sax.mat`` -> ``Mask_TaskAll/C/V/P/cine_sax_mask_Uniform8.mat``.
    """
    full_path = Path(full_path)
    loc = layout.locate(full_path)
    if loc is not None and loc.kind == "full":
        c = layout.training_mask_path(full_path, pattern, int(acceleration))
        if c.exists():
            return c
        raise DataError(f"{full_path}: no official mask for {pattern} R={int(acceleration)} ({c})")
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
