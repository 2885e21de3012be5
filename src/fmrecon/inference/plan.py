"""What ``fmrecon reconstruct`` writes for each input, decided before any
reconstruction: the :class:`Job` of a file (its frames and slices, mask,
output formats and paths; :func:`plan_jobs`). Bad input raises a one-line
ConfigError/DataError here, before a model runs. Layouts:
:mod:`fmrecon.inference.reconstruct`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fmrecon.data.cmrxrecon import undersampled_mask_path
from fmrecon.data.fastmri import read_fastmri_mask
from fmrecon.data.formats import discover
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError, DataError
from fmrecon.inference.dicom import check_series_folder
from fmrecon.inference.writers import (
    DEFAULT_FORMATS,
    FORMATS,
    SUFFIX,
    parse_formats,
)
from fmrecon.metrics import (
    ranking_indices,
    ranking_indices_2025,
)
from fmrecon.physics.masks import MaskFunc

# ----------------------------------------------------------------------------- CMRxRecon out


def ranking_subset(info: VolumeInfo) -> tuple[list[int], list[int]]:
    """(frames, slices) the CMRxRecon ranking keeps (``metrics.ranking_indices``;
    CMRxRecon 2025 files: ``run4Ranking_2025.m``'s, decided on the file name as the
    official code does, ``metrics.ranking_indices_2025``)."""
    if info.center is not None:
        slices, frames = ranking_indices_2025(info.n_slices, info.n_frames, info.path.name)
    else:
        slices, frames = ranking_indices(info.n_slices, info.n_frames, info.modality)
    return frames, slices


# ----------------------------------------------------------------------------- formats

_WHOLE = ("h5", "nifti", "dicom")  # formats holding every slice and frame


def _job_formats(info: VolumeInfo, formats: Sequence[str] | None, png: bool) -> tuple[str, ...]:
    chosen = list(formats or DEFAULT_FORMATS[info.format])
    if png and "png" not in chosen:
        chosen.append("png")
    return tuple(f for f in FORMATS if f in chosen)


# ----------------------------------------------------------------------------- files


@dataclass
class Job:
    """One input file and what is written for it."""

    info: VolumeInfo
    out_path: Path  # the input's name mirrored under the output folder
    mask_func: MaskFunc | None  # None: own *_mask.mat (kspace_subXX) / raw data's lines
    mask_label: str
    frames: list[int]  # reconstructed
    slices: list[int]
    content: str  # of mat/h5: "ranking", "full-volume" (CMRxRecon), "fastmri" or "raw"
    formats: tuple[str, ...] = ()  # default: DEFAULT_FORMATS of the input type
    preview_crop: bool = False  # png of CMRxRecon input: the ranking crop, not the full FOV

    def __post_init__(self) -> None:
        self.formats = tuple(self.formats) or DEFAULT_FORMATS[self.info.format]

    @property
    def n_images(self) -> int:
        return len(self.frames) * len(self.slices)

    def output(self, fmt: str) -> Path:
        """Where format ``fmt`` is written: the input's name with its suffix."""
        stem = self.out_path.name.removesuffix(self.out_path.suffix)
        return self.out_path.with_name(stem + SUFFIX[fmt])

    @property
    def outputs(self) -> dict[str, Path]:
        return {fmt: self.output(fmt) for fmt in self.formats}


@dataclass
class Written:
    """A file (a folder for DICOM) written by :func:`reconstruct_files`."""

    path: Path
    source: Path
    what: str  # one-line description of the content
    format: str = "mat"  # a name in FORMATS


def mask_label(mask_func: MaskFunc) -> str:
    cf = getattr(mask_func, "center_fraction", None)
    return f"{mask_func.kind} R={mask_func.acceleration:g}" + (f" cf={cf:g}" if cf else "")


def output_path(
    info: VolumeInfo, out_dir: Path, input_root: Path, acceleration: float | None = None
) -> Path:
    """Where the output of ``info`` goes under ``out_dir``.

    CMRxRecon: the input path from its (last) ``MultiCoil`` folder on, the
    challenge's submission layout (CMRxRecon 2025 validation/test files from
    their task folder on: ``TaskR1/MultiCoil/{Modality}/ValidationSet/
    UnderSample_TaskR1/{Center}/{Vendor}/{Patient}/{name}_kus_{P}{R}.mat``,
    ``Submission/Readme.md``); without one, the path relative to the
    input folder given (the file name for a file given directly). A fully
    sampled input undersampled here at ``acceleration`` R goes to
    ``AccFactorRR`` in place of ``FullSample`` (where the challenge keeps
    data of that acceleration). fastMRI: the file name (fastMRI's flat layout).
    ISMRMRD raw data: the path relative to the input folder given.
    """
    path = info.path
    if info.format == "fastmri":
        return out_dir / path.name
    parts = list(path.parts)
    if "MultiCoil" in parts:
        idx = len(parts) - 1 - parts[::-1].index("MultiCoil")
        if info.task is not None and idx > 0:
            idx -= 1  # the 2025 submission layout starts at the task folder
        rel = parts[idx:]
    else:
        try:
            rel = list(path.relative_to(input_root).parts)
        except ValueError:
            rel = [path.name]
    if acceleration is not None and "FullSample" in rel[:-1]:
        r = f"{int(acceleration):02d}" if float(acceleration).is_integer() else f"{acceleration:g}"
        rel[rel.index("FullSample")] = f"AccFactor{r}"
    return out_dir.joinpath(*rel)


