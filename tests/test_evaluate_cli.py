"""`fmrecon evaluate --model zero-filled` end to end on real-format files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import oracles
from conftest import random_kspace, write_cmrx, write_fastmri
from fmrecon.cli import main
from fmrecon.commands.evaluate import PRESETTABLE
from fmrecon.physics.masks import create_mask


def _smooth_kspace(shape_matlab, seed):
    """k-space of a smooth object so zero-filling degrades it measurably."""
    kx, ky, nc, nz, nt = shape_matlab
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, kx), np.linspace(-1, 1, ky), indexing="ij")
    out = np.zeros(shape_matlab, dtype=np.complex64)
    for z in range(nz):
        for t in range(nt):
            img = (x**2 / 0.5 + y**2 / (0.3 + 0.05 * t) < 1).astype(float) + 0.5 * (
                x**2 + y**2 < 0.1
            )
            for c in range(nc):
                coil = np.exp(-((x - np.cos(c)) ** 2 + (y - np.sin(c)) ** 2))
                out[:, :, c, z, t] = np.fft.fftshift(
                    np.fft.fft2(np.fft.ifftshift(img * coil), norm="ortho")
                ) + 0.01 * (rng.standard_normal((kx, ky)) + 1j * rng.standard_normal((kx, ky)))
    return out


def _matlab_volumes(k):
    """MATLAB-order k-space (kx, ky, coil, slice, time) -> (T, Z, C, kx, ky)."""
    return k.transpose(4, 3, 2, 0, 1)


def _rss_volume(k):
    """(T, Z, C, kx, ky) k-space -> (T, Z, kx, ky) RSS images (NumPy FFT)."""
    return oracles.np_zero_filled(k, np.ones(k.shape[-1], dtype=bool), coil_axis=2)


def test_zero_filled_cmrxrecon_convention_matches_the_official_rule(tmp_path, capsys):
    """The challenge's rule written out in tests/oracles.py: 5 slices -> MATLAB
    round(2.5) = 3, slices 2:3 (1-based); 5 frames -> 1:3; ky 46 -> a 23-wide crop
    from crop.m's column 12 (0-based; fastMRI's centre would start at 11)."""
    data = tmp_path / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample"
    vols = {}
    for i, subj in enumerate(["P001", "P002"]):
        vols[subj] = _smooth_kspace((30, 46, 2, 5, 5), i)
        write_cmrx(data / subj / "cine_sax.mat", vols[subj])
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "zero-filled", "--data", str(tmp_path), "--mask",
            "cmrxrecon-uniform", "--accelerations", "4", "8", "--convention", "cmrxrecon",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [
        (s["model"], s["acceleration"], s["center_fraction"], s["n_files"]) for s in summary
    ] == [
        ("zero-filled", 4, None, 2),
        ("zero-filled", 8, None, 2),
    ]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 4 and {r["file"].split("/")[-2] for r in rows} == {"P001", "P002"}
    for i, r in enumerate((4, 8)):
        lines = oracles.cmrx_uniform_lines(46, r)  # the 2023 mask: 1:R:end + 24 ACS lines
        per_file = []
        for subj in ["P001", "P002"]:
            k = _matlab_volumes(vols[subj])
            zf = oracles.np_zero_filled(k, lines, coil_axis=2)
            ref = oracles.cmrx_ranking_scores(_rss_volume(k), zf, "cine_sax")
            row = next(x for x in rows if x["acceleration"] == str(r) and subj in x["file"])
            assert int(row["n_images"]) == ref["n_images"] == 3 * 2
            for m in ("ssim", "psnr", "nmse"):
                assert float(row[m]) == pytest.approx(ref[m], rel=1e-5), (subj, r, m)
            per_file.append(ref)
        for m in ("ssim", "psnr", "nmse"):
            assert summary[i][m] == pytest.approx(np.mean([f[m] for f in per_file]), rel=1e-5)
    assert summary[0]["ssim"] > summary[1]["ssim"]  # x4 beats x8
    md = (out / "summary.md").read_text()
    assert "| zero-filled |" in md and "x4 SSIM" in md and "x8 NMSE" in md
    assert "zero-filled" in capsys.readouterr().out


def test_zero_filled_fastmri_convention_matches_fastmri_evaluate(tmp_path):
    """fastMRI's masks (fastmri.data.subsample, seeded with the file name), its
    zero-filled RSS and its evaluate.py give the numbers of metrics.csv and
    summary.json, for both centre fractions."""
    data = tmp_path / "data"
    files = [
        write_fastmri(
            data / f"file_brain_AXT1_{i}.h5", random_kspace((4 - i, 2, 32, 24), i), crop=(16, 16)
        )
        for i in (1, 2)
    ]
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "zero-filled", "--data", str(data), "--mask",
            "equispaced-fraction", "--accelerations", "4", "--center-fractions", "0.04",
            "0.08", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["acceleration"], s["center_fraction"], s["n_files"]) for s in summary] == [
        (4, 0.04, 2),
        (4, 0.08, 2),
    ]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    for entry in summary:
        cf = entry["center_fraction"]
        recons = {}
        for p in files:
            lines = oracles.fastmri_file_mask(p, "equispaced-fraction", 4, cf)
            with h5py.File(p) as f:
                recons[p.name] = oracles.fastmri_zero_filled(f["kspace"][()], lines)
        ref = oracles.fastmri_evaluate(data, recons, tmp_path / f"pred{cf}")
        for p in files:
            row = next(r for r in rows if r["file"] == str(p) and float(r["center_fraction"]) == cf)
            for m in ("ssim", "psnr", "nmse"):
                assert float(row[m]) == pytest.approx(ref[p.name][m], rel=1e-5), (p.name, cf, m)
        for m in ("ssim", "psnr", "nmse"):
            assert entry[m] == pytest.approx(ref["mean"][m], rel=1e-5), (cf, m)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--mask", "zigzag"], "unknown mask"),
        (["--accelerations", "0.5"], "acceleration"),
        (["--mask", "random"], "needs --center-fractions"),
        (["--center-fractions", "0.08"], "applies to fastMRI masks"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--convention", "nope"], "unknown convention 'nope'"),
    ],
)
def test_cli_errors_are_one_line_exit_2(cmrx_tree, tmp_path, capsys, args, message):
    base = [
        "evaluate",
        "--model",
        "zero-filled",
        "--data",
        str(cmrx_tree),
        "--out",
        str(tmp_path / "o"),
    ]
    code = main(base + args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_error_for_missing_and_empty_data(tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--model",
                "zero-filled",
                "--data",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "evaluate",
                "--model",
                "zero-filled",
                "--data",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no readable k-space files" in capsys.readouterr().err


def test_cli_split_selects_subjects(cmrx_tree, tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["P001", "P002"], "val": [], "test": ["P003"]}))
    out = tmp_path / "o"
    assert (
        main(
            [
                "evaluate",
                "--model",
                "zero-filled",
                "--data",
                str(cmrx_tree),
                "--split",
                str(split),
                "--split-name",
                "test",
                "--accelerations",
                "4",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert {r["subject"] for r in rows} == {"P003"}


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "simulate" in out and "evaluate" in out


def test_cmrxrecon2024_layout_with_official_kt_masks(tmp_path):
    """2024 layout: FullSample + Mask_Task2 k-t mask files (kx, ky, t), read with
    --official-masks; every frame uses its own mask."""
    from fmrecon.data.h5io import write_mat73

    base = tmp_path / "MultiCoil" / "Aorta" / "TrainingSet"
    k = _smooth_kspace((30, 48, 2, 3, 4), 0)
    write_cmrx(base / "FullSample" / "P001" / "aorta_sag.mat", k)
    kt = create_mask("kt-uniform", 8)((4, 30, 48))  # (t, kx, ky)
    write_mat73(
        base / "Mask_Task2" / "P001" / "aorta_sag_mask_ktUniform8.mat",
        {"mask": kt.transpose(1, 2, 0).astype(np.float64)},  # MATLAB (kx, ky, t)
    )
    out = tmp_path / "o"
    argv = ["evaluate", "--model", "zero-filled", "--data", str(tmp_path), "--mask", "kt-uniform"]
    argv += ["--accelerations", "8", "--official-masks", "--convention", "cmrxrecon"]
    assert main(argv + ["--out", str(out), "--quiet"]) == 0
    row = next(csv.DictReader(open(out / "metrics.csv")))
    assert row["modality"] == "aorta_sag" and row["n_images"] == "6"  # 3 frames x 2 slices
    # the official rule (slices of 3: round(1.5) = 2 -> 1:2; frames 1:3), each frame
    # with its own k-t mask
    kk = _matlab_volumes(k)
    zf = oracles.np_zero_filled(kk, kt[:, None, None], coil_axis=2)
    ref = oracles.cmrx_ranking_scores(_rss_volume(kk), zf, "aorta_sag")
    for m in ("ssim", "psnr", "nmse"):
        assert float(row[m]) == pytest.approx(ref[m], rel=1e-6)
    # a missing official mask is a one-line error
    assert main(argv[:-3] + ["--accelerations", "4", "--official-masks", "--out", str(out)]) == 2


def test_cli_broken_data_file_is_one_line_exit_2(cmrx_tree, tmp_path, capsys):
    victim = cmrx_tree / "MultiCoil/Cine/TrainingSet/FullSample/P002/cine_sax.mat"
    victim.write_bytes(victim.read_bytes()[:2048])
    code = main(
        [
            "evaluate",
            "--model",
            "zero-filled",
            "--data",
            str(cmrx_tree),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert str(victim) in err and "truncated" in err


def test_evaluate_with_worker_processes(cmrx_tree, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    base = [
        "evaluate",
        "--model",
        "zero-filled",
        "--data",
        str(cmrx_tree),
        "--accelerations",
        "4",
        "--quiet",
    ]
    assert main(base + ["--out", str(a)]) == 0
    assert main(base + ["--out", str(b), "--workers", "2"]) == 0
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()


PRESETS = sorted((Path(__file__).parent.parent / "configs/paper/evaluation").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_paper_evaluation_presets_apply(preset, tmp_path, monkeypatch):
    import yaml

    from fmrecon.cli import build_parser
    from fmrecon.commands import evaluate as ev

    args = build_parser().parse_args(
        ["evaluate", "--preset", str(preset), "--data", "d", "--out", "o", "--accelerations", "8"]
    )
    want = yaml.safe_load(preset.read_text())
    assert args.mask == want["mask"] and args.convention == want["convention"]
    assert args.accelerations == [8]  # the command line wins
    assert ev.build_settings(args)  # every setting of the preset builds a mask
    resize = ev.build_resize(args)
    if preset.name.startswith("midl2025"):  # the paper's 224x224 input, as in training
        assert resize.size == (224, 224) and resize.readout_oversampling == 2
        assert resize.shape(512, 246) == (224, 224) and not args.official_masks
    else:
        assert resize is None  # native size


def _evaluate_parser():
    """The `fmrecon evaluate` parser as fmrecon.cli builds it (its actions by dest)."""
    from fmrecon.cli import Parser
    from fmrecon.commands import evaluate as ev

    p = Parser(prog="fmrecon evaluate")
    ev.add_arguments(p)
    p.preset_defaults = ev.preset_defaults
    return p, {a.dest: a for a in p._actions}


def _parse_evaluate(*argv):
    from fmrecon.cli import build_parser

    return build_parser().parse_args(["evaluate", "--data", "d", "--out", "o", *map(str, argv)])


# Every option a preset may set: (a preset value other than the built-in default, the
# command line giving the built-in default -- or, where that is None and cannot be
# typed, another value -- and the value it gives). A presettable option without a
# row here fails test_the_command_line_wins_over_a_preset.
PRESET_CASES = {
    "mask": ("equispaced-fraction", ["--mask", "cmrxrecon-uniform"], "cmrxrecon-uniform"),
    "accelerations": ([8], ["--accelerations", "4", "8", "10"], [4, 8, 10]),
    "center_fractions": ([0.08, 0.04], ["--center-fractions", "0.04"], [0.04]),
    "num_acs": (24, ["--num-acs", "16"], 16),
    "official_masks": (True, ["--no-official-masks"], False),
    "convention": ("full-volume", ["--convention", "fastmri"], "fastmri"),
    "split_name": ("val", ["--split-name", "test"], "test"),
    "batch_size": (4, ["--batch-size", "1"], 1),
    "precision": ("bf16", ["--precision", "32"], "32"),
    "error_scale": (2.0, ["--error-scale", "5"], 5.0),
    "image_size": ([224, 224], ["--image-size", "128", "96"], [128, 96]),
    "image_resize": ("crop", ["--image-resize", "kspace"], "kspace"),
    "readout_oversampling": (2, ["--readout-oversampling", "1"], 1),
    "model": (["zero-filled", "sense"], ["--model", "zero-filled"], ["zero-filled"]),
    "tf32": (True, ["--no-tf32"], False),
}


@pytest.mark.parametrize("dest", PRESETTABLE)
def test_the_command_line_wins_over_a_preset(dest, tmp_path):
    """Preset alone: the preset's value. Preset plus the option on the command line
    (before or after --preset), also set to the built-in default: the command line's."""
    import yaml

    _, actions = _evaluate_parser()
    preset_value, argv, cli_value = PRESET_CASES[dest]
    default = actions[dest].default
    assert preset_value != default and cli_value != preset_value
    if default is not None:  # the case the old "equals the default = not given" rule lost
        assert cli_value == default
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({dest: preset_value}))
    assert getattr(_parse_evaluate(), dest) == default
    args = _parse_evaluate("--preset", preset)
    assert getattr(args, dest) == preset_value and args.from_preset == [dest]
    for given in ([*argv, "--preset", preset], ["--preset", preset, *argv]):
        args = _parse_evaluate(*given)
        assert getattr(args, dest) == cli_value and args.from_preset == []


