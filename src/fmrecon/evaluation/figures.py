"""Qualitative comparison figures in the layout of the FM-VarNet paper's
Figures 2-3: one row per model, columns target, reconstruction, error map and
zero-filled input.

- Grey images share one scale per figure (0 .. target max); with
  ``per_image_max`` (the CMRxRecon convention) every image is first divided
  by its own max, as the challenge's scoring does.
- The error map ``|recon - target|`` uses one colour scale for all rows,
  0 .. (target max / ``error_scale``), i.e. the error magnified x5 by
  default like the papers' error maps; one colour bar at the right gives
  its values.
- Titles carry SSIM / PSNR of that image (and NMSE on the error map):
  CMRxRecon per-image metrics with ``per_image_max``, else the fastMRI
  metrics with ``data_range`` (the volume max; default the image's max).

The layout is fixed in pixels (:func:`figure_layout`), so tests and scripts
can find each panel. Rendering uses matplotlib's Agg canvas directly (no
pyplot state, no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fmrecon.data.h5io import atomic_path
from fmrecon.errors import DataError
from fmrecon.metrics import cmrxrecon_image_metrics, nmse, psnr, ssim

COLUMNS = ("target", "reconstruction", "error map", "zero-filled input")
ERROR_CMAP = "inferno"
DPI = 100
# fixed margins in pixels
LEFT, TOP, BOTTOM = 34, 58, 8  # row labels; suptitle + column headers; bottom
ROW_TITLE, GAP = 24, 6  # per-panel title band above each row; gap between columns
CBAR_GAP, CBAR_W, RIGHT = 10, 12, 62  # colour bar and its tick labels
MIN_PANEL_W = 130  # room for a "SSIM 0.9123  PSNR 31.24 dB" title


def figure_layout(n_rows: int, image_shape: tuple[int, int], panel_px: int = 220) -> dict:
    """Pixel layout of a figure with ``n_rows`` model rows of (h, w) images.

    Returns ``size`` (width, height), ``panel`` (pw, ph), ``boxes``
    {(row, col): (x0, y0, x1, y1)} and ``colorbar`` (x0, y0, x1, y1), in pixels
    from the top-left corner, end-exclusive. The longer image side is drawn
    ``panel_px`` pixels long (wider if the titles need it).
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    scale = max(panel_px / max(h, w), MIN_PANEL_W / w)
    pw, ph = max(1, round(w * scale)), max(1, round(h * scale))
    boxes = {}
    for r in range(n_rows):
        y0 = TOP + r * (ROW_TITLE + ph) + ROW_TITLE
        for c in range(len(COLUMNS)):
            x0 = LEFT + c * (pw + GAP)
            boxes[(r, c)] = (x0, y0, x0 + pw, y0 + ph)
    cx0 = LEFT + len(COLUMNS) * pw + (len(COLUMNS) - 1) * GAP + CBAR_GAP
    width = cx0 + CBAR_W + RIGHT
    height = TOP + n_rows * (ROW_TITLE + ph) + BOTTOM
    colorbar = (cx0, TOP + ROW_TITLE, cx0 + CBAR_W, height - BOTTOM)
    return {"size": (width, height), "panel": (pw, ph), "boxes": boxes, "colorbar": colorbar}


def image_metrics(
    target: np.ndarray, recon: np.ndarray, data_range: float | None, per_image_max: bool
) -> dict | None:
    """SSIM/PSNR/NMSE of one (h, w) image pair, or None when undefined (tiny image)."""
    try:
        if per_image_max:
            return cmrxrecon_image_metrics(target, recon)
        dr = float(target.max()) if data_range is None else float(data_range)
        return {
            "ssim": ssim(target, recon, dr),
            "psnr": psnr(target, recon, dr),
            "nmse": nmse(target, recon),
        }
    except DataError:
        return None


def _title(m: dict | None) -> str:
    return "" if m is None else f"SSIM {m['ssim']:.4f}  PSNR {m['psnr']:.2f} dB"


