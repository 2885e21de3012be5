"""`fmrecon evaluate --checkpoint ...`: trained models (tiny, random weights),
combined tables, fastMRI VarNet state dicts, random-init encoders, batching,
bf16 and the comparison figures."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
import torch
from fastmri.models import VarNet as FastmriVarNet
from matplotlib.image import imread

import oracles
from conftest import random_kspace, write_fastmri
from fmrecon.cli import main
from fmrecon.encoders import TINY_OVERRIDES
from fmrecon.evaluation.evaluate import RANDOM_ENCODER, file_batches
from fmrecon.evaluation.figures import figure_layout, write_comparison_figure
from fmrecon.models.io import save_model
from fmrecon.models.registry import create_model

TINY_VARNET = dict(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2)
OLD_CSV = "model,file,subject,modality,mask,acceleration,center_fraction,convention,n_images,"
OLD_CSV += "ssim,psnr,nmse"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny checkpoints: two e2e-varnets, a unet, a random-init fm-varnet-clip,
    and one tiny VarNet of the fastmri package itself (``fastmri.models.VarNet``)
    as a plain and as a Lightning state dict (fastMRI's ``VarNetModule.varnet``)."""
    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    paths = {
        "varnet_a": save_model(create_model("e2e-varnet", **TINY_VARNET), d / "varnet_a.ckpt"),
        "varnet_b": save_model(create_model("e2e-varnet", **TINY_VARNET), d / "varnet_b.ckpt"),
        "unet": save_model(create_model("unet", chans=4, num_pools=2), d / "unet.ckpt"),
    }
    fm = create_model(
        "fm-varnet-clip",
        encoder_weights="random",
        allow_random_encoder=True,
        encoder_config=TINY_OVERRIDES["clip"],
        num_cascades=2,
        sens_chans=4,
        sens_pools=2,
        chans=(16, 16, 8, 8, 8),
    )
    paths["fm"] = save_model(fm, d / "fm_clip.ckpt")
    fastmri_net = FastmriVarNet(**TINY_VARNET)
    state = fastmri_net.state_dict()
    torch.save(state, d / "plain_state_dict.pt")
    torch.save({"state_dict": {"varnet." + k: v for k, v in state.items()}}, d / "lightning.ckpt")
    paths["plain"], paths["lightning"] = d / "plain_state_dict.pt", d / "lightning.ckpt"
    paths["fastmri_net"] = fastmri_net.eval()
    return paths


@pytest.fixture(scope="module")
def fm_data(tmp_path_factory):
    """Two fastMRI files of different sizes (3 and 2 slices, 2 coils)."""
    d = tmp_path_factory.mktemp("fastmri")
    files = [
        write_fastmri(d / "file_a.h5", random_kspace((3, 2, 32, 24), 1), crop=(16, 16)),
        write_fastmri(d / "file_b.h5", random_kspace((2, 2, 28, 20), 2), crop=(16, 16)),
    ]
    return d, files


def _run(data, out, *extra, mask=("equispaced-fraction",), cf=("0.08",), acc=("4",)):
    argv = ["evaluate", "--data", str(data), "--out", str(out), "--quiet", "--device", "cpu"]
    argv += ["--mask", *mask, "--accelerations", *acc]
    argv += ["--center-fractions", *cf] if cf else []
    return main(argv + [str(x) for x in extra])


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _rows(out):
    return list(csv.DictReader(open(out / "metrics.csv")))


def _fastmri_reference(net, data, files, out, acc=4, cf=0.08) -> dict:
    """fastMRI's own numbers for one setting: masks from fastmri.data.subsample
    seeded with the file name, images from ``net`` (a fastmri.models.VarNet;
    None = fastMRI's zero-filled RSS), metrics by fastmri.evaluate.evaluate."""
    recons = {}
    for path in files:
        lines = oracles.fastmri_file_mask(path, "equispaced-fraction", acc, cf)
        with h5py.File(path) as f:
            k = f["kspace"][()]
        recons[path.name] = (
            oracles.fastmri_zero_filled(k, lines)
            if net is None
            else oracles.fastmri_varnet_recon(net, k, lines)
        )
    return oracles.fastmri_evaluate(data, recons, out)


def _assert_matches_fastmri(rows, summary, label, acc, ref, rel=1e-4):
    """metrics.csv rows and the summary.json entry of ``label`` at R=``acc``
    equal fastMRI's per-file metrics and evaluate.py's means over files."""
    for name, expected in ref.items():
        if name == "mean":
            continue
        row = next(
            r
            for r in rows
            if r["model"] == label and r["acceleration"] == str(acc) and r["file"].endswith(name)
        )
        for m in ("ssim", "psnr", "nmse"):
            assert float(row[m]) == pytest.approx(expected[m], rel=rel), (label, name, m)
    entry = next(s for s in summary if s["model"] == label and s["acceleration"] == acc)
    for m in ("ssim", "psnr", "nmse"):
        assert entry[m] == pytest.approx(ref["mean"][m], rel=rel), (label, m)


