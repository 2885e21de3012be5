"""What a k-space file holds, independent of its format.

A :class:`VolumeInfo` describes one file: where its k-space is, how many
frames (time frames or mapping weightings), slices and coils it has, its
matrix (H = readout, W = phase encode), the subject and modality it belongs
to. ``inspect_file`` recognises the format; ``discover`` walks a folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fmrecon.errors import DataError


@dataclass(frozen=True)
class VolumeInfo:
    path: Path
    format: str  # "cmrxrecon" or "fastmri"
    key: str  # k-space dataset key: kspace_full, kspace_sub04, kspace, ...
    n_frames: int  # time frames (cine) or weightings (mapping); 1 for fastMRI
    n_slices: int
    n_coils: int
    shape: tuple[int, int]  # (H, W): readout, phase encode
    subject: str
    modality: str  # cine_sax, T1map, ... or fastMRI acquisition (AXT1, CORPD_FBK)
    acceleration: int | None = None  # set for already undersampled files (kspace_subXX)
    target_key: str | None = None  # fastMRI reconstruction_rss when present
    max_value: float | None = None  # fastMRI attrs["max"]
    acq_limits: tuple[int, int] | None = None  # fastMRI encoded phase-encode range [start, end)

    @property
    def fully_sampled(self) -> bool:
        return self.acceleration is None

    @property
    def n_images(self) -> int:
        return self.n_frames * self.n_slices


class NotKspaceFile(DataError):
    """A readable file that holds no k-space (a mask file, some other .mat):
    skipped when a folder is scanned, an error when named directly."""


def inspect_file(path: str | os.PathLike) -> VolumeInfo:
    """Recognise a CMRxRecon ``.mat`` or fastMRI ``.h5`` file and describe it.

    Raises :class:`NotKspaceFile` for readable files without k-space and
    :class:`DataError` for missing, broken or malformed files.
    """
    from fmrecon.data import cmrxrecon, fastmri

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return cmrxrecon.inspect(path)
    if suffix in (".h5", ".hdf5"):
        return fastmri.inspect(path)
    raise DataError(f"{path}: unsupported file type '{suffix}' (expected .mat or .h5)")


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
        else sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in (".mat", ".h5", ".hdf5")
        )
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
        raise DataError(
            f"{root}: no readable k-space files (.mat with kspace_full/kspace_subXX or "
            f"fastMRI .h5 with kspace; {len(skipped)} other files skipped)"
        )
    return infos, skipped
