"""Inference: the engine every caller runs models through
(:mod:`fmrecon.inference.engine`), reconstruction of k-space files
(:mod:`fmrecon.inference.reconstruct`) and what it writes: challenge
submissions (CMRxRecon ``img4ranking`` .mat), fastMRI ``reconstruction`` .h5
files, NIfTI volumes and PNG previews (:mod:`fmrecon.inference.writers`),
DICOM series (:mod:`fmrecon.inference.dicom`), with the voxel geometry of
:mod:`fmrecon.inference.geometry`."""

from __future__ import annotations

from fmrecon.data.fastmri import recon_size as fastmri_recon_size
from fmrecon.inference.dicom import Series, write_dicom_series
from fmrecon.inference.engine import Engine
from fmrecon.inference.geometry import Geometry, volume_geometry
from fmrecon.inference.reconstruct import (
    Job,
    Written,
    plan_jobs,
    ranking_subset,
    reconstruct_files,
    reconstruct_volume,
)
from fmrecon.inference.writers import (
    FORMATS,
    submission_array,
    write_fastmri_recon,
    write_nifti,
    write_preview,
    write_submission,
)
from fmrecon.physics.masks import StoredMask

__all__ = [
    "FORMATS",
    "Engine",
    "Geometry",
    "Job",
    "Series",
    "StoredMask",
    "Written",
    "fastmri_recon_size",
    "plan_jobs",
    "ranking_subset",
    "reconstruct_files",
    "reconstruct_volume",
    "submission_array",
    "volume_geometry",
    "write_dicom_series",
    "write_fastmri_recon",
    "write_nifti",
    "write_preview",
    "write_submission",
]
