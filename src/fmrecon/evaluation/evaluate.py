"""Evaluate reconstruction models on a folder of files, per file and per
sampling setting, and write the result tables.

Several models are evaluated in one pass over the data: every batch (slices
of one file, never mixed across files) is read once and given to every model;
the zero-filled reconstruction is computed once per batch and shared by the
zero-filled row and the figures' input column.

Outputs (stable; scripts depend on them; columns/keys are only ever added):

- ``metrics.csv``: one row per file, setting and model (``model``, ``file``,
  ``subject``, ``modality``, ``mask``, ``acceleration``, ``center_fraction``,
  ``convention``, ``n_images``, ``ssim``, ``psnr``, ``nmse``, then ``weights``,
  ``checkpoint`` and ``fingerprint_db``: the file's exact scoring fingerprint,
  see :func:`fmrecon.metrics.convention_metrics`; then, for ``sense`` and
  ``cs-wavelet`` only, ``maps``, ``espirit_eig_median``, ``espirit_kept``,
  ``espirit_eig2_median`` and ``espirit_eig2_kept``: the ESPIRiT
  calibration's summary, mean over the file's scored images, see
  :meth:`fmrecon.models.classical.EspiritRecon.calibration_summary`; then, for
  CMRxRecon 2025 data only, ``center``, ``vendor`` (the vendor folder),
  ``field_strength`` (T, empty when the folder name does not say) and
  ``modality_folder`` (Cine, Mapping, ...));
- ``summary.json``: a list of objects with ``model``, ``acceleration``,
  ``center_fraction``, ``ssim``, ``psnr``, ``nmse``, ``n_files``, ``weights``,
  ``checkpoint``, ``fingerprint_db`` (mean PSNR + 10 log10(mean NMSE): what a
  reader computes from a paper's table) and ``fingerprint_db_per_image`` (mean
  of the files' exact fingerprints; the difference is the Jensen gap from NMSE
  varying across files/images), ordered by model, then setting;
- ``summary.md``: the papers' layout, rows = model, columns = acceleration x
  {SSIM, PSNR, NMSE}; with centre fractions (fastMRI masks) one such table per
  centre fraction (the arXiv paper's Tables 2-3 group by centre fraction too);
  then a table of the fingerprints per model and setting; for CMRxRecon 2025
  data, then the means by center, vendor, field strength and modality
  (:func:`fmrecon.evaluation.tables.breakdown_tables`);
- ``report.html`` (``fmrecon evaluate``): all of it on one page,
  :mod:`fmrecon.evaluation.report`.

``weights`` says what the numbers measure (see :func:`weights_label`):
``none`` (zero-filled), ``trained`` (an fmrecon checkpoint of a model without
a foundation-model encoder), ``trained, pretrained encoder``, ``trained,
random-init encoder`` (the frozen encoder was never pretrained: the numbers do
not measure the method) or ``fastMRI state dict`` (fastMRI's published VarNet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fmrecon.data.resize import KspaceResize
from fmrecon.data.slices import Sample, SliceDataset
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError
from fmrecon.evaluation.tables import RANDOM_ENCODER
from fmrecon.inference.engine import Engine, stream_batches
from fmrecon.metrics import (
    CONVENTIONS,
    METRIC_NAMES,
    RANKING_CONVENTIONS,
    convention_crop_size,
    convention_metrics,
    ranking_indices,
    ranking_indices_2025,
    scored_region,
)
from fmrecon.models.base import build_record
from fmrecon.models.zero_filled import ZeroFilled
from fmrecon.physics.masks import MaskFunc
from fmrecon.utils import ProgressBar


@dataclass(frozen=True)
class Setting:
    """One sampling setting of an evaluation."""

    mask_kind: str
    acceleration: float
    center_fraction: float | None
    mask_func: MaskFunc | None
    official_masks: bool = False


@dataclass
class EvalModel:
    """One row label of the tables. ``model`` None = the zero-filled baseline
    (computed once per batch and shared with the figures); otherwise any
    ``model(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W)) -> (B, H, W)``."""

    label: str
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    weights: str = "none"
    checkpoint: str = ""


@dataclass(frozen=True)
class FigurePick:
    """The image the figures show: file ``path`` (a VolumeInfo.path), frame, slice."""

    path: Path
    frame: int
    slice: int


@dataclass
class FigureCapture:
    """One setting's figure images, already cropped as the convention crops:
    target, zero-filled and every model's reconstruction, (h, w) float32."""

    setting: Setting
    fname: str
    frame: int
    slice: int
    target: np.ndarray
    zero_filled: np.ndarray
    recons: dict[str, np.ndarray] = field(default_factory=dict)
    data_range: float | None = None  # fastMRI: the volume max; None = the image max
    per_image_max: bool = False  # CMRxRecon: every image divided by its own max


