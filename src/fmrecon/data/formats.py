"""The table of k-space file formats and the functions that use it.

Each :class:`Format` row names a reader module's functions: ``inspect(path)``
describes a file as a :class:`~fmrecon.data.types.VolumeInfo`,
``read_kspace(f, info, frame, slice)`` reads one multi-coil slice (C, H, W)
complex64 and ``read_target(f, info, slice)`` its stored reference image
(h, w) float32, or None when the format or file stores none. ``f`` is the
handle ``open(path)`` returns (an ``h5py.File`` for the HDF5-based formats).
Formats whose undersampled files carry their own sampling pattern (raw
scanner data: the lines acquired) give ``read_mask(f, info, frame, slice)``,
the bool (W,) lines of one item. Adding a format means adding a reader
module and a row to :data:`FORMATS`; formats sharing a suffix are told
apart by content, in table order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmrecon.data import cmrxrecon, fastmri, ismrmrd_raw
from fmrecon.data.h5io import open_h5
from fmrecon.data.matv5 import open_mat
from fmrecon.data.types import NotKspaceFile, VolumeInfo
from fmrecon.errors import DataError


@dataclass(frozen=True)
class Format:
    name: str  # VolumeInfo.format
    suffixes: tuple[str, ...]  # lower-case file suffixes, the first one named in errors
    what: str  # what a folder must hold, for the error when it holds none
    inspect: Callable[[Path], VolumeInfo]
    read_kspace: Callable[[Any, VolumeInfo, int, int], np.ndarray]
    read_target: Callable[[Any, VolumeInfo, int], np.ndarray | None]
    open: Callable[[Path], Any] = open_h5
    # the acquired lines (W,) of an item of an undersampled file, when the file holds them
    read_mask: Callable[[Any, VolumeInfo, int, int], np.ndarray] | None = None


FORMATS: tuple[Format, ...] = (
    Format(
        "cmrxrecon",
        (".mat",),
        ".mat with kspace_full/kspace_subXX (2025: kspace/kus)",
        cmrxrecon.inspect,
        cmrxrecon.read_kspace,
        cmrxrecon.read_target,
        open=open_mat,  # 2025 files may be MATLAB v5/v7 too
    ),
    Format(
        "fastmri",
        (".h5", ".hdf5"),
        "fastMRI .h5 with kspace",
        fastmri.inspect,
        fastmri.read_kspace,
        fastmri.read_target,
    ),
    Format(
        "ismrmrd",
        (".h5", ".hdf5"),
        "ISMRMRD raw data .h5 with dataset/xml and dataset/data",
        ismrmrd_raw.inspect,
        ismrmrd_raw.read_kspace,
        ismrmrd_raw.read_target,
        open=ismrmrd_raw.RawFile,
        read_mask=ismrmrd_raw.read_mask,
    ),
)

_BY_NAME = {f.name: f for f in FORMATS}
SUFFIXES = tuple(s for f in FORMATS for s in f.suffixes)


def reader(info: VolumeInfo) -> Format:
    """The format row of a described file."""
    return _BY_NAME[info.format]


def inspect_file(path: str | os.PathLike) -> VolumeInfo:
    """Recognise a k-space file by its suffix and describe it. Formats that
    share a suffix are tried in table order; the first that finds k-space wins.

    Raises :class:`NotKspaceFile` (every candidate format's reason, in one
    line) for readable files without k-space and :class:`DataError` for
    missing, broken or malformed files.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    candidates = [f for f in FORMATS if suffix in f.suffixes]
    if not candidates:
        expected = " or ".join(dict.fromkeys(f.suffixes[0] for f in FORMATS))
        raise DataError(f"{path}: unsupported file type '{suffix}' (expected {expected})")
    failed: list[str] = []
    for fmt in candidates:
        try:
            return fmt.inspect(path)
        except NotKspaceFile as err:
            text = str(err)
            failed.append(text[len(f"{path}: ") :] if text.startswith(f"{path}: ") else text)
    raise NotKspaceFile(f"{path}: " + "; ".join(failed))


def discover(root: str | os.PathLike) -> tuple[list[VolumeInfo], list[Path]]:
    """All k-space files under ``root`` (searched recursively, sorted), and
    the files skipped because they hold no k-space (masks, other keys).
    A broken data file raises :class:`DataError` naming it."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such file or directory")
    candidates = (
        [root]
        if root.is_file()
        else sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    )
    infos: list[VolumeInfo] = []
    skipped: list[Path] = []
    for path in candidates:
        try:
            infos.append(inspect_file(path))
        except NotKspaceFile:
            if root.is_file():
                raise
            skipped.append(path)
    if not infos:
        kinds = " or ".join(f.what for f in FORMATS)
        raise DataError(
            f"{root}: no readable k-space files ({kinds}; {len(skipped)} other files skipped)"
        )
    return infos, skipped