def _as_image(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    arr = np.squeeze(arr).astype(np.float64)
    if arr.ndim != 2:
        raise DataError(f"figure image '{name}' must be 2-D (h, w), got shape {np.shape(x)}")
    return arr


def comparison_figure(
    target,
    recons: Mapping[str, np.ndarray],
    zero_filled,
    *,
    title: str = "",
    data_range: float | None = None,
    per_image_max: bool = False,
    error_scale: float = 5.0,
    panel_px: int = 220,
) -> Figure:
    """A figure with one row per entry of ``recons`` ({label: (h, w) image}):
    target, reconstruction, error map, zero-filled input. All images (h, w)
    magnitude (complex input is turned into magnitude), already cropped."""
    tgt = _as_image(target, "target")
    zf = _as_image(zero_filled, "zero-filled")
    rec = {k: _as_image(v, k) for k, v in recons.items()}
    if not rec:
        raise DataError("comparison figure needs at least one reconstruction")
    for name, img in [("zero-filled", zf), *rec.items()]:
        if img.shape != tgt.shape:
            raise DataError(f"figure image '{name}' is {img.shape}, target is {tgt.shape}")
    if error_scale <= 0:
        raise DataError(f"error scale must be > 0, got {error_scale}")

    def shown(x):  # what the grey panels display
        m = float(x.max())
        return x / m if per_image_max and m > 0 else x

    tgt_s, zf_s = shown(tgt), shown(zf)
    vmax = float(tgt_s.max()) or 1.0
    zf_metrics = image_metrics(tgt, zf, data_range, per_image_max)

    layout = figure_layout(len(rec), tgt.shape, panel_px)
    width, height = layout["size"]
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)

    def axes(box):  # pixel box (top-left origin) -> axes in figure fractions
        x0, y0, x1, y1 = box
        ax = fig.add_axes((x0 / width, 1 - y1 / height, (x1 - x0) / width, (y1 - y0) / height))
        ax.set_axis_off()
        return ax

    grey = {"cmap": "gray", "vmin": 0.0, "vmax": vmax, "interpolation": "nearest", "aspect": "auto"}
    err_kw = {"cmap": ERROR_CMAP, "vmin": 0.0, "vmax": vmax / error_scale}
    err_kw.update(interpolation="nearest", aspect="auto")
    err_im = None
    for r, (label, img) in enumerate(rec.items()):
        img_s = shown(img)
        m = image_metrics(tgt, img, data_range, per_image_max)
        panels = [
            (tgt_s, grey, ""),
            (img_s, grey, _title(m)),
            (np.abs(img_s - tgt_s), err_kw, "" if m is None else f"NMSE {m['nmse']:.4f}"),
            (zf_s, grey, _title(zf_metrics)),
        ]
        for c, (data, kw, text) in enumerate(panels):
            ax = axes(layout["boxes"][(r, c)])
            im = ax.imshow(data, **kw)
            if c == 2:
                err_im = im
            ax.set_title(text, fontsize=7.5, pad=3)
        _row_label(fig, layout["boxes"][(r, 0)], label, width, height)
    _decorate(fig, axes, layout, err_im, title, error_scale, per_image_max, width, height)
    return fig


def _row_label(fig: Figure, box, label: str, width: float, height: float) -> None:
    """The row's label, rotated, left of the row; long labels wrap and shrink."""
    x0, y0, x1, y1 = box
    text = label.replace(" (", "\n(")
    longest = max(len(line) for line in text.split("\n"))
    size = float(np.clip((y1 - y0) / (0.85 * longest), 5.0, 9.0))
    fig.text(
        (LEFT / 2) / width,
        1 - (y0 + y1) / 2 / height,
        text,
        rotation=90,
        ha="center",
        va="center",
        fontsize=size,
    )


def _decorate(fig, axes, layout, err_im, title, error_scale, per_image_max, width, height):
    """Column headers above the first row's title band, the title, the error colour bar."""
    for c, name in enumerate(COLUMNS):
        x0, y0, x1, _ = layout["boxes"][(0, c)]
        header = f"{name} (x{error_scale:g})" if c == 2 else name
        fig.text((x0 + x1) / 2 / width, 1 - (TOP - 6) / height, header, ha="center", fontsize=9)
    if title:
        fig.text(0.5, 1 - 6 / height, title, ha="center", va="top", fontsize=9)
    cax = axes(layout["colorbar"])
    cax.set_axis_on()
    bar = fig.colorbar(err_im, cax=cax)
    bar.ax.tick_params(labelsize=6)
    bar.set_label("|recon - target|" + (" (max-normalised)" if per_image_max else ""), fontsize=7)


def write_comparison_figure(path: str | Path, target, recons, zero_filled, **kw) -> Path:
    """:func:`comparison_figure` saved as PNG at ``path`` (atomically); returns the path."""
    fig = comparison_figure(target, recons, zero_filled, **kw)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def figure_name(acceleration, center_fraction) -> str:
    """``x4.png``, ``x8_cf0.04.png``."""
    acc = f"{float(acceleration):g}"
    return f"x{acc}" + (f"_cf{center_fraction:g}" if center_fraction is not None else "") + ".png"


def write_figures(
    out_dir: str | Path,
    captures: Sequence,
    labels: Sequence[str] | Mapping[str, str] | None = None,
    error_scale: float = 5.0,
) -> list[Path]:
    """One PNG per setting in ``out_dir`` from
    :class:`fmrecon.evaluation.evaluate.FigureCapture` objects; rows = the
    models ``labels`` (default all captured), in that order; a mapping
    {label: row name} also renames the rows."""
    paths = []
    for cap in captures:
        s = cap.setting
        names = dict(labels) if isinstance(labels, Mapping) else None
        if names is None:
            names = {k: k for k in (labels if labels is not None else cap.recons)}
        title = f"{s.mask_kind} x{float(s.acceleration):g}"
        if s.center_fraction is not None:
            title += f", centre fraction {s.center_fraction:g}"
        title += f"  |  {cap.fname}, slice {cap.slice}, frame {cap.frame}"
        paths.append(
            write_comparison_figure(
                Path(out_dir) / figure_name(s.acceleration, s.center_fraction),
                cap.target,
                {row: cap.recons[k] for k, row in names.items()},
                cap.zero_filled,
                title=title,
                data_range=cap.data_range,
                per_image_max=cap.per_image_max,
                error_scale=error_scale,
            )
        )
    return paths
