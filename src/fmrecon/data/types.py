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
    format: str  # a name in fmrecon.data.formats.FORMATS: "cmrxrecon", "fastmri"
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
