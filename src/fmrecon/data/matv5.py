"""MATLAB v5/v7 ``.mat`` files (MATLAB's default ``save``; not HDF5) through
``scipy.io``: :func:`whos` lists the variables from the headers without their
data, :class:`MatV5File` loads one variable on first use (the v5 format has no
partial read: a variable is read whole, and kept while the file is open).

Arrays come in MATLAB axis order (scipy does not reverse them as h5py sees
v7.3 files), with the trailing singleton axes MATLAB drops already gone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fmrecon.data.h5io import open_h5
from fmrecon.errors import DataError, one_line


def is_matlab_v5(path: str | os.PathLike) -> bool:
    """True for a MATLAB v5/v7 file: its 128-byte header starts ``MATLAB 5.0``
    (v7.3 files start with the same text in their 512-byte user block, so the
    HDF5 signature at offset 512 tells them apart)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(520)
    except OSError:
        return False
    return head.startswith(b"MATLAB 5.0") and head[512:520] != b"\x89HDF\r\n\x1a\n"


def whos(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """{name: (MATLAB shape, MATLAB class)} of a v5/v7 file, from its headers."""
    from scipy.io import whosmat

    try:
        return {name: (tuple(shape), cls) for name, shape, cls in whosmat(str(path))}
    except Exception as err:  # scipy raises ValueError/TypeError/... on broken files
        raise DataError(f"{path}: unreadable MATLAB v5/v7 file ({one_line(err)})") from None


class MatV5File:
    """An open v5/v7 file: ``f.filename``, ``key in f``, ``f.array(key)`` (the
    variable in MATLAB order, loaded once); a context manager like ``h5py.File``."""

    def __init__(self, path: str | os.PathLike):
        self.filename = str(path)
        self.variables = whos(path)
        self._loaded: dict[str, np.ndarray] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.variables

    def keys(self):
        return self.variables.keys()

    def array(self, key: str) -> np.ndarray:
        if key not in self.variables:
            found = ", ".join(sorted(self.variables)) or "none"
            raise DataError(f"{self.filename}: missing key '{key}' (keys: {found})")
        if key not in self._loaded:
            from scipy.io import loadmat

            try:
                data = loadmat(self.filename, variable_names=[key])
            except Exception as err:
                raise DataError(f"{self.filename}: cannot read '{key}' ({one_line(err)})") from None
            self._loaded[key] = np.asarray(data[key])
        return self._loaded[key]

    def close(self) -> None:
        self._loaded.clear()

    def __enter__(self) -> MatV5File:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_mat(path: str | os.PathLike):
    """A v5/v7 file as :class:`MatV5File`; anything else through ``h5py``
    (:func:`fmrecon.data.h5io.open_h5`)."""
    if is_matlab_v5(path):
        return MatV5File(Path(path))
    return open_h5(path)