def weights_label(model) -> str:
    """What a model's weights are, from its build record (see module doc);
    ``trained`` for a callable without one."""
    record = build_record(model)
    if record is not None and record.name == "zero-filled":
        return "none"
    if record is not None and record.source == "fastmri":
        return "fastMRI state dict"
    if record is None or record.encoder_weights is None:
        return "trained"
    return RANDOM_ENCODER if record.random_encoder else "trained, pretrained encoder"


def _ranking_items(info: VolumeInfo, convention: str) -> list[tuple[int, int]]:
    if convention == "cmrxrecon2025":  # run4Ranking_2025.m decides on the file name
        slices, frames = ranking_indices_2025(
            info.n_slices, info.n_frames, info.path.name, info.path
        )
    else:
        slices, frames = ranking_indices(info.n_slices, info.n_frames, info.modality)
    return [(t, z) for t in frames for z in slices]


def _all_items(info: VolumeInfo) -> list[tuple[int, int]]:
    return [(t, z) for t in range(info.n_frames) for z in range(info.n_slices)]


def scored_items(info: VolumeInfo, convention: str) -> list[tuple[int, int]]:
    """(frame, slice) pairs scored in ``convention``: CMRxRecon ranking subset or all."""
    if convention in RANKING_CONVENTIONS:
        return _ranking_items(info, convention)
    return _all_items(info)


def file_batches(index: Sequence[tuple[int, int, int]], batch_size: int) -> list[list[int]]:
    """Dataset positions grouped into batches of at most ``batch_size`` items
    of one file each (``index`` rows are (volume, frame, slice), volume-ordered)."""
    batches: list[list[int]] = []
    for n, (vol, _, _) in enumerate(index):
        if not batches or index[batches[-1][0]][0] != vol or len(batches[-1]) == batch_size:
            batches.append([])
        batches[-1].append(n)
    return batches


def convention_crop(
    target: np.ndarray, images: dict[str, np.ndarray], convention: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Crop a target (h, w) and images (H, W) to the region the metrics score
    (:func:`fmrecon.metrics.convention_crop_size`, clipped to every image).
    Returns float32 copies."""
    sizes = [convention_crop_size(convention, target.shape, x.shape) for x in images.values()]
    size = (min(h for h, _ in sizes), min(w for _, w in sizes))

    def crop(x):
        return np.array(scored_region(x, size, convention), dtype=np.float32)

    return crop(target), {k: crop(v) for k, v in images.items()}


class _FileImages:
    """Scored images of one file, gathered batch by batch: (frame, slice),
    target and each model's reconstruction."""

    def __init__(self, vol_idx: int):
        self.vol_idx = vol_idx
        self.keys: list[tuple[int, int]] = []
        self.targets: list[np.ndarray] = []
        self.recons: dict[str, list[np.ndarray]] = defaultdict(list)
        # per-image diagnostics of models that report them (classical: ESPIRiT)
        self.diagnostics: dict[str, list[dict]] = defaultdict(list)

    def images(self, label: str) -> list[tuple]:
        """(frame, slice, target, recon) tuples of model ``label``."""
        return [
            (t, z, tg, rc)
            for (t, z), tg, rc in zip(self.keys, self.targets, self.recons[label], strict=True)
        ]


@torch.inference_mode()
def evaluate_models(
    models: Sequence[EvalModel],
    volumes: Sequence[VolumeInfo],
    settings: Iterable[Setting],
    convention: str = "fastmri",
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    batch_size: int = 1,
    precision: str = "32",
    progress: Callable[[str], None] | None = None,
    figure: FigurePick | None = None,
    resize: KspaceResize | None = None,
    show_progress: bool = False,
    compile: dict | None = None,
) -> tuple[list[dict], list[FigureCapture]]:
    """Reconstruct every scored slice of every volume under every setting with
    every model and score each file in ``convention``.

    Returns one row per (setting, file, model), in that order, and, when
    ``figure`` is given, one :class:`FigureCapture` per setting (the figure's
    slice is reconstructed even when the convention does not score it).
    ``resize`` (e.g. 224 x 224) transforms each slice's fully sampled k-space
    before masking, exactly as training does (the same SliceDataset code).
    Every model runs through the inference engine (device, precision, checks);
    ``compile`` (:func:`fmrecon.utils.compile_options`) compiles the trained ones.
    ``progress(line)`` gets one line per file and model scored; with
    ``show_progress`` a bar on a terminal's stderr counts the images (every
    setting's), the files done of all, the ETA and names the current file.
    """
    _check_evaluation(models, convention, batch_size)
    settings = list(settings)
    run = _Run(models, volumes, convention, torch.device(device), precision, progress, figure,
               compile)  # fmt: skip
    total = len(settings) * sum(len(run._items(v)) for v in run.volumes)
    run.bar = ProgressBar(total, show_progress, report=progress or _silent)
    run.n_files = len(settings) * len(run.volumes)
    try:
        for n, setting in enumerate(settings):
            run.setting(setting, num_workers, batch_size, resize, n * len(run.volumes))
    finally:
        run.bar.close()
    return run.rows, run.captures


def _silent(line: str) -> None:
    pass


def _check_evaluation(models: Sequence[EvalModel], convention: str, batch_size: int) -> None:
    if convention not in CONVENTIONS:
        raise ConfigError(
            f"unknown convention '{convention}' (choose from {', '.join(CONVENTIONS)})"
        )
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"model labels must be unique, got {labels}")


