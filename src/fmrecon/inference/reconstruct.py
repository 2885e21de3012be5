"""Reconstruct k-space files with a model and write the results.

Outputs (stable; users script against them):

- CMRxRecon ``.mat`` in -> a challenge submission ``.mat`` (MATLAB v7.3) with
  the one variable ``img4ranking``, ``single``, MATLAB dims (sx, sy, sz, t):
  by default after the official ranking reduction (``run4Ranking.m``: central
  2 slices, first 3 frames / all weightings for mapping, centre crop
  ``round(sx/3) x round(sy/2)``), with ``full_volume`` the whole volume.
  h5py sees the axes reversed, (t, sz, sy, sx). The path mirrors the input
  below its ``MultiCoil`` folder (the submission layout,
  ``Submission/MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat``); a
  fully sampled input undersampled here goes to ``AccFactorRR`` instead of
  ``FullSample``.
- fastMRI ``.h5`` in -> ``.h5`` with ``reconstruction`` (slices, h, w) float32
  centre-cropped to the ISMRMRD header's reconSpace matrix (fastMRI's
  ``save_reconstructions`` layout), attrs ``acquisition`` and ``patient_id``
  copied.
- ISMRMRD raw data ``.h5`` in -> ``.h5`` with ``reconstruction`` as fastMRI's,
  (slices, h, w) cropped to the header's reconSpace matrix, or (frames,
  slices, h, w) for several frames (phases, contrasts, repetitions); every
  frame and slice; the path mirrors the input below the folder given.
- Every output carries root attributes ``fmrecon_*`` (model, checkpoint,
  encoder weights, mask, content, version); a model with random encoder
  weights adds ``fmrecon_warning``. Every file is written atomically.
- Optional PNG preview beside each output: a grid of the images written.

Internal order of a reconstructed volume: (T, Z, H, W) magnitude float32,
H = readout (CMRxRecon kx), W = phase encode (ky), as ``fmrecon.metrics``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fmrecon.data.cmrxrecon import undersampled_mask_path
from fmrecon.data.fastmri import read_fastmri_mask
from fmrecon.data.fastmri import recon_size as fastmri_recon_size
from fmrecon.data.formats import discover
from fmrecon.data.ismrmrd_raw import recon_size as raw_recon_size
from fmrecon.data.slices import SliceDataset
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError, DataError
from fmrecon.inference.engine import Engine, sequential_batches
from fmrecon.inference.writers import (
    FASTMRI_KEY,
    SUBMISSION_KEY,
    model_attrs,
    write_fastmri_recon,
    write_preview,
    write_submission,
)
from fmrecon.metrics import center_crop, cmrxrecon_crop, ranking_crop_size, ranking_indices
from fmrecon.physics.masks import MaskFunc

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
    uses its ``*_mask.mat``; a fully sampled file is masked with ``mask_func``,
    seeded per file as evaluation does (fastMRI's ``tuple(map(ord, name))``).
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


# ----------------------------------------------------------------------------- CMRxRecon out


def ranking_subset(info: VolumeInfo) -> tuple[list[int], list[int]]:
    """(frames, slices) the CMRxRecon ranking keeps (``metrics.ranking_indices``)."""
    slices, frames = ranking_indices(info.n_slices, info.n_frames, info.modality)
    return frames, slices


# ----------------------------------------------------------------------------- files


@dataclass
class Job:
    """One input file and what is written for it."""

    info: VolumeInfo
    out_path: Path
    mask_func: MaskFunc | None  # None: the own *_mask.mat (kspace_subXX) / raw lines acquired
    mask_label: str
    frames: list[int]
    slices: list[int]
    content: str  # "ranking", "full-volume" (CMRxRecon), "fastmri" or "raw" (ISMRMRD)

    @property
    def n_images(self) -> int:
        return len(self.frames) * len(self.slices)


@dataclass
class Written:
    """A file written by :func:`reconstruct_files`."""

    path: Path
    source: Path
    what: str  # one-line description of the content
    extra: list[Path] = field(default_factory=list)  # previews


def mask_label(mask_func: MaskFunc) -> str:
    cf = getattr(mask_func, "center_fraction", None)
    return f"{mask_func.kind} R={mask_func.acceleration:g}" + (f" cf={cf:g}" if cf else "")


def output_path(
    info: VolumeInfo, out_dir: Path, input_root: Path, acceleration: float | None = None
) -> Path:
    """Where the output of ``info`` goes under ``out_dir``.

    CMRxRecon: the input path from its (last) ``MultiCoil`` folder on, the
    challenge's submission layout; without one, the path relative to the
    input folder given (the file name for a file given directly). A fully
    sampled input undersampled here at ``acceleration`` R goes to
    ``AccFactorRR`` in place of ``FullSample`` (where the challenge keeps
    data of that acceleration). fastMRI: the file name (fastMRI's flat layout).
    """
    path = info.path
    if info.format == "fastmri":
        return out_dir / path.name
    parts = list(path.parts)
    if "MultiCoil" in parts:
        idx = len(parts) - 1 - parts[::-1].index("MultiCoil")
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
) -> tuple[list[Job], list[Path]]:
    """Find the k-space files under ``inputs`` and decide, before any
    reconstruction, what is written for each; bad input raises a one-line
    ConfigError/DataError. Returns the jobs and the skipped (mask/other) files."""
    out_dir = Path(out_dir)
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
            jobs.append(_plan_one(info, out_dir, root, mask_func, full_volume))
    outputs: dict[Path, Path] = {}
    inputs_resolved = set(seen)
    for job in jobs:
        target = job.out_path.resolve()
        if target in inputs_resolved:
            raise ConfigError(f"{job.info.path}: the output would overwrite an input; choose --out")
        if target in outputs:
            raise ConfigError(
                f"{outputs[target]} and {job.info.path} would both be written to {job.out_path}"
            )
        outputs[target] = job.info.path
    return jobs, skipped


def _plan_one(info, out_dir, root, mask_func, full_volume) -> Job:
    if info.format == "cmrxrecon":
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
        if full_volume:
            frames, slices = list(range(info.n_frames)), list(range(info.n_slices))
        else:  # reconstruct only what the ranking keeps
            frames, slices = ranking_subset(info)
        content = "full-volume" if full_volume else "ranking"
        out = output_path(info, out_dir, root, acc)
        return Job(info, out, func, label, frames, slices, content)
    if info.format == "ismrmrd":
        return _plan_raw(info, out_dir, root, mask_func)
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
    return Job(
        info,
        output_path(info, out_dir, root),
        func,
        label,
        [0],
        list(range(info.n_slices)),
        "fastmri",
    )


def _plan_raw(info, out_dir, root, mask_func) -> Job:
    """ISMRMRD raw data: an undersampled file uses the lines it acquired, a
    fully sampled one is undersampled with ``mask_func``; every frame and
    slice is reconstructed, written beside the input's path below ``root``."""
    if not info.fully_sampled:
        func, label = None, f"acquired lines R={info.acceleration:.2f}"
    elif mask_func is None:
        raise ConfigError(
            f"{info.path}: fully sampled raw data needs a mask to simulate undersampling: "
            "pass --mask KIND --acceleration R [--center-fraction F]"
        )
    else:
        func, label = mask_func, mask_label(mask_func)
    try:
        rel = info.path.relative_to(root)
    except ValueError:
        rel = Path(info.path.name)
    frames, slices = list(range(info.n_frames)), list(range(info.n_slices))
    return Job(info, out_dir / rel, func, label, frames, slices, "raw")


def _tiles(job: Job, images: np.ndarray) -> tuple[list[tuple[str, np.ndarray]], int]:
    """Preview tiles of the images written, (T', Z', h, w), and the grid width."""
    if job.content == "fastmri":
        return [(f"slice {z}", images[0, i]) for i, z in enumerate(job.slices)], 0
    tiles = [
        (f"t{t} z{z}", images[i, j])
        for i, t in enumerate(job.frames)
        for j, z in enumerate(job.slices)
    ]
    return tiles, len(job.slices) if len(job.slices) <= 8 else 0


def reconstruct_files(
    model: nn.Module,
    inputs: Sequence[str | os.PathLike] | None = None,
    out_dir: str | os.PathLike = ".",
    *,
    jobs: Sequence[Job] | None = None,
    mask_func: MaskFunc | None = None,
    full_volume: bool = False,
    png: bool = False,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "32",
    show_progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> list[Written]:
    """Reconstruct every k-space file under ``inputs`` (or the planned
    ``jobs``) and write its output under ``out_dir`` (see the module
    docstring). ``report(line)`` is called once per file written."""
    if jobs is None:
        jobs, _ = plan_jobs(inputs or [], out_dir, mask_func, full_volume)
    engine = Engine(model.eval(), device, precision, model_attrs(model)["fmrecon_model"])
    attrs = model_attrs(model)
    bar, say = _progress(sum(j.n_images for j in jobs), show_progress, report)
    written: list[Written] = []
    try:
        for job in jobs:
            bar.set_description(f"{job.info.subject}/{job.info.path.name}")
            images = reconstruct_volume(
                engine,
                job.info,
                job.mask_func,
                frames=job.frames,
                slices=job.slices,
                batch_size=batch_size,
                progress=bar.update,
            )
            entry, out = _write_job(job, images, attrs)
            say(f"wrote {job.out_path}: {entry.what} [{job.mask_label}]")
            if png:  # the images as written (cropped), one grey scale per file
                tiles, ncols = _tiles(job, out)
                title = f"{job.info.path.name}\n{attrs['fmrecon_model']}, {job.mask_label}"
                if "fmrecon_warning" in attrs:
                    title += " (random-init encoder)"
                preview = write_preview(job.out_path.with_suffix(".png"), tiles, title, ncols)
                entry.extra.append(preview)
                say(f"wrote {preview}")
            written.append(entry)
    finally:
        bar.close()
    return written


def _progress(total: int, show: bool, report: Callable[[str], None] | None):
    """A tqdm bar over ``total`` images (only on a terminal: in logs the one
    line per file written is the progress) and ``say(line)``, which prints
    ``line`` through ``report`` without breaking the bar."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        unit="img",
        file=sys.stderr,
        disable=not (show and sys.stderr.isatty()),
        dynamic_ncols=True,
    )

    def say(line: str) -> None:
        if report is None:
            return
        if not bar.disable:
            bar.clear()
        report(line)
        if not bar.disable:
            bar.refresh()

    return bar, say


def _write_job(job: Job, images: np.ndarray, attrs: dict) -> tuple[Written, np.ndarray]:
    """Write the output of ``job`` from its images (T', Z', H, W); returns what
    was written and the images as written (cropped)."""
    file_attrs = {
        **attrs,
        "fmrecon_source": str(job.info.path),
        "fmrecon_mask": job.mask_label,
        "fmrecon_content": job.content,
    }
    if job.content == "fastmri":
        # fastMRI's convention: crop to the reconSpace matrix, (slices, h, w)
        out = center_crop(images, fastmri_recon_size(job.info))
        write_fastmri_recon(job.out_path, out[0], job.info, file_attrs)
        what = f"{FASTMRI_KEY} (slices, h, w) = {tuple(out.shape[1:])}"
    elif job.content == "raw":
        # as fastMRI: the reconSpace matrix, (slices, h, w); several frames (frames, slices, h, w)
        out = center_crop(images, raw_recon_size(job.info))
        stored = out[0] if out.shape[0] == 1 else out
        write_fastmri_recon(job.out_path, stored, job.info, file_attrs)
        dims = "(slices, h, w)" if stored.ndim == 3 else "(frames, slices, h, w)"
        what = f"{FASTMRI_KEY} {dims} = {tuple(stored.shape)}"
    else:
        crop = job.content == "ranking"
        write_submission(job.out_path, images, crop=crop, attrs=file_attrs)
        out = cmrxrecon_crop(images, ranking_crop_size(*images.shape[-2:])) if crop else images
        dims = (*out.shape[-2:], out.shape[1], out.shape[0])
        what = f"{SUBMISSION_KEY} single (sx, sy, sz, t) = {dims}"
    return Written(job.out_path, job.info.path, what), out


def summary_line(written: Sequence[Written], jobs: Sequence[Job], seconds: float) -> str:
    n_img = sum(j.n_images for j in jobs)
    n_png = sum(len(w.extra) for w in written)
    png = f" and {_plural(n_png, 'preview')}" if n_png else ""
    return (
        f"reconstructed {_plural(n_img, 'image')} of {_plural(len(jobs), 'file')} in "
        f"{seconds:.1f} s; wrote {_plural(len(written), 'output')}{png}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