def test_combined_table_unique_labels_and_direct_metrics(ckpts, fm_data, tmp_path):
    data, files = fm_data
    out = tmp_path / "o"
    cks = [ckpts["varnet_a"], ckpts["varnet_b"], ckpts["unet"]]
    assert _run(data, out, "--model", "zero-filled", "--checkpoint", *cks, acc=("4", "8")) == 0
    labels = ["zero-filled", "e2e-varnet (varnet_a)", "e2e-varnet (varnet_b)", "unet"]
    summary = _summary(out)
    # one entry per model and setting, models in the order given, zero-filled first
    assert [(s["model"], s["acceleration"], s["n_files"]) for s in summary] == [
        (m, a, 2) for m in labels for a in (4, 8)
    ]
    assert {s["model"]: s["weights"] for s in summary} == {
        "zero-filled": "none",
        "e2e-varnet (varnet_a)": "trained",
        "e2e-varnet (varnet_b)": "trained",
        "unet": "trained",
    }
    assert summary[2]["checkpoint"] == str(ckpts["varnet_a"])
    rows = _rows(out)
    assert len(rows) == 4 * 2 * 2  # models x settings x files
    assert open(out / "metrics.csv").readline().startswith(OLD_CSV + ",weights,checkpoint")
    md = (out / "summary.md").read_text()
    for label in labels:
        assert f"| {label} |" in md
    assert "x8 NMSE" in md and "Centre fraction 0.08" in md
    # the numbers are fastMRI's: its masks, its VarNet with the checkpoint's weights
    # (and its zero-filled operators), its evaluate.py, at both accelerations
    net = oracles.fastmri_varnet_from_fmrecon_checkpoint(ckpts["varnet_b"], **TINY_VARNET)
    for acc in (4, 8):
        for label, ref_net in (("zero-filled", None), (labels[2], net)):
            ref = _fastmri_reference(ref_net, data, files, tmp_path / f"ref{acc}{label}", acc)
            _assert_matches_fastmri(rows, summary, label, acc, ref)
    # the zero-filled row is the zero-filled-only run's
    zf = tmp_path / "zf"
    assert _run(data, zf, "--model", "zero-filled", "--no-figures", acc=("4", "8")) == 0
    assert _summary(zf) == summary[:2]
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "x4_cf0.08.png",
        "x8_cf0.08.png",
    ]


def test_labels_option(ckpts, fm_data, tmp_path, capsys):
    data, _ = fm_data
    out = tmp_path / "o"
    args = ["--checkpoint", ckpts["varnet_a"], ckpts["unet"], "--no-figures"]
    assert _run(data, out, *args, "--labels", "VN", "UN") == 0
    assert [s["model"] for s in _summary(out)] == ["VN", "UN"]
    # wrong count and duplicates are one-line errors
    assert _run(data, out, *args, "--labels", "VN") == 2
    assert _run(data, out, *args, "--labels", "X", "X") == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert "2 checkpoints" in err[0] and "unique" in err[1]


