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
  see :func:`fmrecon.metrics.convention_metrics`);
- ``summary.json``: a list of objects with ``model``, ``acceleration``,
  ``center_fraction``, ``ssim``, ``psnr``, ``nmse``, ``n_files``, ``weights``,
  ``checkpoint``, ``fingerprint_db`` (mean PSNR + 10 log10(mean NMSE): what a
  reader computes from a paper's table) and ``fingerprint_db_per_image`` (mean
  of the files' exact fingerprints; the difference is the Jensen gap from NMSE
  varying across files/images), ordered by model, then setting;
- ``summary.md``: the papers' layout, rows = model, columns = acceleration x
  {SSIM, PSNR, NMSE}; with centre fractions (fastMRI masks) one such table per
  centre fraction (the arXiv paper's Tables 2-3 group by centre fraction too);
  then a table of the fingerprints per model and setting.

``weights`` says what the numbers measure (see :func:`weights_label`):
``none`` (zero-filled), ``trained`` (an fmrecon checkpoint of a model without
a foundation-model encoder), ``trained, pretrained encoder``, ``trained,
random-init encoder`` (the frozen encoder was never pretrained: the numbers do
not measure the method) or ``fastMRI state dict`` (fastMRI's published VarNet).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from fmrecon.data.h5io import atomic_path
from fmrecon.data.resize import KspaceResize
from fmrecon.data.slices import SliceDataset, collate
from fmrecon.data.volumes import VolumeInfo
from fmrecon.errors import ConfigError
from fmrecon.metrics import (
    CONVENTIONS,
    METRIC_NAMES,
    center_crop,
    cmrxrecon_crop,
    convention_metrics,
    ranking_crop_size,
    ranking_indices,
)
from fmrecon.physics.masks import MaskFunc
from fmrecon.utils import autocast_context

CSV_FIELDS = (
    "model",
    "file",
    "subject",
    "modality",
    "mask",
    "acceleration",
    "center_fraction",
    "convention",
    "n_images",
    "ssim",
    "psnr",
    "nmse",
    # added with checkpoint evaluation; older readers ignore them
    "weights",
    "checkpoint",
    # added with the scoring fingerprint
    "fingerprint_db",
)
RANDOM_ENCODER = "trained, random-init encoder"


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
    """What a model's weights are, from its ``fmrecon_spec`` (see module doc)."""
    spec = getattr(model, "fmrecon_spec", None) or {}
    if spec.get("name") == "zero-filled":
        return "none"
    if spec.get("source") == "fastmri":
        return "fastMRI state dict"
    enc = spec.get("encoder_weights")
    if enc is None:
        return "trained"
    return RANDOM_ENCODER if enc == "random-init" else "trained, pretrained encoder"


def _ranking_items(info: VolumeInfo) -> list[tuple[int, int]]:
    slices, frames = ranking_indices(info.n_slices, info.n_frames, info.modality)
    return [(t, z) for t in frames for z in slices]


def _all_items(info: VolumeInfo) -> list[tuple[int, int]]:
    return [(t, z) for t in range(info.n_frames) for z in range(info.n_slices)]


def scored_items(info: VolumeInfo, convention: str) -> list[tuple[int, int]]:
    """(frame, slice) pairs scored in ``convention``: CMRxRecon ranking subset or all."""
    return _ranking_items(info) if convention == "cmrxrecon" else _all_items(info)


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
    """Crop a target (h, w) and images (H, W) as the metrics do: fastMRI centre
    crop to the target's width (clipped to both sizes), the CMRxRecon
    ranking crop round(kx/3) x round(ky/2), or for the full-* conventions the
    target's whole field of view (images larger than the target cropped to it).
    Returns float32 copies."""
    if convention == "cmrxrecon":
        size = ranking_crop_size(*next(iter(images.values())).shape)

        def crop(x):
            return cmrxrecon_crop(x, size)
    else:
        # fastMRI: (W, W) with W the target's width; full-*: the target's own size
        side = target.shape[-1] if convention == "fastmri" else max(target.shape[-2:])
        h = min([side, target.shape[-2]] + [x.shape[-2] for x in images.values()])
        w = min([side, target.shape[-1]] + [x.shape[-1] for x in images.values()])

        def crop(x):
            return center_crop(x, (h, w))

    return (
        np.array(crop(target), dtype=np.float32),
        {k: np.array(crop(v), dtype=np.float32) for k, v in images.items()},
    )


class _FileImages:
    """Scored images of one file, gathered batch by batch: (frame, slice),
    target and each model's reconstruction."""

    def __init__(self, vol_idx: int):
        self.vol_idx = vol_idx
        self.keys: list[tuple[int, int]] = []
        self.targets: list[np.ndarray] = []
        self.recons: dict[str, list[np.ndarray]] = defaultdict(list)

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
) -> tuple[list[dict], list[FigureCapture]]:
    """Reconstruct every scored slice of every volume under every setting with
    every model and score each file in ``convention``.

    Returns one row per (setting, file, model), in that order, and, when
    ``figure`` is given, one :class:`FigureCapture` per setting (the figure's
    slice is reconstructed even when the convention does not score it).
    ``resize`` (e.g. 224 x 224) transforms each slice's fully sampled k-space
    before masking, exactly as training does (the same SliceDataset code).
    """
    if convention not in CONVENTIONS:
        raise ConfigError(
            f"unknown convention '{convention}' (choose from {', '.join(CONVENTIONS)})"
        )
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"model labels must be unique, got {labels}")
    device = torch.device(device)
    autocast = autocast_context(device, precision)  # validates precision early
    from fmrecon.models.zero_filled import ZeroFilled

    zero_filled = ZeroFilled()
    rows: list[dict] = []
    captures: list[FigureCapture] = []
    for setting in settings:
        # the figure's image is added to its file's items if the convention does not score it
        def items(v: VolumeInfo) -> list[tuple[int, int]]:
            pairs = scored_items(v, convention)
            if figure is not None and v.path == figure.path:
                extra = (figure.frame, figure.slice)
                pairs = pairs + ([extra] if extra not in pairs else [])
            return pairs

        ds = SliceDataset(
            volumes,
            mask_func=setting.mask_func,
            mask_seed="file",
            official_masks=setting.official_masks,
            items=items,
            resize=resize,
        )
        batches = file_batches(ds.index, batch_size)
        loader = DataLoader(ds, batch_sampler=batches, num_workers=num_workers, collate_fn=collate)
        scored = {i: set(scored_items(v, convention)) for i, v in enumerate(volumes)}
        try:
            current: _FileImages | None = None
            for positions, batch in zip(batches, loader, strict=True):
                vol_idx = ds.index[positions[0]][0]
                info = volumes[vol_idx]
                if current is not None and current.vol_idx != vol_idx:
                    rows += _score(current, volumes, models, setting, convention, progress)
                    current = None
                if current is None:
                    current = _FileImages(vol_idx)
                keys = [ds.index[n][1:] for n in positions]  # (frame, slice) per item
                fig_j = (
                    keys.index((figure.frame, figure.slice))
                    if figure is not None
                    and info.path == figure.path
                    and (figure.frame, figure.slice) in keys
                    else None
                )
                kspace, mask = batch.kspace.to(device), batch.mask.to(device)
                zf = None
                if fig_j is not None or any(m.model is None for m in models):
                    zf = zero_filled(kspace, mask).float().cpu().numpy()  # computed once, shared
                outs: dict[str, np.ndarray] = {}
                for m in models:
                    if m.model is None:
                        outs[m.label] = zf
                        continue
                    try:
                        with autocast:
                            out = m.model(kspace, mask)
                    except RuntimeError as err:  # shape problems, out of memory, ...
                        first = str(err).strip().split("\n")[0][:200]
                        raise ConfigError(
                            f"model '{m.label}' failed on {info.path} (frame {keys[0][0]}, "
                            f"slice {keys[0][1]}): {type(err).__name__}: {first}"
                        ) from None
                    if tuple(out.shape) != (len(positions), *kspace.shape[-2:]):
                        raise ConfigError(
                            f"model '{m.label}' returned shape {tuple(out.shape)} for k-space "
                            f"{tuple(kspace.shape)}; expected (B, H, W)"
                        )
                    outs[m.label] = out.float().cpu().numpy()
                for j, key in enumerate(keys):
                    target = batch.target[j].numpy()
                    if j == fig_j:
                        recons = {m.label: outs[m.label][j] for m in models}
                        rng = float(batch.max_value[j])
                        captures.append(
                            _capture(setting, info, key, target, zf[j], recons, rng, convention)
                        )
                    if key in scored[vol_idx]:
                        current.keys.append(key)
                        current.targets.append(target)
                        for m in models:
                            current.recons[m.label].append(outs[m.label][j])
            if current is not None:
                rows += _score(current, volumes, models, setting, convention, progress)
        finally:
            ds.close()
    return rows, captures


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
        per_image_max=convention in ("cmrxrecon", "full-per-image"),
    )