def plan_jobs(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    mask_func: MaskFunc | None = None,
    full_volume: bool = False,
    formats: Sequence[str] | None = None,
    png: bool = False,
    preview_crop: bool = False,
) -> tuple[list[Job], list[Path]]:
    """Find the k-space files under ``inputs`` and decide, before any
    reconstruction, what is written for each (``formats``: names in
    :data:`FORMATS`, default per input type; ``png`` adds a preview, of the
    full field of view or, with ``preview_crop``, a CMRxRecon file's ranking crop); bad
    input raises a one-line ConfigError/DataError. Returns the jobs and the
    skipped (mask/other) files."""
    out_dir = Path(out_dir)
    formats = parse_formats(formats)
    jobs: list[Job] = []
    skipped: list[Path] = []
    seen: dict[Path, Path] = {}  # resolved input -> first mention
    for item in inputs:
        item = Path(item)
        infos, skip = discover(item)
        skipped.extend(skip)
        root = item if item.is_dir() else item.parent
        for info in infos:
            key = info.path.resolve()
            if key in seen:
                continue
            seen[key] = info.path
            fmts = _job_formats(info, formats, png)
            job = _plan_one(info, out_dir, root, mask_func, full_volume, fmts)
            job.preview_crop = preview_crop
            jobs.append(job)
    _check_outputs(jobs, set(seen))
    return jobs, skipped


def _check_outputs(jobs: Sequence[Job], inputs: set[Path]) -> None:
    """No output may overwrite an input, another output or a foreign folder."""
    outputs: dict[Path, Path] = {}
    for job in jobs:
        for fmt, path in job.outputs.items():
            target = path.resolve()
            if target in inputs:
                raise ConfigError(
                    f"{job.info.path}: the output would overwrite an input; choose --out"
                )
            if target in outputs:
                raise ConfigError(
                    f"{outputs[target]} and {job.info.path} would both be written to {path}"
                )
            outputs[target] = job.info.path
            if fmt == "dicom":
                check_series_folder(path)


def _plan_one(info, out_dir, root, mask_func, full_volume, formats) -> Job:
    if info.format == "cmrxrecon":
        return _plan_cmrxrecon(info, out_dir, root, mask_func, full_volume, formats)
    if info.format == "ismrmrd":
        return _plan_raw(info, out_dir, root, mask_func, formats)
    # fastMRI: test files carry their own mask; others are undersampled with mask_func
    stored = read_fastmri_mask(info)
    if stored is not None:
        func, label = stored, f"file mask R={stored.acceleration:.2f}"
    elif mask_func is None:
        raise ConfigError(
            f"{info.path}: fully sampled k-space without a 'mask' dataset needs a mask to "
            "simulate undersampling: pass --mask KIND --acceleration R [--center-fraction F]"
        )
    else:
        func, label = mask_func, mask_label(mask_func)
    slices = list(range(info.n_slices))
    out = output_path(info, out_dir, root)
    return Job(info, out, func, label, [0], slices, "fastmri", formats)


def _plan_cmrxrecon(info, out_dir, root, mask_func, full_volume, formats) -> Job:
    if not info.fully_sampled:
        mask_file = undersampled_mask_path(info.path)
        if not mask_file.exists():
            raise DataError(
                f"{info.path}: undersampled file without its mask file {mask_file.name}"
            )
        func, label, acc = None, f"{mask_file.name} R={info.acceleration}", None
    elif mask_func is None:
        raise ConfigError(
            f"{info.path}: fully sampled k-space (kspace_full) needs a mask to simulate "
            "undersampling: pass --mask KIND --acceleration R"
        )
    else:
        func, label, acc = mask_func, mask_label(mask_func), mask_func.acceleration
    ranking = "mat" in formats and not full_volume
    if ranking and not any(f in _WHOLE for f in formats):
        frames, slices = ranking_subset(info)  # reconstruct only what the ranking keeps
    else:
        frames, slices = list(range(info.n_frames)), list(range(info.n_slices))
    content = "ranking" if ranking else "full-volume"
    out = output_path(info, out_dir, root, acc)
    return Job(info, out, func, label, frames, slices, content, formats)


def _plan_raw(info, out_dir, root, mask_func, formats) -> Job:
    """ISMRMRD raw data: an undersampled file uses the lines it acquired, a
    fully sampled one is undersampled with ``mask_func``; every frame and
    slice is reconstructed."""
    if not info.fully_sampled:
        func, label = None, f"acquired lines R={info.acceleration:.2f}"
    elif mask_func is None:
        raise ConfigError(
            f"{info.path}: fully sampled raw data needs a mask to simulate undersampling: "
            "pass --mask KIND --acceleration R [--center-fraction F]"
        )
    else:
        func, label = mask_func, mask_label(mask_func)
    frames, slices = list(range(info.n_frames)), list(range(info.n_slices))
    out = output_path(info, out_dir, root)
    return Job(info, out, func, label, frames, slices, "raw", formats)
