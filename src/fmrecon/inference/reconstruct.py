"""Reconstruct k-space files with a model and write the results.

Outputs (stable; users script against them), chosen per file with
``formats`` (``--format``; default: ``mat`` for CMRxRecon input, ``h5`` for
fastMRI and ISMRMRD raw input), named after the input (``cine_sax.mat`` -> ``cine_sax.mat``,
``cine_sax.nii.gz``, ``cine_sax_dicom/``, ``cine_sax.png``):

- ``mat`` (CMRxRecon input): a challenge submission with the one variable
  ``img4ranking``, ``single``, MATLAB dims (sx, sy, sz, t), in MATLAB's
  default v7 (MAT v5) format as the official ``run4Ranking.m`` saves it, so
  ``scipy.io.loadmat`` (the official Python scorer) and MATLAB's ``load`` both
  read (sx, sy, sz, t); a variable over v7's 2 GB limit is written as v7.3
  (HDF5) and the report line says so. By default after the official ranking
  reduction (central 2 slices, first 3 frames / all weightings for mapping,
  centre crop ``round(sx/3) x round(sy/2)``), with ``full_volume`` the whole
  volume. Provenance: ``<name>.mat.json`` and the MAT header text. The path
  mirrors the input below its ``MultiCoil`` folder (the submission layout,
  ``Submission/MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat``); a
  fully sampled input undersampled here goes to ``AccFactorRR`` instead of
  ``FullSample``. CMRxRecon 2025 input (``Submission/Readme.md``): the path from
  the task folder on, ``TaskR1/MultiCoil/{Modality}/ValidationSet/UnderSample_TaskR1/
  {Center}/{Vendor}/{Patient}/{name}_kus_{Pattern}{R}.mat``, and ``img4ranking`` as
  ``run4Ranking_2025.m`` saves it (its slices, frames and crop, MATLAB's dims with
  trailing singletons dropped: (sx, sy, sz) for BlackBlood/T1w/T2w). Other input
  (fastMRI, raw data): the same variable and layout holding every slice and
  frame, cropped to reconSpace as ``h5``.
- ``h5``: ``reconstruction`` (slices, h, w) float32
  centre-cropped to the ISMRMRD header's reconSpace matrix (fastMRI's
  ``save_reconstructions`` layout), attrs ``acquisition`` and ``patient_id``
  copied, provenance in root attributes ``fmrecon_*``. ISMRMRD raw data
  input: the same, of every slice and frame, (frames, slices, h, w) when the
  scan has several frames (cardiac phases, contrasts, repetitions); CMRxRecon
  input: every slice and frame, (frames, slices, kx, ky) for cine.
- ``nifti``: ``.nii.gz`` float32 (x, y, slices[, frames]) of every slice
  and frame (fastMRI, raw data: cropped as ``h5``), the affine of
  :mod:`fmrecon.inference.geometry` (voxel size from the ISMRMRD header, else
  1 mm, stated in ``descrip``), provenance as JSON in a header extension.
- ``dicom``: a folder ``<name>_dicom/`` of MR Image Storage files, one per
  slice and frame, same images and geometry (:mod:`fmrecon.inference.dicom`).
- ``png``: a preview grid of every image reconstructed, the full field of view
  (fastMRI and raw data: the reconSpace crop of ``h5``); ``preview_crop``
  (``--png-crop``) shows a CMRxRecon file's ranking crop instead.

A model with random encoder weights adds ``fmrecon_warning``. Every file is
written atomically; a CMRxRecon file with ``h5``/``nifti``/``dicom`` is
reconstructed whole, its submission still holding the ranking subset.

Internal order of a reconstructed volume: (T, Z, H, W) magnitude float32,
H = readout (CMRxRecon kx), W = phase encode (ky), as ``fmrecon.metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from fmrecon.data.cmrxrecon import undersampled_mask_path
from fmrecon.data.fastmri import recon_size as fastmri_recon_size
from fmrecon.data.ismrmrd_raw import recon_size as raw_recon_size
from fmrecon.data.slices import SliceDataset
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError, DataError
from fmrecon.inference.dicom import Series, new_uid, write_dicom_series
from fmrecon.inference.engine import Engine, sequential_batches
from fmrecon.inference.geometry import Geometry, volume_acquisition, volume_geometry
from fmrecon.inference.plan import Job, Written, plan_jobs, ranking_subset
from fmrecon.inference.writers import (
    FASTMRI_KEY,
    FORMATS,
    SUBMISSION_KEY,
    mat_version,
    model_attrs,
    submission_array_2025,
    write_fastmri_recon,
    write_img4ranking,
    write_nifti,
    write_preview,
    write_submission,
)
from fmrecon.metrics import (
    center_crop,
    cmrxrecon_crop,
    ranking_crop_size,
)
from fmrecon.physics.masks import MaskFunc
from fmrecon.utils import ProgressBar

Progress = Callable[[int], None] | None


# ----------------------------------------------------------------------------- reconstruction


def reconstruct_volume(
    model: nn.Module | Engine,
    info: VolumeInfo,
    mask_func: MaskFunc | None = None,
    frames: Sequence[int] | None = None,
    slices: Sequence[int] | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "32",
    progress: Progress = None,
) -> np.ndarray:
    """Reconstruct the (frame, slice) images of one file: (T', Z', H, W) float32.

    ``frames``/``slices``: indices to reconstruct, in the output's order
    (default all). Masks: an undersampled CMRxRecon file (``kspace_subXX``)
    uses its ``*_mask.mat``, undersampled raw data the lines it acquired; a
    fully sampled file is masked with ``mask_func``, seeded per file as
    evaluation does (fastMRI's ``tuple(map(ord, name))``).
    ``progress(n)`` is called after each batch of ``n`` images. ``model`` may
    be an :class:`~fmrecon.inference.engine.Engine` (then ``device`` and
    ``precision`` are the engine's).
    """
    frames = list(range(info.n_frames)) if frames is None else [int(t) for t in frames]
    slices = list(range(info.n_slices)) if slices is None else [int(z) for z in slices]
    if info.fully_sampled and mask_func is None:
        raise ConfigError(
            f"{info.path}: fully sampled k-space needs a mask to undersample it "
            "(--mask KIND --acceleration R)"
        )
    mask_file = undersampled_mask_path(info.path)
    if info.format == "cmrxrecon" and not info.fully_sampled and not mask_file.exists():
        raise DataError(f"{info.path}: undersampled file without its mask file {mask_file.name}")
    engine = model if isinstance(model, Engine) else Engine(model, device, precision)
    h, w = info.shape
    out = np.zeros((len(frames), len(slices), h, w), dtype=np.float32)
    pairs = [(t, z) for t in frames for z in slices]
    batches = sequential_batches(len(pairs), batch_size)
    if out.size == 0:
        return out
    ds = SliceDataset(
        [info],
        mask_func=mask_func if info.fully_sampled else None,
        mask_seed="file",  # fastMRI's per-file seed, as `fmrecon evaluate`
        items=lambda v: pairs,
    )
    t_pos = {t: i for i, t in enumerate(frames)}
    z_pos = {z: i for i, z in enumerate(slices)}
    try:
        for _, batch, images in engine.stream(ds, batches, source=str(info.path)):
            for b, (t, z) in enumerate(zip(batch.frame, batch.slice, strict=True)):
                out[t_pos[t], z_pos[z]] = images[b]
            if progress is not None:
                progress(len(batch.frame))
    finally:
        ds.close()
    if not np.all(np.isfinite(out)):
        raise DataError(f"{info.path}: the model produced non-finite values (NaN/Inf)")
    return out


# ----------------------------------------------------------------------------- writing


@dataclass
class _Run:
    """What the outputs of one run share: the model's attributes, one DICOM
    study per subject, series numbers, the report function."""

    attrs: dict[str, str]
    say: Callable[[str], None]
    study_uids: dict[str, str] = field(default_factory=dict)
    n_series: int = 0


def reconstruct_files(
    model: nn.Module,
    inputs: Sequence[str | os.PathLike] | None = None,
    out_dir: str | os.PathLike = ".",
    *,
    jobs: Sequence[Job] | None = None,
    mask_func: MaskFunc | None = None,
    full_volume: bool = False,
    formats: Sequence[str] | None = None,
    png: bool = False,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "32",
    show_progress: bool = True,
    report: Callable[[str], None] | None = None,
    compile: dict | None = None,
) -> list[Written]:
    """Reconstruct every k-space file under ``inputs`` (or the planned
    ``jobs``) and write its outputs under ``out_dir`` in ``formats`` (see the
    module docstring; ``png`` adds a preview). ``report(line)`` is called
    once per file written. ``compile``: torch.compile options of the model
    (:func:`fmrecon.utils.compile_options`), None for eager."""
    if jobs is None:
        jobs, _ = plan_jobs(inputs or [], out_dir, mask_func, full_volume, formats, png)
    elif png:
        jobs = [replace(j, formats=_add_png(j.formats)) for j in jobs]
    attrs = model_attrs(model)
    engine = Engine(model.eval(), device, precision, attrs["fmrecon_model"], compile=compile)
    bar = ProgressBar(sum(j.n_images for j in jobs), show_progress, report=report or _silent)
    run = _Run(attrs, bar.say)
    written: list[Written] = []
    try:
        for n, job in enumerate(jobs):
            bar.file(f"{job.info.subject}/{job.info.path.name}", n + 1, len(jobs))
            images = reconstruct_volume(
                engine,
                job.info,
                job.mask_func,
                frames=job.frames,
                slices=job.slices,
                batch_size=batch_size,
                progress=bar.update,
            )
            written.extend(_write_job(job, images, run))
    finally:
        bar.close()
    return written


def _silent(line: str) -> None:
    pass


def _add_png(formats: Sequence[str]) -> tuple[str, ...]:
    return tuple(f for f in FORMATS if f in formats or f == "png")


def _write_job(job: Job, images: np.ndarray, run: _Run) -> list[Written]:
    """Write every format of ``job`` from its images (T', Z', H, W), the
    preview last: the full field of view (fastMRI and raw data cropped to
    reconSpace as ``h5``) of every image reconstructed, or with the job's
    ``preview_crop`` the CMRxRecon ranking crop (the region the challenge scores)."""
    attrs = {**run.attrs, "fmrecon_source": str(job.info.path), "fmrecon_mask": job.mask_label}
    written: list[Written] = []
    for fmt in job.formats:
        if fmt == "png":
            continue
        entry = _WRITERS[fmt](job, images, attrs, run)
        run.say(f"wrote {entry.path}: {entry.what} [{job.mask_label}]")
        written.append(entry)
    if "png" in job.formats:
        shown = _image_volume(job, images)
        region = "full field of view"
        if job.preview_crop and job.info.format == "cmrxrecon":
            shown = cmrxrecon_crop(shown, ranking_crop_size(*shown.shape[-2:]))
            region = "ranking crop"
        path = job.output("png")
        h, w = shown.shape[-2:]
        title = f"{job.info.path.name} ({region}, {h} x {w})\n{attrs['fmrecon_model']}, "
        title += job.mask_label + (" (random-init encoder)" if "fmrecon_warning" in attrs else "")
        tiles, ncols = _tiles(job, shown)
        write_preview(path, tiles, title, ncols)
        run.say(f"wrote {path}: preview, {region} {h} x {w}")
        written.append(Written(path, job.info.path, "preview", "png"))
    return written


def _tiles(job: Job, images: np.ndarray) -> tuple[list[tuple[str, np.ndarray]], int | None]:
    """Preview tiles of ``images`` (the job's frames x slices) and the grid width
    (None: square)."""
    if job.info.format == "fastmri":
        return [(f"slice {z}", images[0, j]) for j, z in enumerate(job.slices)], None
    tiles = [
        (f"t{t} z{z}", images[i, j])
        for i, t in enumerate(job.frames)
        for j, z in enumerate(job.slices)
    ]
    return tiles, len(job.slices) if len(job.slices) <= 8 else None


def _pick(job: Job, images: np.ndarray, frames: Sequence[int], slices: Sequence[int]):
    """The (frames, slices) images out of the reconstructed ones."""
    ti = [job.frames.index(t) for t in frames]
    zi = [job.slices.index(z) for z in slices]
    return images[ti][:, zi]


def _image_volume(job: Job, images: np.ndarray) -> np.ndarray:
    """The images of the image formats: fastMRI and raw data cropped to
    reconSpace as ``h5``."""
    if job.info.format == "fastmri":
        return center_crop(images, fastmri_recon_size(job.info))
    if job.info.format == "ismrmrd":
        return center_crop(images, raw_recon_size(job.info))
    return images


def _write_mat(job: Job, images, attrs, run: _Run) -> Written:
    path = job.output("mat")
    ranking = job.content == "ranking"
    frames, slices = ranking_subset(job.info) if ranking else (job.frames, job.slices)
    # CMRxRecon: the submission (ranking subset or, --full-volume, every image);
    # other input: every slice and frame, cropped to reconSpace as h5 and nifti
    picked = _pick(job, images, frames, slices)
    if job.info.format != "cmrxrecon":
        picked = _image_volume(job, picked)
    attrs = {**attrs, "fmrecon_content": job.content}
    out = cmrxrecon_crop(picked, ranking_crop_size(*picked.shape[-2:])) if ranking else picked
    if job.info.center is not None:  # CMRxRecon 2025: run4Ranking_2025.m's dims
        data = submission_array_2025(picked, crop=ranking)
        write_img4ranking(path, data, attrs)
        names = ("sx", "sy", "sz", "t")[: data.ndim]
        what = f"{SUBMISSION_KEY} single ({', '.join(names)}) = {tuple(data.shape)}"
    else:
        write_submission(path, picked, crop=ranking, attrs=attrs)
        dims = (*out.shape[-2:], out.shape[1], out.shape[0])
        what = f"{SUBMISSION_KEY} single (sx, sy, sz, t) = {dims}"
    if mat_version(out.nbytes) == "5":
        what += ", MATLAB v7 (MAT v5) format"
    else:
        what += (
            f", MATLAB v7.3 (HDF5): {out.nbytes / 2**30:.2f} GiB is over the v7 format's 2 GB "
            "limit; h5py (the official Python scorer's fallback) reads its axes reversed"
        )
    return Written(path, job.info.path, what, "mat")


def _write_h5(job: Job, images, attrs, run: _Run) -> Written:
    # fastMRI's convention: crop to the reconSpace matrix, (slices, h, w);
    # several frames (CMRxRecon cine, raw data): (frames, slices, h, w)
    path = job.output("h5")
    out = _image_volume(job, images)
    stored = out[0] if out.shape[0] == 1 else out
    content = "full-volume" if job.info.format == "cmrxrecon" else job.content
    write_fastmri_recon(path, stored, job.info, {**attrs, "fmrecon_content": content})
    dims = "(slices, h, w)" if stored.ndim == 3 else "(frames, slices, h, w)"
    what = f"{FASTMRI_KEY} {dims} = {tuple(stored.shape)}"
    return Written(path, job.info.path, what, "h5")


def _voxels(geometry: Geometry) -> str:
    dr, dc, dz = geometry.spacing
    text = f"{dr:.4g} x {dc:.4g} x {dz:.4g} mm"
    return text if geometry.known else f"{text} (ASSUMED: no field of view in the input)"


def _write_nifti(job: Job, images, attrs, run: _Run) -> Written:
    path = job.output("nifti")
    vol = _image_volume(job, images)
    geometry = volume_geometry(job.info)
    content = "fastmri" if job.info.format == "fastmri" else "full-volume"
    attrs = {**attrs, "fmrecon_content": content}
    write_nifti(path, vol, geometry, job.slices, attrs)
    dims = (*vol.shape[-2:], vol.shape[1]) + ((vol.shape[0],) if vol.shape[0] > 1 else ())
    what = f"NIfTI float32 (x, y, z{', t' if len(dims) == 4 else ''}) = {dims}, "
    what += f"voxels {_voxels(geometry)}"
    return Written(path, job.info.path, what, "nifti")


def _write_dicom(job: Job, images, attrs, run: _Run) -> Written:
    path = job.output("dicom")
    vol = _image_volume(job, images)
    geometry = volume_geometry(job.info)
    info = job.info
    if info.subject not in run.study_uids:
        run.study_uids[info.subject] = new_uid()
    run.n_series += 1
    name = info.path.name.removesuffix(info.path.suffix)
    acquisition = volume_acquisition(info)
    series = Series(
        patient_id=info.subject,
        description=f"fmrecon {attrs['fmrecon_model']} {name}",
        frames=job.frames,
        slices=job.slices,
        temporal=acquisition.temporal,
        study_uid=run.study_uids[info.subject],
        series_number=run.n_series,
        acquisition=acquisition,
    )
    files = write_dicom_series(path, vol, geometry, series, attrs)
    what = (
        f"DICOM MR series of {len(files)} images ({len(job.slices)} slices x "
        f"{len(job.frames)} frames) uint16, voxels {_voxels(geometry)}"
    )
    return Written(path, job.info.path, what, "dicom")


_WRITERS = {"mat": _write_mat, "h5": _write_h5, "nifti": _write_nifti, "dicom": _write_dicom}


def summary_line(written: Sequence[Written], jobs: Sequence[Job], seconds: float) -> str:
    n_img = sum(j.n_images for j in jobs)
    n_png = sum(w.format == "png" for w in written)
    png = f" and {_plural(n_png, 'preview')}" if n_png else ""
    return (
        f"reconstructed {_plural(n_img, 'image')} of {_plural(len(jobs), 'file')} in "
        f"{seconds:.1f} s; wrote {_plural(len(written) - n_png, 'output')}{png}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
