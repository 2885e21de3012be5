"""Evaluate a reconstruction model on a folder of files, per file and per
sampling setting, and write the result tables.

Outputs (stable; scripts depend on them): ``metrics.csv`` (one row per file
and setting), ``summary.json`` (a list of objects with ``model``,
``acceleration``, ``center_fraction``, ``ssim``, ``psnr``, ``nmse``,
``n_files``) and ``summary.md`` (the papers' layout: rows = model, columns =
acceleration x {SSIM, PSNR, NMSE}).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from fmrecon.data.h5io import atomic_path
from fmrecon.data.slices import SliceDataset, collate
from fmrecon.data.volumes import VolumeInfo
from fmrecon.errors import ConfigError
from fmrecon.metrics import (
    METRIC_NAMES,
    cmrxrecon_crop,
    cmrxrecon_volume_metrics,
    fastmri_volume_metrics,
    ranking_crop_size,
    ranking_indices,
)
from fmrecon.physics.masks import MaskFunc

CONVENTIONS = ("fastmri", "cmrxrecon")
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
)


@dataclass(frozen=True)
class Setting:
    """One sampling setting of an evaluation."""

    mask_kind: str
    acceleration: float
    center_fraction: float | None
    mask_func: MaskFunc | None
    official_masks: bool = False


def _ranking_items(info: VolumeInfo) -> list[tuple[int, int]]:
    slices, frames = ranking_indices(info.n_slices, info.n_frames, info.modality)
    return [(t, z) for t in frames for z in slices]


@torch.no_grad()
def evaluate_volumes(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    model_name: str,
    volumes: Sequence[VolumeInfo],
    settings: Iterable[Setting],
    convention: str = "fastmri",
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Reconstruct every slice of every volume under every setting and score
    each file in ``convention``. Returns one row per (file, setting)."""
    if convention not in CONVENTIONS:
        raise ConfigError(
            f"unknown convention '{convention}' (choose from {', '.join(CONVENTIONS)})"
        )
    rows: list[dict] = []
    for setting in settings:
        items = _ranking_items if convention == "cmrxrecon" else "all"
        ds = SliceDataset(
            volumes,
            mask_func=setting.mask_func,
            mask_seed="file",
            official_masks=setting.official_masks,
            items=items,
        )
        loader = DataLoader(ds, batch_size=1, num_workers=num_workers, collate_fn=collate)
        per_file: dict[int, list] = defaultdict(list)
        for n, batch in enumerate(loader):
            vol_idx = ds.index[n][0]
            recon = model(batch.kspace.to(device), batch.mask.to(device)).float().cpu().numpy()
            per_file[vol_idx].append(
                (batch.frame[0], batch.slice[0], batch.target[0].numpy(), recon[0])
            )
        ds.close()
        for vol_idx, images in per_file.items():
            info = volumes[vol_idx]
            metrics = _score_file(info, images, convention)
            rows.append(
                {
                    "model": model_name,
                    "file": str(info.path),
                    "subject": info.subject,
                    "modality": info.modality,
                    "mask": setting.mask_kind
                    + (" (official files)" if setting.official_masks else ""),
                    "acceleration": _num(setting.acceleration),
                    "center_fraction": setting.center_fraction,
                    "convention": convention,
                    "n_images": len(images),
                    **metrics,
                }
            )
            if progress is not None:
                progress(
                    f"{model_name} R={_num(setting.acceleration)}"
                    + (f" cf={setting.center_fraction}" if setting.center_fraction else "")
                    + f" {info.path.name}: "
                    + " ".join(f"{k}={metrics[k]:.4f}" for k in METRIC_NAMES)
                )
    return rows


def _score_file(info: VolumeInfo, images: list, convention: str) -> dict:
    if convention == "fastmri":
        target = np.stack([img[2] for img in images])
        recon = np.stack([img[3] for img in images])
        return fastmri_volume_metrics(target, recon)
    # CMRxRecon ranking: the dataset already kept the ranking frames and
    # slices; crop each image to round(kx/3) x round(ky/2), then score per image
    frames = sorted({img[0] for img in images})
    slices = sorted({img[1] for img in images})
    h, w = images[0][3].shape
    size = ranking_crop_size(h, w)
    target = np.zeros((len(frames), len(slices), *size), dtype=np.float64)
    recon = np.zeros_like(target)
    for t, z, tgt, rec in images:
        target[frames.index(t), slices.index(z)] = cmrxrecon_crop(tgt, size)
        recon[frames.index(t), slices.index(z)] = cmrxrecon_crop(rec, size)
    return cmrxrecon_volume_metrics(target, recon, info.modality, reduce=False)


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Mean over files per (model, acceleration, center_fraction)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["acceleration"], r["center_fraction"])].append(r)
    out = []
    for (model, acc, cf), rs in groups.items():
        entry = {"model": model, "acceleration": acc, "center_fraction": cf}
        for k in METRIC_NAMES:
            entry[k] = float(np.mean([r[k] for r in rs]))
        entry["n_files"] = len(rs)
        out.append(entry)
    return out


def markdown_table(summary: Sequence[dict]) -> str:
    """The papers' layout: one row per model (and centre fraction), one
    column group per acceleration with SSIM, PSNR and NMSE."""
    accs = sorted({s["acceleration"] for s in summary})
    rows: dict[tuple, dict] = {}
    for s in summary:
        rows.setdefault((s["model"], s["center_fraction"]), {})[s["acceleration"]] = s
    with_cf = any(cf is not None for _, cf in rows)
    head = ["Model"] + (["CF"] if with_cf else [])
    for a in accs:
        head += [f"x{a} SSIM", f"x{a} PSNR", f"x{a} NMSE"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, cf), by_acc in rows.items():
        cells = [model] + ([f"{cf:g}" if cf is not None else "-"] if with_cf else [])
        for a in accs:
            s = by_acc.get(a)
            cells += (
                [f"{s['ssim']:.4f}", f"{s['psnr']:.2f}", f"{s['nmse']:.4f}"] if s else ["-"] * 3
            )
        lines.append("| " + " | ".join(cells) + " |")
    n_files = sorted({s["n_files"] for s in summary})
    lines.append("")
    lines.append(f"Files per setting: {', '.join(map(str, n_files))}.")
    return "\n".join(lines) + "\n"


def write_results(out_dir: str | Path, rows: Sequence[dict], header_note: str = "") -> list[dict]:
    """Write metrics.csv, summary.json and summary.md atomically; return the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS})
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
