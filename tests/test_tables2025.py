"""CMRxRecon 2025 breakdowns in ``fmrecon evaluate``'s tables: metrics.csv gains
center, vendor, field strength and modality columns and summary.md their means,
only for data that has them."""

from __future__ import annotations

import csv

import numpy as np

from cmrx25_files import small_2025_tree
from fmrecon.cli import main
from fmrecon.evaluation.tables import (
    CSV_FIELDS,
    SITE_FIELDS,
    markdown_table,
    summarize,
    write_results,
)


def _row(center, vendor, field, modality, ssim, psnr, nmse, acc=8, model="m"):
    return {
        "model": model,
        "file": f"{center}/{vendor}/x.mat",
        "subject": f"{center}/{vendor}/P1",
        "modality": "cine_sax",
        "mask": "cmrxrecon25-uniform",
        "acceleration": acc,
        "center_fraction": None,
        "convention": "cmrxrecon",
        "n_images": 2,
        "ssim": ssim,
        "psnr": psnr,
        "nmse": nmse,
        "weights": "none",
        "checkpoint": "",
        "fingerprint_db": 1.0,
        "center": center,
        "vendor": vendor,
        "field_strength": field,
        "modality_folder": modality,
    }


def test_breakdown_means_hand_worked(tmp_path):
    rows = [
        _row("Center001", "Siemens_30T_Vida", 3.0, "Cine", 0.90, 30.0, 0.02),
        _row("Center001", "Siemens_30T_Vida", 3.0, "BlackBlood", 0.80, 26.0, 0.04),
        _row("Center002", "UIH_15T_umr680", 1.5, "Cine", 0.70, 20.0, 0.10),
        _row("Center002", "GE_Signa", None, "Cine", 0.60, 18.0, 0.20),
    ]
    write_results(tmp_path, rows)
    text = (tmp_path / "summary.md").read_text()
    # Center001: (0.90 + 0.80) / 2 = 0.85, (30 + 26) / 2 = 28, (0.02 + 0.04) / 2 = 0.03
    assert "| m | x8 | Center001 | 0.8500 | 28.00 | 0.0300 | 2 |" in text
    assert "| m | x8 | Center002 | 0.6500 | 19.00 | 0.1500 | 2 |" in text
    assert "| m | x8 | UIH_15T_umr680 | 0.7000 | 20.00 | 0.1000 | 1 |" in text
    # field strength: 3.0 T = the two Center001 files; the GE folder says none: unknown
    assert "| m | x8 | 3.0 | 0.8500 | 28.00 | 0.0300 | 2 |" in text
    assert "| m | x8 | unknown | 0.6000 | 18.00 | 0.2000 | 1 |" in text
    # Cine: (0.9 + 0.7 + 0.6) / 3 = 0.7333, (30 + 20 + 18) / 3 = 22.67, 0.32 / 3 = 0.1067
    assert "| m | x8 | Cine | 0.7333 | 22.67 | 0.1067 | 3 |" in text
    for heading in ("**By center**", "**By vendor**", "**By field strength**", "**By modality**"):
        assert heading in text
    with open(tmp_path / "metrics.csv") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_FIELDS + SITE_FIELDS
        got = list(reader)
    assert [r["field_strength"] for r in got] == ["3.0", "3.0", "1.5", ""]
    assert got[2]["vendor"] == "UIH_15T_umr680" and got[1]["modality_folder"] == "BlackBlood"


def test_tables_of_other_data_unchanged(tmp_path):
    rows = [_row("c", "v", 3.0, "Cine", 0.9, 30.0, 0.02)]
    for r in rows:
        for k in SITE_FIELDS:
            del r[k]
    write_results(tmp_path, rows, header_note="note")
    assert (tmp_path / "summary.md").read_text() == "note\n\n" + markdown_table(summarize(rows))
    with open(tmp_path / "metrics.csv") as fh:
        assert tuple(csv.DictReader(fh).fieldnames) == CSV_FIELDS


def test_evaluate_cli_breaks_down_2025_data(tmp_path):
    small_2025_tree(tmp_path / "data")
    out = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--model",
            "zero-filled",
            "--data",
            str(tmp_path / "data"),
            "--mask",
            "cmrxrecon25-uniform",
            "--accelerations",
            "8",
            "--num-acs",
            "4",
            "--out",
            str(out),
            "--no-figures",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    assert rc == 0
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    sites = {
        (r["subject"], r["center"], r["vendor"], r["field_strength"], r["modality_folder"])
        for r in rows
    }
    assert (
        "Center002/Siemens_15T_Aera/P004",
        "Center002",
        "Siemens_15T_Aera",
        "1.5",
        "Cine",
    ) in sites
    assert ("Center002/UIH_30T_umr880/P004", "Center002", "UIH_30T_umr880", "3.0", "T2w") in sites
    text = (out / "summary.md").read_text()
    c2 = [r for r in rows if r["center"] == "Center002"]
    mean = np.mean([float(r["ssim"]) for r in c2])
    assert f"| zero-filled | x8 | Center002 | {mean:.4f} |" in text


def test_figure_names_keep_vendors_apart(tmp_path):
    from fmrecon.data.formats import discover
    from fmrecon.evaluation.evaluate import _short_name

    small_2025_tree(tmp_path)
    p004 = [v for v in discover(tmp_path)[0] if v.patient == "P004" and v.modality == "cine_sax"]
    names = {_short_name(v) for v in p004}
    assert names == {"Center002/Siemens_15T_Aera/P004/cine_sax.mat"}
    all_p004 = {_short_name(v) for v in discover(tmp_path)[0] if v.patient == "P004"}
    assert "Center002/UIH_30T_umr880/P004/T2w.mat" in all_p004 and len(all_p004) == 3


def test_challenge_mean_over_center_vendor_groups(tmp_path):
    rows = [
        _row("Center001", "Siemens_30T_Vida", 3.0, "Cine", 0.90, 30.0, 0.02),
        _row("Center001", "Siemens_30T_Vida", 3.0, "BlackBlood", 0.80, 26.0, 0.04),
        _row("Center002", "UIH_15T_umr680", 1.5, "Cine", 0.70, 20.0, 0.10),
    ]
    for r in rows:
        r["convention"] = "cmrxrecon2025"
    write_results(tmp_path, rows)
    text = (tmp_path / "summary.md").read_text()
    # groups: (Center001, Vida) 0.85 / 28 / 0.03 and (Center002, UIH) 0.70 / 20 / 0.10;
    # each counts once: SSIM (0.85 + 0.70) / 2 = 0.775, PSNR 24, NMSE 0.065 (the plain
    # mean over the 3 files would be 0.80 / 25.33 / 0.0533)
    assert "| m | x8 | 0.7750 | 24.00 | 0.0650 | 2 |" in text
    for r in rows:
        r["convention"] = "cmrxrecon"
    write_results(tmp_path, rows)
    assert "Mean over centers and vendors" not in (tmp_path / "summary.md").read_text()