def _short_name(info: VolumeInfo) -> str:
    """``P001/cine_sax.mat`` for CMRxRecon (names repeat across subjects), else the name."""
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


def evaluate_volumes(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    model_name: str,
    volumes: Sequence[VolumeInfo],
    settings: Iterable[Setting],
    convention: str = "fastmri",
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: Callable[[str], None] | None = None,
    batch_size: int = 1,
    precision: str = "32",
    resize: KspaceResize | None = None,
) -> list[dict]:
    """One model: reconstruct every slice of every volume under every setting
    and score each file in ``convention``. Returns one row per (file, setting).
    (See :func:`evaluate_models` for several models in one pass.)"""
    entry = EvalModel(model_name, model, weights_label(model))
    rows, _ = evaluate_models(
        [entry],
        volumes,
        settings,
        convention=convention,
        device=device,
        num_workers=num_workers,
        batch_size=batch_size,
        precision=precision,
        progress=progress,
        resize=resize,
    )
    return rows


def _score_file(info: VolumeInfo, images: list, convention: str) -> dict:
    """Metrics and fingerprint of one file's scored images (frame, slice, target,
    recon); the dataset already kept the convention's frames and slices."""
    target = np.stack([img[2] for img in images])
    recon = np.stack([img[3] for img in images])
    return convention_metrics(target, recon, convention)


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Mean over files per (model, acceleration, center_fraction), ordered by
    model (first appearance), then setting (first appearance)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["acceleration"], r["center_fraction"])].append(r)
    model_order = list(dict.fromkeys(r["model"] for r in rows))
    keys = sorted(groups, key=lambda k: model_order.index(k[0]))  # stable: settings keep order
    out = []
    for model, acc, cf in keys:
        rs = groups[(model, acc, cf)]
        entry = {"model": model, "acceleration": acc, "center_fraction": cf}
        for k in METRIC_NAMES:
            entry[k] = float(np.mean([r[k] for r in rs]))
        entry["n_files"] = len(rs)
        entry["weights"] = rs[0].get("weights", "")
        entry["checkpoint"] = rs[0].get("checkpoint", "")
        entry["fingerprint_db"] = table_fingerprint(entry["psnr"], entry["nmse"])
        fps = [r.get("fingerprint_db") for r in rs]
        mean_fp = float(np.mean(fps)) if all(f is not None for f in fps) else math.nan
        entry["fingerprint_db_per_image"] = mean_fp if math.isfinite(mean_fp) else None
        out.append(entry)
    return out