class _Run:
    """One evaluation: the engines, and the rows and figures gathered so far."""

    def __init__(self, models, volumes, convention, device, precision, progress, figure,
                 compile=None):  # fmt: skip
        self.models, self.volumes, self.convention = list(models), list(volumes), convention
        self.progress, self.figure = progress, figure
        # the zero-filled reconstruction is computed once per batch and shared by
        # the zero-filled row and the figures' input column
        self.zero_filled = Engine(ZeroFilled(), device, "32", "zero-filled")
        self.engines = {
            m.label: Engine(m.model, device, precision, m.label, compile=compile)
            for m in self.models
            if m.model is not None
        }
        self.scored = [set(scored_items(v, convention)) for v in self.volumes]
        self.rows: list[dict] = []
        self.captures: list[FigureCapture] = []
        self.bar = ProgressBar(0, show=False)
        self.n_files = len(self.volumes)  # of every setting, for the bar

    def _items(self, v: VolumeInfo) -> list[tuple[int, int]]:
        """The scored (frame, slice) pairs, plus the figure's image if not scored."""
        pairs = scored_items(v, self.convention)
        fig = self.figure
        if fig is not None and v.path == fig.path and (fig.frame, fig.slice) not in pairs:
            pairs = pairs + [(fig.frame, fig.slice)]
        return pairs

    def setting(self, setting: Setting, num_workers, batch_size, resize, files_before=0) -> None:
        ds = SliceDataset(
            self.volumes,
            mask_func=setting.mask_func,
            mask_seed="file",
            official_masks=setting.official_masks,
            items=self._items,
            resize=resize,
        )
        current: _FileImages | None = None
        try:
            for positions, batch in stream_batches(
                ds, file_batches(ds.index, batch_size), num_workers
            ):
                vol = ds.index[positions[0]][0]
                if current is not None and current.vol_idx != vol:
                    self._finish(current, setting)
                    current = None
                if current is None:
                    current = _FileImages(vol)
                    name = f"x{_num(setting.acceleration)} {_short_name(self.volumes[vol])}"
                    self.bar.file(name, files_before + vol + 1, self.n_files)
                self._batch(current, setting, [ds.index[n][1:] for n in positions], batch)
                self.bar.update(len(positions))
            if current is not None:
                self._finish(current, setting)
        finally:
            ds.close()

    def _batch(self, images: _FileImages, setting: Setting, keys: list, batch: Sample) -> None:
        """Reconstruct one batch (items ``keys`` = (frame, slice) of one file) with
        every model; keep the scored images and the figure's."""
        info = self.volumes[images.vol_idx]
        fig = self.figure
        fig_j = None
        if fig is not None and info.path == fig.path and (fig.frame, fig.slice) in keys:
            fig_j = keys.index((fig.frame, fig.slice))
        where = f"{info.path} (frame {keys[0][0]}, slice {keys[0][1]})"
        zf = None
        if fig_j is not None or len(self.engines) < len(self.models):
            zf = self.zero_filled(batch.kspace, batch.mask, where).cpu().numpy()
        outs, diags = {}, {}
        for m in self.models:
            if m.model is None:
                outs[m.label] = zf
                continue
            outs[m.label] = self.engines[m.label](batch.kspace, batch.mask, where).cpu().numpy()
            d = getattr(m.model, "diagnostics", None)
            if isinstance(d, list) and len(d) == len(keys):
                diags[m.label] = list(d)
        for j, key in enumerate(keys):
            target = batch.target[j].numpy()
            if j == fig_j:
                recons = {label: out[j] for label, out in outs.items()}
                rng = float(batch.max_value[j])
                self.captures.append(
                    _capture(setting, info, key, target, zf[j], recons, rng, self.convention)
                )
            if key in self.scored[images.vol_idx]:
                images.keys.append(key)
                images.targets.append(target)
                for label, out in outs.items():
                    images.recons[label].append(out[j])
                for label, d in diags.items():
                    images.diagnostics[label].append(d[j])

    def _finish(self, images: _FileImages, setting: Setting) -> None:
        self.rows += _score(
            images, self.volumes, self.models, setting, self.convention, self.bar.say
        )


