"""``report.html``: one self-contained page of an evaluation, to open in any
browser without a network.

What it holds, top down: the run's note (convention, mask, data, models),
the tables of ``summary.md`` (the same lines, :func:`tables.markdown_table`,
rendered as HTML tables), the per-file distributions of SSIM, PSNR and NMSE
per setting (acceleration[, centre fraction]) as box plots with every file's
value drawn over them, and the comparison figures of ``figures/``. Every
image is a PNG inside the page (``data:`` URI); there is no script, no style
sheet and no address outside the page, so it opens the same offline, mailed
or archived.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fmrecon import __version__
from fmrecon.data.h5io import atomic_path
from fmrecon.evaluation.tables import markdown_table
from fmrecon.metrics import METRIC_NAMES

REPORT_NAME = "report.html"
_LABELS = {"ssim": "SSIM", "psnr": "PSNR (dB)", "nmse": "NMSE"}
_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; height: auto; }
.note { white-space: pre-wrap; background: #f6f6f6; padding: 0.6em; font-size: 0.9em; }
"""


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _inline(text: str) -> str:
    """HTML of one markdown line of the tables: ``**bold**`` only, the rest escaped."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def markdown_to_html(markdown: str) -> str:
    """The subset of markdown :func:`tables.markdown_table` writes: pipe tables
    (the first row a header, the second the rule), paragraphs, ``**bold**``."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if not rows:
            return
        head, body = rows[0], rows[2:] if len(rows) > 1 else []
        out.append("<table>")
        out.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>")
        for r in body:
            out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
        out.append("</table>")
        rows.clear()

    for line in markdown.splitlines():
        s = line.strip()
        if s.startswith("|"):
            rows.append([c.strip() for c in s.strip("|").split("|")])
            continue
        flush()
        if s:
            out.append(f"<p>{_inline(s)}</p>")
    flush()
    return "\n".join(out)


def _setting_key(row: dict) -> tuple:
    return (row["acceleration"], row.get("center_fraction"))


def _setting_name(key: tuple) -> str:
    acc, cf = key
    return f"x{float(acc):g}" + (f"\ncf {cf:g}" if cf is not None else "")


def _metric_values(rows: Sequence[dict], metric: str, settings, models) -> dict:
    """{(setting, model): the files' finite values of ``metric``}."""
    return {
        (s, m): [
            float(r[metric])
            for r in rows
            if _setting_key(r) == s and r["model"] == m and math.isfinite(float(r[metric]))
        ]
        for s in settings
        for m in models
    }


def distribution_figure(rows: Sequence[dict], metrics: Sequence[str] = METRIC_NAMES) -> Figure:
    """One panel per metric: box plots over the files, one group per setting,
    one box per model (colours in the legend above), every file's value as a
    dot over its box (spread sideways by a fixed seed so dots do not hide each
    other). Panels side by side, or one under the other when a panel holds
    more than 8 boxes. A panel without a finite value (PSNR of perfect
    reconstructions) says so."""
    settings = list(dict.fromkeys(_setting_key(r) for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    boxes = len(settings) * len(models)
    ncols = len(metrics) if boxes <= 8 else 1
    nrows = math.ceil(len(metrics) / ncols)
    panel_w = max(3.2, 1.0 + 0.5 * boxes)
    fig = Figure(figsize=(panel_w * ncols, 3.0 * nrows + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    colours = [f"C{i % 10}" for i in range(len(models))]
    width = 0.8 / len(models)
    n_files = 0
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        values = _metric_values(rows, metric, settings, models)
        n_files = max(n_files, *(len(v) for v in values.values()))
        rng = np.random.default_rng(0)
        for i, s in enumerate(settings):
            for j, m in enumerate(models):
                v = values[(s, m)]
                if v:
                    _box(ax, v, i + (j - (len(models) - 1) / 2) * width, width, colours[j], rng)
        if not any(values.values()):
            ax.text(0.5, 0.5, "no finite value", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks(range(len(settings)), [_setting_name(s) for s in settings])
        ax.set_xlim(-0.5, len(settings) - 0.5)
        ax.set_title(_LABELS.get(metric, metric), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles = [
        fig.axes[0].scatter([], [], color=c, label=m) for c, m in zip(colours, models, strict=True)
    ]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(models), 5), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def _box(ax, v: list[float], x: float, width: float, colour: str, rng) -> None:
    """One model's box at ``x`` with its files' values as dots over it."""
    box = ax.boxplot([v], positions=[x], widths=width * 0.8, patch_artist=True, showfliers=False)
    for patch in box["boxes"]:
        patch.set(facecolor=colour, alpha=0.35, edgecolor=colour)
    for part in ("medians", "whiskers", "caps"):
        for line in box[part]:
            line.set_color(colour)
    jitter = rng.uniform(-width * 0.25, width * 0.25, len(v))
    ax.scatter(x + jitter, v, s=9, color=colour, zorder=3)


def _figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _img(png: bytes, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{png_data_uri(png)}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def report_html(
    rows: Sequence[dict],
    summary: Sequence[dict],
    note: str = "",
    figures: Sequence[str | Path] = (),
) -> str:
    """The page: ``note``, the summary tables, the distributions of ``rows``
    (metrics.csv rows), and the PNG ``figures`` (comparison figures) embedded."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>fmrecon evaluation</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>fmrecon evaluation</h1><p>fmrecon {html.escape(__version__)}; "
        f"{len({r['file'] for r in rows})} files, {len(rows)} rows in metrics.csv.</p>",
    ]
    if note:
        parts.append(f'<div class="note">{html.escape(note)}</div>')
    parts += ['<h2 id="tables">Summary</h2>', markdown_to_html(markdown_table(summary))]
    parts.append('<h2 id="distributions">Per-file metrics per setting</h2>')
    n = len({r["file"] for r in rows})
    caption = (
        f"SSIM, PSNR and NMSE of each of the {n} files (dots) and their quartiles (boxes; "
        "whiskers to 1.5 x the interquartile range), per setting and model"
    )
    parts.append(_img(_figure_png(distribution_figure(rows)), "metric distributions", caption))
    if figures:
        parts.append('<h2 id="figures">Comparison figures</h2>')
        for path in figures:
            path = Path(path)
            caption = f"figures/{path.name}: target, reconstruction, error map, zero-filled input"
            parts.append(_img(path.read_bytes(), path.stem, caption))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    out_dir: str | Path,
    rows: Sequence[dict],
    summary: Sequence[dict],
    note: str = "",
    figures: Sequence[str | Path] = (),
) -> Path:
    """Write ``out_dir/report.html`` (:func:`report_html`) atomically; returns its path."""
    path = Path(out_dir) / REPORT_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(report_html(rows, summary, note, figures), encoding="utf-8")
    return path
