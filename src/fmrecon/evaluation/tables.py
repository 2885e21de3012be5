"""The result tables of an evaluation: ``metrics.csv`` (one row per file,
setting and model), ``summary.json`` and ``summary.md`` (the papers' layout);
see :mod:`fmrecon.evaluation.evaluate` for their columns."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmrecon.data.h5io import atomic_path
from fmrecon.metrics import METRIC_NAMES, challenge_summary_2025

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
    # classical models (sense, cs-wavelet): ESPIRiT maps used and the calibration's
    # eigenvalue summary, mean over the file's scored images; empty for the others
    "maps",
    "espirit_eig_median",
    "espirit_kept",
    # added with two sets of maps: the second eigenvalue (where the object wraps)
    "espirit_eig2_median",
    "espirit_eig2_kept",
)
#: CMRxRecon 2025 columns, written after CSV_FIELDS only when the rows have them
SITE_FIELDS = ("center", "vendor", "field_strength", "modality_folder")
#: the breakdowns of summary.md for CMRxRecon 2025 data: (column, heading)
BREAKDOWNS = (
    ("center", "Center"),
    ("vendor", "Vendor (scanner)"),
    ("field_strength", "Field strength (T)"),
    ("modality_folder", "Modality"),
)
RANDOM_ENCODER = "trained, random-init encoder"


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


def has_sites(rows: Sequence[dict]) -> bool:
    """True when the rows carry CMRxRecon 2025 centers (see :data:`SITE_FIELDS`)."""
    return any(r.get("center") is not None for r in rows)


def breakdown_tables(rows: Sequence[dict]) -> list[str]:
    """Markdown lines: the mean SSIM, PSNR and NMSE over files per model, setting
    and group, for each breakdown of :data:`BREAKDOWNS` (CMRxRecon 2025: center,
    vendor folder, field strength, modality folder); groups in sorted order, an
    unknown field strength as "unknown"."""
    lines: list[str] = []
    model_order = list(dict.fromkeys(r["model"] for r in rows))
    for column, heading in BREAKDOWNS:
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in rows:
            key = (r["model"], r["acceleration"], r["center_fraction"], _group(r.get(column)))
            groups[key].append(r)
        lines += ["", f"**By {heading.split(' (')[0].lower()}** (mean over files)", ""]
        head = ["Model", "Setting", heading, "SSIM", "PSNR", "NMSE", "Files"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        order = sorted(groups, key=lambda k: (model_order.index(k[0]), _num_key(k[1]), k[3]))
        for model, acc, cf, group in order:
            rs = groups[(model, acc, cf, group)]
            setting = f"x{acc}" + (f" cf {cf:g}" if cf is not None else "")
            means = [float(np.mean([r[k] for r in rs])) for k in METRIC_NAMES]
            cells = [
                model,
                setting,
                group,
                _fmt(means[0], 4),
                _fmt(means[1], 2),
                _fmt(means[2], 4),
                str(len(rs)),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def challenge_table_2025(rows: Sequence[dict]) -> list[str]:
    """Markdown lines: per model and setting, the organisers' 2025 summary
    (:func:`fmrecon.metrics.challenge_summary_2025` over (center, vendor) groups:
    each scanner of each center counts once, ``Mean_of_all_centers_*``), for the
    rows scored in the ``cmrxrecon2025`` convention; none for other rows."""
    rows = [r for r in rows if r.get("convention") == "cmrxrecon2025"]
    if not rows:
        return []
    head = ["Model", "Setting", "SSIM", "PSNR", "NMSE", "Groups"]
    lines = [
        "",
        "**Mean over centers and vendors** (the 2025 scorer's Mean_of_all_centers: each "
        "(center, vendor) group's mean counts once, whatever its number of files)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    settings: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        settings[(r["model"], r["acceleration"], r["center_fraction"])].append(r)
    for (model, acc, cf), rs in settings.items():
        summary = challenge_summary_2025(rs, ("center", "vendor"))
        m = summary["mean"]
        setting = f"x{acc}" + (f" cf {cf:g}" if cf is not None else "")
        cells = [model, setting, _fmt(m["ssim"], 4), _fmt(m["psnr"], 2), _fmt(m["nmse"], 4)]
        lines.append("| " + " | ".join(cells + [str(len(summary["groups"]))]) + " |")
    return lines


def _group(value) -> str:
    if value is None or value == "":
        return "unknown"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _num_key(x):
    try:
        return (0, float(x))
    except (TypeError, ValueError):
        return (1, str(x))


def write_results(out_dir: str | Path, rows: Sequence[dict], header_note: str = "") -> list[dict]:
    """Write metrics.csv, summary.json and summary.md atomically; return the summary.
    Rows of CMRxRecon 2025 data add the columns :data:`SITE_FIELDS` to metrics.csv
    and the :func:`breakdown_tables` (and, in the ``cmrxrecon2025`` convention,
    :func:`challenge_table_2025`) to summary.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    sites = has_sites(rows)
    fields = CSV_FIELDS + (SITE_FIELDS if sites else ())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    with atomic_path(out_dir / "metrics.csv") as tmp:
        tmp.write_text(buf.getvalue())
    for s in summary:
        for k in METRIC_NAMES:
            if not math.isfinite(s[k]):
                s[k] = None  # JSON has no NaN/Infinity (PSNR of a perfect reconstruction)
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    with atomic_path(out_dir / "summary.md") as tmp:
        text = markdown_table(summary)
        if sites:
            extra = breakdown_tables(rows) + challenge_table_2025(rows)
            text += "\n".join(extra).lstrip("\n").join(["\n", "\n"])
        tmp.write_text((header_note + "\n\n" if header_note else "") + text)
    return summary