def table_fingerprint(psnr_db: float, nmse_value: float) -> float | None:
    """``PSNR + 10 log10(NMSE)`` of a table's (mean) PSNR and NMSE; None where
    undefined (NMSE 0, infinite PSNR)."""
    if not (math.isfinite(psnr_db) and math.isfinite(nmse_value)) or nmse_value <= 0.0:
        return None
    return psnr_db + 10.0 * math.log10(nmse_value)


def _table(entries: Sequence[dict], accs: Sequence, with_cf: bool) -> list[str]:
    """Markdown lines: one row per (model[, centre fraction]), column groups per acceleration."""
    rows: dict[tuple, dict] = {}
    for s in entries:
        rows.setdefault((s["model"], s["center_fraction"]), {})[s["acceleration"]] = s
    head = ["Model"] + (["CF"] if with_cf else [])
    for a in accs:
        head += [f"x{a} SSIM", f"x{a} PSNR", f"x{a} NMSE"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, cf), by_acc in rows.items():
        first = next(iter(by_acc.values()))
        name = model + (" (random-init encoder)" if first.get("weights") == RANDOM_ENCODER else "")
        cells = [name] + ([f"{cf:g}" if cf is not None else "-"] if with_cf else [])
        for a in accs:
            s = by_acc.get(a)
            cells += (
                [_fmt(s["ssim"], 4), _fmt(s["psnr"], 2), _fmt(s["nmse"], 4)] if s else ["-"] * 3
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fmt(x, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_table(summary: Sequence[dict]) -> str:
    """The papers' layout: one row per model, one column group per
    acceleration with SSIM, PSNR and NMSE. With centre fractions (fastMRI
    masks) one table per centre fraction, in the order they were given, each
    under a ``**Centre fraction 0.08**`` line."""
    accs = list(dict.fromkeys(sorted(s["acceleration"] for s in summary)))
    fractions = list(dict.fromkeys(s["center_fraction"] for s in summary))
    if fractions == [None]:
        lines = _table(summary, accs, with_cf=False)
    else:
        lines = []
        for cf in fractions:
            if lines:
                lines.append("")
            label = f"{cf:g}" if cf is not None else "- (fixed ACS lines)"
            lines += [f"**Centre fraction {label}**", ""]
            lines += _table([s for s in summary if s["center_fraction"] == cf], accs, False)
    lines += [""] + fingerprint_table(summary)
    n_files = sorted({s["n_files"] for s in summary})
    lines.append("")
    lines.append(f"Files per setting: {', '.join(map(str, n_files))}.")
    return "\n".join(lines) + "\n"


def fingerprint_table(summary: Sequence[dict]) -> list[str]:
    """Markdown lines: the scoring fingerprint of every model and setting, from the
    table (mean PSNR + 10 log10(mean NMSE)) and per image (mean of the exact ones)."""
    with_cf = any(s["center_fraction"] is not None for s in summary)
    head = ["Model", "Setting", "From the table (dB)", "Mean exact (dB)"]
    lines = [
        "**Scoring fingerprint** (PSNR + 10 log10 NMSE = 10 log10(peak^2 / mean(target^2)) "
        "over the scored region, exact per scored image, or per volume where PSNR and NMSE "
        "are per volume; from the table: mean PSNR + 10 log10(mean NMSE), biased upward "
        "when NMSE varies across images; mean exact: the mean of the exact ones)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for s in summary:
        setting = f"x{s['acceleration']}" + (
            f" cf {s['center_fraction']:g}" if with_cf and s["center_fraction"] is not None else ""
        )
        cells = [s["model"], setting]
        cells += [_fmt(s.get("fingerprint_db"), 2), _fmt(s.get("fingerprint_db_per_image"), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_results(out_dir: str | Path, rows: Sequence[dict], header_note: str = "") -> list[dict]:
    """Write metrics.csv, summary.json and summary.md atomically; return the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS})
    with atomic_path(out_dir / "metrics.csv") as tmp:
        tmp.write_text(buf.getvalue())
    for s in summary:
        for k in METRIC_NAMES:
            if not math.isfinite(s[k]):
                s[k] = None  # JSON has no NaN/Infinity (PSNR of a perfect reconstruction)
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text((header_note + "\n\n" if header_note else "") + markdown_table(summary))
    return summary