def test_a_switch_on_the_command_line_wins_over_a_preset_both_ways(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("official_masks: false\n")
    assert _parse_evaluate("--preset", preset).official_masks is False
    assert _parse_evaluate("--preset", preset, "--official-masks").official_masks is True
    preset.write_text("official_masks: true\n")
    assert _parse_evaluate("--preset", preset).official_masks is True
    assert _parse_evaluate("--official-masks", "--preset", preset).official_masks is True


def _cli_tokens(action, value) -> list[str]:
    """The command line that gives ``action`` the value ``value``."""
    if action.nargs == 0:
        return [action.option_strings[0 if value else 1]]
    values = value if isinstance(value, list) else [value]
    return [action.option_strings[0], *(str(v) for v in values)]


PRESET_KEYS = [(path, key) for path in PRESETS for key in yaml.safe_load(path.read_text())]


@pytest.mark.parametrize("preset,key", PRESET_KEYS, ids=lambda x: getattr(x, "stem", x))
def test_every_paper_preset_key_is_applied_and_overridden(preset, key):
    """Each option of each paper preset: applied alone; the command line's value wins,
    the built-in default included (`--convention fastmri` over the in-distribution
    preset's full-volume, `--mask cmrxrecon-uniform` over the cross-domain one's
    equispaced-fraction: the two cases of issue 17)."""
    import yaml

    _, actions = _evaluate_parser()
    want = yaml.safe_load(preset.read_text())[key]
    action = actions[key]
    assert getattr(_parse_evaluate("--preset", preset), key) == want
    cli = action.default if action.default is not None else PRESET_CASES[key][2]
    if cli == want:  # the preset sets the built-in default: override with another value
        cli = PRESET_CASES[key][0] if PRESET_CASES[key][0] != want else PRESET_CASES[key][2]
    assert cli != want
    got = getattr(_parse_evaluate("--preset", preset, *_cli_tokens(action, cli)), key)
    assert got == cli


def test_the_in_distribution_preset_scores_the_convention_given(cmrx_tree, tmp_path):
    """End to end: the preset says full-volume, the command line fastmri (the
    built-in default); the table is scored and labelled fastmri."""
    preset = (
        Path(__file__).parent.parent / "configs/paper/evaluation/arxiv2026-in-distribution.yaml"
    )
    out = tmp_path / "o"
    argv = ["evaluate", "--preset", str(preset), "--model", "zero-filled", "--data",
            str(cmrx_tree), "--accelerations", "4", "--num-acs", "8", "--convention",
            "fastmri", "--out", str(out), "--quiet", "--no-figures"]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert rows and {r["convention"] for r in rows} == {"fastmri"}
    assert "Convention: fastmri" in (out / "summary.md").read_text()


def test_the_cross_domain_preset_with_a_cmrxrecon_mask_is_refused_naming_the_preset(capsys):
    """`--mask cmrxrecon-uniform` wins over the cross-domain preset's mask; the
    preset's centre fractions do not apply to it: one line naming the preset's key
    (the old rule silently ran equispaced-fraction)."""
    preset = PRESETS[0].with_name("arxiv2026-crossdomain.yaml")
    argv = ["evaluate", "--preset", str(preset), "--model", "zero-filled", "--data", "d"]
    assert main([*argv, "--out", "o", "--mask", "cmrxrecon-uniform"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--preset {preset}: center_fractions applies to fastMRI masks" in err


@pytest.mark.parametrize(
    "text,message",
    [
        ("masks: random\n", "unknown option 'masks'"),
        ("accelerations: [x]\n", "option 'accelerations' must be float"),
        ("precision: 16\n", "option 'precision' must be one of 32, bf16"),
        ("official_masks: 1\n", "option 'official_masks' must be true or false"),
        ("image_size: [224]\n", "option 'image_size' must be a list of 2 values"),
        ("num_acs: 2.5\n", "option 'num_acs' must be int"),
        ("batch_size: true\n", "option 'batch_size' must be a number or a name"),
        ("mask: null\n", "option 'mask' needs a value"),
        ("- mask\n", "the top level must be a mapping"),
    ],
)
def test_bad_presets_are_one_line_naming_the_file_and_the_key(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    argv = ["evaluate", "--model", "zero-filled", "--data", "d", "--out", "o", "--preset"]
    assert main([*argv, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert err.startswith(f"fmrecon evaluate: error: --preset {bad}: ")


def test_preset_runs_end_to_end_and_rejects_unknown_options(tmp_path, capsys):
    write_fastmri(
        tmp_path / "d" / "file_knee_1.h5", random_kspace((2, 2, 32, 24), 1), crop=(16, 16)
    )
    preset = Path(__file__).parent.parent / "configs/paper/evaluation/arxiv2026-crossdomain.yaml"
    out = tmp_path / "o"
    argv = ["evaluate", "--model", "zero-filled", "--preset", str(preset), "--data"]
    assert main(argv + [str(tmp_path / "d"), "--out", str(out), "--quiet", "--no-figures"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {(s["acceleration"], s["center_fraction"]) for s in summary} == {
        (a, c) for a in (4, 8, 10) for c in (0.08, 0.04)
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("masks: random\n")
    assert main(argv + [str(tmp_path / "d"), "--out", str(out), "--preset", str(bad)]) == 2
    assert "unknown option 'masks'" in capsys.readouterr().err


@pytest.mark.parametrize("convention", ["full-volume", "full-per-image"])
def test_full_conventions_score_every_image_and_report_fingerprints(tmp_path, convention):
    """Every slice and frame over the whole field of view (kx 48 > ky 40, so fastMRI's
    (W, W) crop would cut rows); fingerprints in metrics.csv, summary.json and .md."""
    data = tmp_path / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample"
    vols = {}
    for i, subj in enumerate(["P001", "P002"]):
        vols[subj] = _smooth_kspace((48, 40, 2, 3, 4), i) * (1.0 + 2.0 * i)
        write_cmrx(data / subj / "cine_sax.mat", vols[subj])
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "zero-filled", "--data", str(tmp_path), "--out", str(out)]
    argv += ["--accelerations", "4", "--convention", convention, "--quiet", "--no-figures"]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and all(int(r["n_images"]) == 3 * 4 for r in rows)
    assert all(r["convention"] == convention for r in rows)
    lines = oracles.cmrx_uniform_lines(40, 4)
    for r in rows:
        k = _matlab_volumes(vols[r["file"].split("/")[-2]])  # (t, z, coil, kx, ky)
        gt, zf = _rss_volume(k), oracles.np_zero_filled(k, lines, coil_axis=2)
        gt, zf = gt.reshape(-1, 48, 40), zf.reshape(-1, 48, 40)
        if convention == "full-volume":  # fastMRI evaluate.py: data range = volume max
            err = np.mean((gt - zf) ** 2)
            psnr = 10 * np.log10(gt.max() ** 2 / err)
            nmse = np.sum((gt - zf) ** 2) / np.sum(gt**2)
            fp = 10 * np.log10(gt.max() ** 2 / np.mean(gt**2))
        else:
            per = [oracles.cmrx_image_scores(g, z) for g, z in zip(gt, zf, strict=True)]
            psnr = np.mean([p["psnr"] for p in per])
            nmse = np.mean([p["nmse"] for p in per])
            fp = np.mean([10 * np.log10(g.max() ** 2 / np.mean(g**2)) for g in gt])
        assert float(r["psnr"]) == pytest.approx(psnr, rel=1e-4)
        assert float(r["nmse"]) == pytest.approx(nmse, rel=1e-4)
        assert float(r["fingerprint_db"]) == pytest.approx(fp, abs=1e-3)
    (s,) = json.loads((out / "summary.json").read_text())
    assert s["fingerprint_db"] == pytest.approx(s["psnr"] + 10 * np.log10(s["nmse"]), abs=1e-9)
    per_file = [float(r["fingerprint_db"]) for r in rows]
    assert s["fingerprint_db_per_image"] == pytest.approx(np.mean(per_file), abs=1e-9)
    # Jensen: the table statistic is never below the mean exact fingerprint
    assert s["fingerprint_db"] >= s["fingerprint_db_per_image"] - 1e-6
    md = (out / "summary.md").read_text()
    assert "**Scoring fingerprint**" in md
    line = next(x for x in md.splitlines() if x.startswith("| zero-filled | x4 |"))
    assert line == (
        f"| zero-filled | x4 | {s['fingerprint_db']:.2f} | {s['fingerprint_db_per_image']:.2f} |"
    )


def test_unknown_convention_in_a_preset_is_one_line(cmrx_tree, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("convention: full\n")
    argv = ["evaluate", "--model", "zero-filled", "--data", str(cmrx_tree), "--preset", str(bad)]
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown convention 'full'" in err and "full-volume" in err and err.count("\n") == 1


def test_evaluate_at_an_image_size_scores_images_of_that_size(tmp_path, capsys):
    """--image-size: every slice is brought to H x W before masking (the same
    KspaceResize as training), models get k-space and masks of that size, and
    the scores are those of the transformed images (hand computation)."""
    import torch

    from fmrecon.data.formats import discover
    from fmrecon.data.resize import KspaceResize
    from fmrecon.evaluation.evaluate import EvalModel, Setting, evaluate_models
    from fmrecon.models.zero_filled import ZeroFilled

    data = tmp_path / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample"
    vol = _smooth_kspace((30, 48, 2, 4, 3), 0)
    write_cmrx(data / "P001" / "cine_sax.mat", vol)
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "zero-filled", "--data", str(tmp_path), "--mask",
            "cmrxrecon-uniform", "--accelerations", "4", "--convention", "cmrxrecon",
            "--image-size", "32", "36", "--no-figures", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "image size: 32x36" in (out / "summary.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    resize = KspaceResize((32, 36))
    k = np.stack([[resize(z) for z in t] for t in _matlab_volumes(vol)])  # (T, Z, C, 32, 36)
    zf = oracles.np_zero_filled(k, oracles.cmrx_uniform_lines(36, 4), coil_axis=2)
    ref = oracles.cmrx_ranking_scores(_rss_volume(k), zf, "cine_sax")
    for m in ("ssim", "psnr", "nmse"):
        assert summary[0][m] == pytest.approx(ref[m], rel=1e-5)
    # what a model is given
    seen = []

    def model(kspace, mask):
        seen.append((tuple(kspace.shape), tuple(mask.shape)))
        return ZeroFilled()(kspace, mask)

    volumes = [v for v in discover(tmp_path)[0] if v.fully_sampled]
    func = create_mask("cmrxrecon-uniform", 4)
    rows, _ = evaluate_models([EvalModel("spy", model)], volumes,
                              [Setting("cmrxrecon-uniform", 4, None, func)],
                              convention="fastmri", resize=KspaceResize((32, 36)))  # fmt: skip
    assert seen and all(k == (1, 2, 32, 36) and m == (1, 1, 32, 36) for k, m in seen)
    assert rows[0]["n_images"] == 12 and torch.isfinite(torch.tensor(rows[0]["ssim"]))
    # the challenge's mask files are native-size: refused with an image size, one line
    capsys.readouterr()
    assert main(argv + ["--official-masks"]) == 2
    err = capsys.readouterr().err.strip()
    assert "mask files exist at the native size only" in err and "\n" not in err
    assert main(argv[:-2] + ["--image-size", "0", "36", "--out", str(out)]) == 2
    assert "--image-size must be null or two integers >= 1" in capsys.readouterr().err


def test_evaluate_help_gives_the_defaults_of_the_run_options():
    """`fmrecon evaluate --help` states the defaults a user needs to know what a
    plain run does, and states them right."""
    _, actions = _evaluate_parser()
    for dest in ("accelerations", "workers", "batch_size", "device"):
        action = actions[dest]
        default = action.default
        shown = " ".join(str(v) for v in default) if isinstance(default, list) else str(default)
        assert f"default: {shown}" in (action.help or ""), dest
