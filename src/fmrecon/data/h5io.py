"""Low-level HDF5 / MATLAB v7.3 input and output shared by the readers and
the simulator.

MATLAB v7.3 ``.mat`` files are HDF5 files with a 512-byte user block that
holds the MATLAB header. MATLAB is column-major, so h5py sees every array
with its axes reversed, and complex arrays are stored as a compound dtype
with the fields ``real`` and ``imag`` (CMRxRecon stores k-space this way).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from fmrecon.errors import DataError, one_line

_MATLAB_CLASS = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int8): "int8",
    np.dtype(np.int16): "int16",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.int32): "int32",
    np.dtype(np.uint32): "uint32",
    np.dtype(np.int64): "int64",
    np.dtype(np.uint64): "uint64",
}


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 or MATLAB v7.3 file for reading, with a one-line
    :class:`DataError` for a missing, truncated or non-HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        with open(path, "rb") as fh:
            head = fh.read(128)
        if head.startswith(b"MATLAB 5.0"):
            raise DataError(
                f"{path}: MATLAB v5 .mat file; fmrecon reads v7.3 (HDF5) files as "
                "CMRxRecon ships them (re-save with `save(..., '-v7.3')`)"
            ) from None
        reason = (
            "truncated or corrupt HDF5 file" if _is_hdf5_signature(path) else "not an HDF5 file"
        )
        raise DataError(f"{path}: {reason} ({one_line(err)})") from None


def _is_hdf5_signature(path: Path) -> bool:
    sig = b"\x89HDF\r\n\x1a\n"
    with open(path, "rb") as fh:
        for offset in (0, 512, 1024, 2048, 4096):
            fh.seek(offset)
            if fh.read(8) == sig:
                return True
    return False


def get_dataset(f: h5py.File, key: str, ndim: int | tuple[int, ...] | None = None) -> h5py.Dataset:
    """``f[key]`` as a dataset, with one-line errors for a missing key or a
    wrong number of dimensions."""
    if key not in f:
        keys = ", ".join(sorted(f.keys())) or "none"
        raise DataError(f"{f.filename}: missing key '{key}' (keys: {keys})")
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError(f"{f.filename}: '{key}' is a group, not an array")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if ds.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise DataError(
                f"{f.filename}: '{key}' has {ds.ndim} dimensions {tuple(ds.shape)}, expected {want}"
            )
    return ds


def read_complex(ds: h5py.Dataset, index=()) -> np.ndarray:
    """Read ``ds[index]`` as complex64, whether the file stores a native
    complex type or MATLAB's compound ``real``/``imag``. Only the indexed part
    is read from disk."""
    try:
        raw = ds[index]
    except OSError as err:
        raise DataError(f"{ds.file.filename}: cannot read '{ds.name}' ({one_line(err)})") from None
    names = raw.dtype.names
    if names is not None:
        if "real" not in names or "imag" not in names:
            raise DataError(
                f"{ds.file.filename}: '{ds.name}' has compound fields {names}, expected real/imag"
            )
        out = np.empty(raw.shape, dtype=np.complex64)
        out.real = raw["real"]
        out.imag = raw["imag"]
        return out
    if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == np.bool_):
        raise DataError(f"{ds.file.filename}: '{ds.name}' has non-numeric dtype {raw.dtype}")
    return np.asarray(raw).astype(np.complex64, copy=False)


def read_real(ds: h5py.Dataset, index=()) -> np.ndarray:
    """Read ``ds[index]`` as a real array (masks, target images)."""
    try:
        raw = ds[index]
    except OSError as err:
        raise DataError(f"{ds.file.filename}: cannot read '{ds.name}' ({one_line(err)})") from None
    if raw.dtype.names is not None:
        raise DataError(f"{ds.file.filename}: '{ds.name}' is complex, expected a real array")
    return np.asarray(raw)


def check_finite(arr: np.ndarray, where: str) -> np.ndarray:
    """Raise a one-line :class:`DataError` if ``arr`` holds NaN or Inf."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataError(f"{where}: {bad} non-finite values (NaN/Inf)")
    return arr


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only
    when the block finishes without error, so a crash or a full disk never
    leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _matlab_header() -> bytes:
    text = (
        "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
        + time.strftime("%a %b %d %H:%M:%S %Y")
        + " HDF5 schema 1.00 ."
    ).encode("ascii")
    header = text.ljust(116, b" ")
    header += b"\x00" * 8  # subsystem data offset
    header += b"\x00\x02"  # version 0x0200
    header += b"IM"  # little-endian marker
    return header


def write_mat73(path: str | os.PathLike, arrays: dict[str, np.ndarray], compression=None) -> None:
    """Write ``arrays`` (given in MATLAB axis order) as a MATLAB v7.3 file,
    atomically. Complex arrays become single- or double-precision compound
    ``real``/``imag`` datasets; booleans become ``logical`` (uint8). With
    ``compression`` (e.g. "gzip"), arrays are chunked per 2-D multi-coil
    slice (the last three HDF5 axes) so readers still read one slice."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as f:
            for key, arr in arrays.items():
                arr = np.asarray(arr)
                stored = np.ascontiguousarray(arr.transpose(tuple(range(arr.ndim))[::-1]))
                opts = {}
                if compression is not None and stored.ndim > 0:
                    chunk = (1,) * max(stored.ndim - 3, 0) + stored.shape[-3:]
                    opts = {"compression": compression, "chunks": chunk}
                if np.iscomplexobj(stored):
                    base = np.float32 if stored.dtype == np.complex64 else np.float64
                    cdt = np.dtype([("real", base), ("imag", base)])
                    data = np.empty(stored.shape, dtype=cdt)
                    data["real"] = stored.real
                    data["imag"] = stored.imag
                    ds = f.create_dataset(key, data=data, **opts)
                    ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[np.dtype(base)])
                elif stored.dtype == np.bool_:
                    ds = f.create_dataset(key, data=stored.astype(np.uint8), **opts)
                    ds.attrs["MATLAB_class"] = np.bytes_("logical")
                    ds.attrs["MATLAB_int_decode"] = np.int32(1)
                else:
                    if stored.dtype not in _MATLAB_CLASS:
                        stored = stored.astype(np.float64)
                    ds = f.create_dataset(key, data=stored, **opts)
                    ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[stored.dtype])
        with open(tmp, "r+b") as fh:
            fh.write(_matlab_header())
