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
    # CMRxRecon 2025 (multi-center, multi-vendor; None for every other data set): the
    # center and vendor folders, the field strength parsed from the vendor folder
    # (Siemens_30T_Vida -> 3.0 T; None when the folder name does not say), the modality
    # folder (Cine, Mapping, BlackBlood, ...), the task of a validation/test file
    # (TaskR1, ...) and the sampling pattern of a `_kus_` file (Uniform, ktGaussian, ...)
    center: str | None = None
    vendor: str | None = None
    field_strength: float | None = None
    modality_folder: str | None = None
    task: str | None = None
    pattern: str | None = None

    @property
    def fully_sampled(self) -> bool:
        return self.acceleration is None

    @property
    def n_images(self) -> int:
        return self.n_frames * self.n_slices

    @property
    def patient(self) -> str:
        """The patient folder name (``P004``): unique only within a center and vendor
        in CMRxRecon 2025, so tables and outputs use :attr:`subject`."""
        return self.subject.rsplit("/", 1)[-1]

    @property
    def split_group(self) -> str:
        """What a train/val/test split keeps together: the subject, or for CMRxRecon
        2025 the center and patient number (``Center002/P004``). The official listing
        has one patient number under two vendors of one center; whether that is one
        person scanned on two scanners is not recorded, so both scans go to the same
        part (the conservative choice: no possible person in two parts)."""
        if self.center is None:
            return self.subject
        return f"{self.center}/{self.patient}"


class NotKspaceFile(DataError):
    """A readable file that holds no k-space (a mask file, some other .mat):
    skipped when a folder is scanned, an error when named directly."""