def _capture(setting, info, key, target, zf, recons, max_value, convention) -> FigureCapture:
    """The figure images of one setting, cropped like the metrics crop them."""
    tgt, cropped = convention_crop(target, {"__zf__": zf, **recons}, convention)
    zf_c = cropped.pop("__zf__")
    return FigureCapture(
        setting=setting,
        fname=_short_name(info),
        frame=key[0],
        slice=key[1],
        target=tgt,
        zero_filled=zf_c,
        recons=cropped,
        data_range=max_value if convention in ("fastmri", "full-volume") else None,
        per_image_max=convention in (*RANKING_CONVENTIONS, "full-per-image"),
    )


def _short_name(info: VolumeInfo) -> str:
    """``P001/cine_sax.mat`` for CMRxRecon (names repeat across subjects; 2025:
    ``Center002/UIH_30T_umr880/P004/cine_sax.mat``, numbers repeat across vendors),
    else the name."""
    if info.center is not None:
        return f"{info.subject}/{info.path.name}"
    return (
        f"{info.path.parent.name}/{info.path.name}"
        if info.format == "cmrxrecon"
        else info.path.name
    )


def _score(
    images: _FileImages,
    volumes: Sequence[VolumeInfo],
    models: Sequence[EvalModel],
    setting: Setting,
    convention: str,
    progress: Callable[[str], None] | None,
) -> list[dict]:
    """Rows (one per model) of one finished file."""
    info = volumes[images.vol_idx]
    rows = []
    if not images.keys:  # only the figure's extra slice was read
        return rows
    for m in models:
        metrics = _score_file(info, images.images(m.label), convention)
        rows.append(
            {
                "model": m.label,
                "file": str(info.path),
                "subject": info.subject,
                "modality": info.modality,
                "mask": setting.mask_kind + (" (official files)" if setting.official_masks else ""),
                "acceleration": _num(setting.acceleration),
                "center_fraction": setting.center_fraction,
                "convention": convention,
                "n_images": len(images.keys),
                **metrics,
                "weights": m.weights,
                "checkpoint": m.checkpoint,
                **_diagnostics(images.diagnostics.get(m.label, [])),
                **_site(info),
            }
        )
        if progress is not None:
            progress(
                f"{m.label} R={_num(setting.acceleration)}"
                + (f" cf={setting.center_fraction}" if setting.center_fraction else "")
                + f" {info.path.name}: "
                + " ".join(f"{k}={metrics[k]:.4f}" for k in METRIC_NAMES)
            )
    return rows


def _site(info: VolumeInfo) -> dict:
    """CMRxRecon 2025 rows: the center, vendor folder, field strength (T) and
    modality folder of the file (none for the other data sets)."""
    if info.center is None:
        return {}
    return {
        "center": info.center,
        "vendor": info.vendor,
        "field_strength": info.field_strength,
        "modality_folder": info.modality_folder,
    }


def _diagnostics(per_image: list[dict]) -> dict:
    """A file's mean of the per-image diagnostics (e.g. the classical models'
    ESPIRiT summary: ``maps``, ``espirit_eig_median``, ``espirit_kept``, ...)."""
    keys = dict.fromkeys(k for d in per_image for k in d)
    return {k: float(np.mean([d[k] for d in per_image if k in d])) for k in keys}


def _score_file(info: VolumeInfo, images: list, convention: str) -> dict:
    """Metrics and fingerprint of one file's scored images (frame, slice, target,
    recon); the dataset already kept the convention's frames and slices."""
    target = np.stack([img[2] for img in images])
    recon = np.stack([img[3] for img in images])
    grid = (len({img[0] for img in images}), len({img[1] for img in images}))
    return convention_metrics(target, recon, convention, grid=grid)


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)