def test_fastmri_varnet_state_dicts(ckpts, fm_data, tmp_path, capsys):
    data, files = fm_data
    out = tmp_path / "o"
    cks = [ckpts["plain"], ckpts["lightning"]]
    assert _run(data, out, "--model", "e2e-varnet", "--checkpoint", *cks, "--no-figures") == 0
    summary = _summary(out)
    assert [s["model"] for s in summary] == [
        "e2e-varnet (plain_state_dict)",
        "e2e-varnet (lightning)",
    ]
    assert all(s["weights"] == "fastMRI state dict" for s in summary)
    for m in ("ssim", "psnr", "nmse"):  # same weights, same numbers
        assert summary[0][m] == summary[1][m]
    # fastMRI's VarNet, masks and evaluate.py give the same numbers
    ref = _fastmri_reference(ckpts["fastmri_net"], data, files, tmp_path / "ref")
    for label in ("e2e-varnet (plain_state_dict)", "e2e-varnet (lightning)"):
        _assert_matches_fastmri(_rows(out), summary, label, 4, ref)
    # without --model e2e-varnet a state dict is not recognised: one line, with the hint
    capsys.readouterr()
    assert _run(data, out, "--checkpoint", ckpts["plain"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model e2e-varnet" in err


def test_checkpoint_of_another_model_is_one_line_exit_2(ckpts, fm_data, tmp_path, capsys):
    data, _ = fm_data
    assert _run(data, tmp_path / "o", "--model", "unet", "--checkpoint", ckpts["varnet_a"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "holds model 'e2e-varnet', not 'unet'" in err


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "--checkpoint"),
        (["--model", "unet"], "needs --checkpoint"),
        (["--model", "zero-filled", "--labels", "a"], "give --checkpoint too"),
        (["--model", "zero-filled", "--figure-file", "nope.h5"], "--figure-file nope.h5"),
        (["--model", "zero-filled", "--figure-slice", "9"], "--figure-slice 9"),
        (["--model", "zero-filled", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_argument_errors(fm_data, tmp_path, capsys, args, message):
    data, _ = fm_data
    assert _run(data, tmp_path / "o", *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_random_init_encoder_is_flagged(ckpts, fm_data, tmp_path, capsys):
    data, _ = fm_data
    out = tmp_path / "o"
    assert _run(data, out, "--checkpoint", ckpts["fm"], "--no-figures") == 0
    err = capsys.readouterr().err  # shown even with --quiet
    assert "warning" in err and "random-init encoder" in err
    assert {s["weights"] for s in _summary(out)} == {RANDOM_ENCODER}
    assert {r["weights"] for r in _rows(out)} == {RANDOM_ENCODER}
    md = (out / "summary.md").read_text()
    assert "| fm-varnet-clip (random-init encoder) |" in md
    assert "**Warning**: fm-varnet-clip has a random-init encoder" in md.split("| Model")[0]


def test_file_batches_never_mix_files():
    index = [(0, 0, z) for z in range(3)] + [(1, 0, z) for z in range(2)]
    assert file_batches(index, 2) == [[0, 1], [2], [3, 4]]
    assert file_batches(index, 3) == [[0, 1, 2], [3, 4]]
    assert file_batches(index, 1) == [[i] for i in range(5)]


def test_batch_size_3_equals_1_and_bf16_runs(ckpts, fm_data, tmp_path):
    data, _ = fm_data  # files of different sizes: a batch mixing them could not be stacked
    cks = ["--checkpoint", ckpts["varnet_a"], ckpts["unet"], "--no-figures"]
    one, three, bf16 = tmp_path / "one", tmp_path / "three", tmp_path / "bf16"
    assert _run(data, one, *cks) == 0
    assert _run(data, three, *cks, "--batch-size", "3") == 0
    for a, b in zip(_rows(one), _rows(three), strict=True):
        assert (a["model"], a["file"]) == (b["model"], b["file"])
        for m in ("ssim", "psnr", "nmse"):
            assert float(a[m]) == pytest.approx(float(b[m]), rel=1e-4)
    assert _run(data, bf16, *cks, "--precision", "bf16") == 0
    for a, b in zip(_summary(one), _summary(bf16), strict=True):
        # bf16 (8-bit mantissa, 2^-8 = 3.9e-3) against fp32: measured |dSSIM| <= 1.3e-3
        # (native bf16 kernels, oneDNN limited to AVX2 or SSE4.1); allowed 5e-3 (4x)
        assert b["ssim"] == pytest.approx(a["ssim"], abs=5e-3)


def _panel(img, box):
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1]


def test_figures_rows_are_models(ckpts, cmrx_tree, tmp_path):
    """CMRxRecon convention: kspace 24x40 -> ranking crop 8x20; two model rows."""
    out = tmp_path / "o"
    args = ["--model", "zero-filled", "--checkpoint", ckpts["varnet_a"], ckpts["unet"]]
    args += ["--convention", "cmrxrecon", "--split", tmp_path / "split.json"]
    (tmp_path / "split.json").write_text(json.dumps({"train": [], "val": [], "test": ["P001"]}))
    assert _run(cmrx_tree, out, *args, mask=("cmrxrecon-uniform",), cf=()) == 0
    img = imread(out / "figures" / "x4.png")
    layout = figure_layout(2, (8, 20))
    assert img.shape[:2] == layout["size"][::-1]
    box = layout["boxes"]
    for col in (0, 3):  # target and zero-filled input: the same image in every row
        assert np.array_equal(_panel(img, box[(0, col)]), _panel(img, box[(1, col)]))
    for col in (1, 2):  # reconstruction and error map: one model per row
        assert not np.array_equal(_panel(img, box[(0, col)]), _panel(img, box[(1, col)]))
    assert _panel(img, box[(0, 0)]).std() > 0  # an image, not a blank panel
    # a frame the ranking does not score can be shown without changing the metrics
    out2 = tmp_path / "o2"
    extra = ["--figure-file", "P001/cine_sax.mat", "--figure-frame", "3", "--figure-slice", "0"]
    assert _run(cmrx_tree, out2, *args, *extra, mask=("cmrxrecon-uniform",), cf=()) == 0
    assert _rows(out2) == _rows(out)
    assert not np.array_equal(imread(out2 / "figures" / "x4.png"), img)


def test_zero_filled_only_path_writes_what_it_wrote(fm_data, tmp_path):
    data, files = fm_data
    out = tmp_path / "o"
    assert _run(data, out, "--model", "zero-filled") == 0
    assert open(out / "metrics.csv").readline().startswith(OLD_CSV)
    summary = _summary(out)
    assert [(s["model"], s["acceleration"], s["center_fraction"]) for s in summary] == [
        ("zero-filled", 4, 0.08)
    ]
    assert {"model", "acceleration", "center_fraction", "ssim", "psnr", "nmse", "n_files"} <= set(
        summary[0]
    )
    md = (out / "summary.md").read_text().split("\n")
    assert md[0] == f"Convention: fastmri; mask: equispaced-fraction; data: {data}"
    assert "| Model | x4 SSIM | x4 PSNR | x4 NMSE |" in md
    assert any(line.startswith("| zero-filled | ") for line in md)
    assert md[-2] == "Files per setting: 2."
    # figures: one row (zero-filled), its reconstruction panel = the input panel
    img = imread(out / "figures" / "x4_cf0.08.png")
    layout = figure_layout(1, (16, 16))
    assert img.shape[:2] == layout["size"][::-1]
    box = layout["boxes"]
    assert np.array_equal(_panel(img, box[(0, 1)]), _panel(img, box[(0, 3)]))
    assert not (tmp_path / "nofig" / "figures").exists()
    assert _run(data, tmp_path / "nofig", "--model", "zero-filled", "--no-figures") == 0
    assert not (tmp_path / "nofig" / "figures").exists()


def test_comparison_figure_from_python(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.random((30, 20)).astype(np.float32)
    recons = {f"m{i}": target + 0.05 * i * rng.random((30, 20)) for i in range(3)}
    path = write_comparison_figure(tmp_path / "f.png", target, recons, target * 0.5, title="t")
    img = imread(path)
    layout = figure_layout(3, (30, 20))
    assert img.shape[:2] == layout["size"][::-1]
    box = layout["boxes"]
    assert np.array_equal(_panel(img, box[(0, 0)]), _panel(img, box[(2, 0)]))
    # m0 is the target itself: its error panel is uniform (all zero)
    err = _panel(img, box[(0, 2)])
    assert np.all(err == err[0, 0]) and not np.all(_panel(img, box[(2, 2)]) == err[0, 0])


@pytest.mark.parametrize("convention", ["full-volume", "full-per-image"])
def test_full_conventions_figure_panels_are_uncropped(convention):
    """kx 24 < ky 40: the figure shows the whole 24x40 image (fastmri would show 24x40
    too, cropped to (W, W) clipped to the image; cmrxrecon its 8x20 ranking crop)."""
    from fmrecon.evaluation.evaluate import convention_crop

    rng = np.random.default_rng(0)
    target, recon = rng.random((24, 40)), rng.random((24, 40))
    tgt, out = convention_crop(target, {"m": recon}, convention)
    assert tgt.shape == (24, 40) and out["m"].shape == (24, 40)
    # the whole images, unchanged (float32 copies)
    np.testing.assert_array_equal(tgt, target.astype(np.float32))
    np.testing.assert_array_equal(out["m"], recon.astype(np.float32))
    # a fastMRI file: 16x16 stored target, 32x24 k-space image -> the target's size,
    # the image's centre (fastMRI center_crop: start ((32 - 16) // 2, (24 - 16) // 2)
    # = (8, 4)): a marker at image (8 + 3, 4 + 5) lands at (3, 5) of the panel
    image = np.zeros((32, 24))
    image[8 + 3, 4 + 5] = 7.0
    tgt, out = convention_crop(target[:16, :16], {"m": image}, convention)
    assert tgt.shape == (16, 16) and out["m"].shape == (16, 16)
    np.testing.assert_array_equal(tgt, target[:16, :16].astype(np.float32))
    assert out["m"][3, 5] == 7.0 and np.count_nonzero(out["m"]) == 1
    # cmrxrecon's ranking crop of a 22x40 matrix: round(22/3) x round(40/2) = 7x20 at
    # ESPIRiT crop.m's start (22 // 2 - 7 // 2, 40 // 2 - 20 // 2) = (8, 10), not
    # fastMRI's (7, 10): a marker at (8 + 1, 10 + 2) lands at (1, 2)
    image = np.zeros((22, 40))
    image[8 + 1, 10 + 2] = 7.0
    tgt, out = convention_crop(rng.random((22, 40)), {"m": image}, "cmrxrecon")
    assert tgt.shape == out["m"].shape == (7, 20)
    assert out["m"][1, 2] == 7.0 and np.count_nonzero(out["m"]) == 1
