"""What a k-space file holds, independent of its format.

A :class:`VolumeInfo` describes one file: where its k-space is, how many
frames (time frames or mapping weightings), slices and coils it has, its
matrix (H = readout, W = phase encode), the subject and modality it belongs
to. The readers (:mod:`fmrecon.data.formats` lists them) build it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmrecon.errors import DataError


@dataclass(frozen=True)
class VolumeInfo:
    path: Path
    format: str  # a name in fmrecon.data.formats.FORMATS: "cmrxrecon", "fastmri", "ismrmrd"
    key: str  # k-space dataset key: kspace_full, kspace_sub04, kspace, dataset/data, ...
    n_frames: int  # cine time frames, mapping weightings, raw data phases/contrasts/...; fastMRI 1
    n_slices: int
    n_coils: int
    shape: tuple[int, int]  # (H, W): readout, phase encode
    subject: str
    modality: str  # cine_sax, T1map, ..., fastMRI acquisition (AXT1), ISMRMRD protocolName
    # set for already undersampled files: kspace_subXX's R; raw data: lines encoded / acquired
    acceleration: float | None = None
    target_key: str | None = None  # fastMRI reconstruction_rss when present
    max_value: float | None = None  # fastMRI attrs["max"]
    # encoded (fastMRI) / acquired (raw data, partial Fourier) phase-encode range [start, end)
    acq_limits: tuple[int, int] | None = None

    @property
    def fully_sampled(self) -> bool:
        return self.acceleration is None

    @property
    def n_images(self) -> int:
        return self.n_frames * self.n_slices


class NotKspaceFile(DataError):
    """A readable file that holds no k-space (a mask file, some other .mat):
    skipped when a folder is scanned, an error when named directly."""
