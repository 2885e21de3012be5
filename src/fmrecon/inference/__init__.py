"""Inference: reconstruct k-space files with a model and write challenge
submissions (CMRxRecon ``img4ranking`` .mat), fastMRI ``reconstruction`` .h5
files and PNG previews (see ``fmrecon.inference.reconstruct``)."""

from __future__ import annotations

from fmrecon.inference.reconstruct import (
    Job,
    StoredMask,
    Written,
    fastmri_recon_size,
    plan_jobs,
    ranking_subset,
    reconstruct_files,
    reconstruct_volume,
    submission_array,
    write_fastmri_recon,
    write_preview,
    write_submission,
)

__all__ = [
    "Job",
    "StoredMask",
    "Written",
    "fastmri_recon_size",
    "plan_jobs",
    "ranking_subset",
    "reconstruct_files",
    "reconstruct_volume",
    "submission_array",
    "write_fastmri_recon",
    "write_preview",
    "write_submission",
]
