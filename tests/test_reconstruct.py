"""`fmrecon reconstruct` end to end: CMRxRecon submissions, fastMRI
reconstructions, previews and bad input, on tiny files in the real formats.

Content checks use the zero-filled model, whose output is known by hand
(RSS of the inverse FFT of the masked k-space), and a tiny E2E-VarNet whose
output is compared with calling the model directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.io import loadmat, whosmat

from conftest import random_kspace, write_cmrx, write_fastmri
from fmrecon.cli import main
from fmrecon.data.formats import inspect_file
from fmrecon.data.h5io import write_mat73
from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.inference.reconstruct import reconstruct_volume
from fmrecon.inference.writers import submission_array
from fmrecon.models.io import load_model, save_model
from fmrecon.models.registry import create_model
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c
from fmrecon.physics.masks import create_mask

SUB = Path("MultiCoil/Cine/TrainingSet")


def _zero_filled_ckpt(tmp_path: Path) -> Path:
    return save_model(create_model("zero-filled"), tmp_path / "zf.ckpt")


def _run(*argv) -> int:
    return main(["reconstruct", *map(str, argv)])


def _cmrx_kspace(path: Path, key: str) -> np.ndarray:
    """A CMRxRecon file's k-space as (t, z, coil, kx, ky) complex64."""
    with h5py.File(path, "r") as f:
        raw = f[key][()]
    k = (raw["real"] + 1j * raw["imag"]).astype(np.complex64)  # (t, z, c, ky, kx)
    return np.swapaxes(k, -1, -2)


def _read_submission(path: Path) -> np.ndarray:
    """img4ranking as MATLAB and scipy see it, (sx, sy, sz, t)."""
    assert path.read_bytes()[:19] == b"MATLAB 5.0 MAT-file"  # what MATLAB's save writes (v7)
    assert [v[0] for v in whosmat(path)] == ["img4ranking"]
    data = loadmat(path)["img4ranking"]
    assert data.dtype == np.float32  # MATLAB single
    return data


def _provenance(path: Path) -> dict:
    """The attributes of a submission: its sibling JSON (a v5 .mat has none)."""
    return json.loads(path.with_name(path.name + ".json").read_text())


@pytest.fixture
def sim_data(tmp_path) -> Path:
    """One simulated cine subject, kx=48 ky=40, 3 slices, 4 frames, 3 coils,
    with the official undersampled copies (kspace_subRR + masks)."""
    simulate_cmrxrecon(
        tmp_path / "data",
        1,
        size=(48, 40),
        n_slices=3,
        n_frames=4,
        n_coils=3,
        undersampled=True,
        lax=False,
    )
    return tmp_path / "data"


def test_submission_from_undersampled_file_is_the_ranking_reduction(sim_data, tmp_path, capsys):
    ckpt = _zero_filled_ckpt(tmp_path)
    out = tmp_path / "out"
    src = sim_data / SUB / "AccFactor04" / "P001" / "cine_sax.mat"
    assert _run("--checkpoint", ckpt, sim_data / SUB / "AccFactor04", "--out", out, "--png") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    sub = out / SUB / "AccFactor04" / "P001" / "cine_sax.mat"  # mirrors below MultiCoil
    assert lines[0].startswith(f"wrote {sub}: img4ranking single (sx, sy, sz, t) = (16, 20, 2, 3)")
    # the preview: the full field of view (kx 48 x ky 40) of the 6 ranking images
    assert lines[1] == f"wrote {sub.with_suffix('.png')}: preview, full field of view 48 x 40"
    assert lines[-1].startswith("reconstructed 6 images of 1 file") and len(lines) == 3
    assert sub.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    got = _read_submission(sub)
    # by hand: zero-filled = RSS(ifft2c(masked k-space)); the file is already masked.
    # run4Ranking.m: slices round(3/2)-1:round(3/2) (1-based) = 0, 1; frames 1:3;
    # crop round(48/3) x round(40/2) = 16 x 20 from floor(48/2)-8 = 16, floor(40/2)-10 = 10
    k = _cmrx_kspace(src, "kspace_sub04")
    img = rss(ifft2c(k), dim=2)  # (t, z, kx, ky)
    expected = img[:3, 0:2, 16:32, 10:30].transpose(2, 3, 1, 0)
    assert got.shape == (16, 20, 2, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * expected.max())
    attrs = _provenance(sub)
    assert attrs["fmrecon_model"] == "zero-filled"
    assert attrs["fmrecon_checkpoint"] == str(ckpt)
    assert attrs["fmrecon_content"] == "ranking"
    assert attrs["fmrecon_file"]["dims"] == {"sx": 16, "sy": 20, "sz": 2, "t": 3}
    assert "fmrecon_warning" not in attrs
    header = loadmat(sub)["__header__"].decode()
    assert header.startswith("MATLAB 5.0 MAT-file, fmrecon") and "zero-filled" in header


def test_fully_sampled_with_mask_and_full_volume(cmrx_tree, tmp_path, capsys):
    ckpt = _zero_filled_ckpt(tmp_path)
    out = tmp_path / "out"
    argv = ["--checkpoint", ckpt, cmrx_tree, "--out", out, "--full-volume", "--quiet"]
    assert _run(*argv, "--mask", "cmrxrecon-uniform", "--acceleration", 8) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mat"))
    # simulated undersampling of FullSample goes where R=8 data lives, AccFactor08
    assert written == [
        "MultiCoil/Cine/TrainingSet/AccFactor04/P001/cine_sax.mat",
        "MultiCoil/Cine/TrainingSet/AccFactor08/P001/cine_sax.mat",
        "MultiCoil/Cine/TrainingSet/AccFactor08/P002/cine_sax.mat",
        "MultiCoil/Cine/TrainingSet/AccFactor08/P003/cine_sax.mat",
        "MultiCoil/Mapping/TrainingSet/AccFactor08/P001/T1map.mat",
    ]
    got = _read_submission(out / SUB / "AccFactor08" / "P002" / "cine_sax.mat")
    k = _cmrx_kspace(cmrx_tree / SUB / "FullSample" / "P002" / "cine_sax.mat", "kspace_full")
    mask = create_mask("cmrxrecon-uniform", 8)((24, 40))
    expected = rss(ifft2c(k * mask), dim=2).transpose(2, 3, 1, 0)  # (sx, sy, sz, t)
    assert got.shape == (24, 40, 2, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * expected.max())
    t1 = out / "MultiCoil/Mapping/TrainingSet/AccFactor08/P001/T1map.mat"
    assert _read_submission(t1).shape == (24, 40, 2, 9)
    # the already undersampled file keeps its own mask, whatever --mask says
    got = _read_submission(out / SUB / "AccFactor04" / "P001" / "cine_sax.mat")
    k = _cmrx_kspace(cmrx_tree / SUB / "AccFactor04" / "P001" / "cine_sax.mat", "kspace_sub04")
    np.testing.assert_allclose(got, rss(ifft2c(k), dim=2).transpose(2, 3, 1, 0), rtol=1e-5)

    # ranking reduction of mapping: all 9 weightings, both slices (sz < 3), 8 x 20 crop
    mapping = cmrx_tree / "MultiCoil" / "Mapping"
    assert (
        _run(
            "--checkpoint",
            ckpt,
            mapping,
            "--out",
            tmp_path / "o2",
            "--quiet",
            "--mask",
            "cmrxrecon-uniform",
            "--acceleration",
            4,
        )
        == 0
    )
    path = tmp_path / "o2" / "MultiCoil/Mapping/TrainingSet/AccFactor04/P001/T1map.mat"
    assert _read_submission(path).shape == (8, 20, 2, 9)


def test_output_path_without_multicoil_folder(tmp_path, capsys):
    ckpt = _zero_filled_ckpt(tmp_path)
    mask = np.zeros((24, 40), dtype=bool)
    mask[:, ::4] = True
    for subj in ("P001", "P002"):
        folder = tmp_path / "flat" / subj
        kspace = random_kspace((24, 40, 2, 3, 4)) * mask[..., None, None, None]
        write_cmrx(folder / "cine_lax.mat", kspace, "kspace_sub04")
        write_mat73(folder / "cine_lax_mask.mat", {"mask04": mask.astype(np.float64)})
    # a folder: paths relative to it (file names alone would collide)
    assert _run("--checkpoint", ckpt, tmp_path / "flat", "--out", tmp_path / "o", "--quiet") == 0
    assert sorted(
        p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*") if p.is_file()
    ) == [f"P00{i}/cine_lax.mat{ext}" for i in (1, 2) for ext in ("", ".json")]
    # a file: its name
    one = tmp_path / "flat" / "P002" / "cine_lax.mat"
    assert _run("--checkpoint", ckpt, one, "--out", tmp_path / "o1", "--quiet") == 0
    names = sorted(p.name for p in (tmp_path / "o1").iterdir())
    assert names == ["cine_lax.mat", "cine_lax.mat.json"]
    # 3 slices: the central two are 0-based 0 and 1 (MATLAB round(1.5) = 2)
    assert _read_submission(tmp_path / "o1" / "cine_lax.mat").shape == (8, 20, 2, 3)


def test_fastmri_outputs_cropped_to_recon_space(tmp_path, capsys):
    ckpt = _zero_filled_ckpt(tmp_path)
    data = tmp_path / "multicoil_val"
    k_val = random_kspace((2, 3, 32, 24), 1)
    write_fastmri(data / "file_val.h5", k_val, crop=(16, 24), patient_id="abc")
    # a test file: k-space already undersampled, with its own mask (W,)
    lines = np.zeros(24, dtype=bool)
    lines[::3] = True
    lines[11:13] = True
    k_test = random_kspace((3, 3, 32, 24), 2) * lines
    write_fastmri(data / "file_test.h5", k_test, crop=(16, 24))
    with h5py.File(data / "file_test.h5", "a") as f:
        f.create_dataset("mask", data=lines)
    # no ISMRMRD header: the crop falls back to reconstruction_rss's size
    write_fastmri(
        data / "file_nohdr.h5", random_kspace((1, 2, 32, 24), 3), crop=(12, 20), header=False
    )
    out = tmp_path / "out"
    argv = ["--checkpoint", ckpt, data, "--out", out, "--png", "--quiet"]
    assert (
        _run(*argv, "--mask", "equispaced-fraction", "--acceleration", 4, "--center-fraction", 0.08)
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "file_nohdr.h5",
        "file_nohdr.png",
        "file_test.h5",
        "file_test.png",
        "file_val.h5",
        "file_val.png",
    ]

    # the simulated mask is seeded per file as evaluation does (fastMRI's seed)
    mask = create_mask("equispaced-fraction", 4, center_fraction=0.08)(
        (1, 32, 24), seed=tuple(map(ord, "file_val.h5"))
    )[0]
    expected = rss(ifft2c(k_val * mask), dim=1)[:, 8:24, :]  # reconSpace 16 x 24, rows 8:24
    with h5py.File(out / "file_val.h5", "r") as f:
        rec = f["reconstruction"]
        assert rec.dtype == np.float32 and rec.shape == (2, 16, 24)
        np.testing.assert_allclose(rec[()], expected, rtol=1e-5, atol=1e-6 * expected.max())
        assert f.attrs["patient_id"] == "abc" and f.attrs["acquisition"] == "AXT1"
        assert f.attrs["fmrecon_model"] == "zero-filled"
        assert f.attrs["fmrecon_mask"] == "equispaced-fraction R=4 cf=0.08"
    with h5py.File(out / "file_test.h5", "r") as f:
        expected = rss(ifft2c(k_test), dim=1)[:, 8:24, :]
        np.testing.assert_allclose(f["reconstruction"][()], expected, rtol=1e-5)
        assert f.attrs["fmrecon_mask"].startswith("file mask")
    with h5py.File(out / "file_nohdr.h5", "r") as f:
        assert f["reconstruction"].shape == (1, 12, 20)
    # only the test file can run without --mask
    assert _run("--checkpoint", ckpt, data / "file_test.h5", "--out", out, "--quiet") == 0


def test_tiny_varnet_output_matches_fastmri_varnet_on_the_ranking_slices(sim_data, tmp_path):
    """A VarNet of the fastmri package (``fastmri.models.VarNet``), saved as a
    state dict: the submission equals fastMRI's forward of the file's k-space
    and mask (read with h5py), reduced by run4Ranking.m's rule (tests/oracles.py)."""
    from fastmri.models import VarNet as FastmriVarNet

    import oracles

    torch.manual_seed(0)
    net = FastmriVarNet(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2).eval()
    ckpt = tmp_path / "vn.pt"
    torch.save(net.state_dict(), ckpt)
    src = sim_data / SUB / "AccFactor08" / "P001" / "cine_sax.mat"
    out = tmp_path / "out"
    argv = ["--checkpoint", ckpt, "--model", "e2e-varnet", src, "--out", out, "--batch-size", 3]
    assert _run(*argv, "--device", "cpu", "--quiet", "--format", "mat", "nifti") == 0
    got = _read_submission(out / SUB / "AccFactor08" / "P001" / "cine_sax.mat")

    k = _cmrx_kspace(src, "kspace_sub08")  # (t, z, coil, kx, ky), already masked
    with h5py.File(src.with_name("cine_sax_mask.mat"), "r") as f:
        lines = f["mask08"][()].T.astype(bool)[0]  # (kx, ky) -> the ky lines
    t, z = k.shape[:2]
    rec = oracles.fastmri_varnet_recon(net, k.reshape(t * z, *k.shape[2:]), lines)
    rec = rec.reshape(t, z, *rec.shape[-2:])
    expected = oracles.submission_reduce(rec, "cine_sax")
    assert got.shape == expected.shape == (16, 20, 2, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    # NIfTI beside it: the whole volume (x, y, z, t)
    vol = nib.load(out / SUB / "AccFactor08" / "P001" / "cine_sax.nii.gz").get_fdata()
    expected = rec.transpose(2, 3, 1, 0)
    np.testing.assert_allclose(vol, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())

    # the Python API: chosen frames/slices in the order asked for; bf16 autocast runs
    loaded = load_model(ckpt, model_name="e2e-varnet")
    info = inspect_file(src)
    vol = reconstruct_volume(loaded, info, frames=[2, 0], slices=[1], batch_size=2)
    assert vol.shape == (2, 1, 48, 40)
    np.testing.assert_allclose(vol[:, 0], rec[[2, 0], 1], rtol=1e-4, atol=1e-5 * vol.max())
    assert submission_array(vol).shape == (16, 20, 1, 2)
    low = reconstruct_volume(loaded, info, frames=[0], slices=[0], precision="bf16")
    assert low.shape == (1, 1, 48, 40) and np.isfinite(low).all()
    err = np.abs(low[0, 0] - rec[0, 0]).max() / rec[0, 0].max()
    assert 0 < err < 0.05  # bf16: close to fastMRI's fp32 images, not identical


def test_random_init_encoder_is_flagged(sim_data, tmp_path, capsys):
    from fmrecon.encoders import TINY_OVERRIDES

    model = create_model(
        "fm-unetr-clip",
        feature_layers=(2, 3, 4, 6),
        feature_size=4,
        encoder_weights="random",
        allow_random_encoder=True,
        encoder_config=TINY_OVERRIDES["clip"],
    )
    ckpt = save_model(model, tmp_path / "fm.ckpt")
    out = tmp_path / "out"
    src = sim_data / SUB / "AccFactor10"
    assert _run("--checkpoint", ckpt, src, "--out", out, "--quiet", "--png") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and "random-init" in err[0]
    attrs = _provenance(out / SUB / "AccFactor10" / "P001" / "cine_sax.mat")
    assert attrs["fmrecon_encoder_weights"] == "random-init"
    assert "random-init" in attrs["fmrecon_warning"]
    assert attrs["fmrecon_model"] == "fm-unetr-clip"
    assert (out / SUB / "AccFactor10" / "P001" / "cine_sax.png").exists()


def _remove_mask(root: Path) -> None:
    (root / SUB / "AccFactor04" / "P001" / "cine_sax_mask.mat").unlink()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing checkpoint", "file not found"),
        ("other model", "holds model 'zero-filled', not 'e2e-varnet'"),
        ("no checkpoint", "--checkpoint CKPT is required"),
        ("mask file given", "a mask file"),
        ("h5 without kspace", "missing key 'kspace'"),
        ("no mask file", "without its mask file cine_sax_mask.mat"),
        ("full without mask", "needs a mask to simulate undersampling"),
        ("unknown mask", "unknown mask kind 'sparse'"),
        ("mask without acceleration", "needs --acceleration"),
        ("overwrite input", "would overwrite an input"),
    ],
)
def test_bad_input_is_one_line_exit_2(case, message, cmrx_tree, tmp_path, capsys):
    ckpt = _zero_filled_ckpt(tmp_path)
    acc04 = cmrx_tree / SUB / "AccFactor04"
    full = cmrx_tree / SUB / "FullSample" / "P001" / "cine_sax.mat"
    out = tmp_path / "out"
    argv = {
        "missing checkpoint": ["--checkpoint", tmp_path / "nope.ckpt", acc04],
        "other model": ["--checkpoint", ckpt, "--model", "e2e-varnet", acc04],
        "no checkpoint": ["--model", "unet", acc04],
        "mask file given": ["--checkpoint", ckpt, acc04 / "P001" / "cine_sax_mask.mat"],
        "h5 without kspace": ["--checkpoint", ckpt, tmp_path / "empty.h5"],
        "no mask file": ["--checkpoint", ckpt, acc04],
        "full without mask": ["--checkpoint", ckpt, full],
        "unknown mask": ["--checkpoint", ckpt, full, "--mask", "sparse", "--acceleration", 4],
        "mask without acceleration": ["--checkpoint", ckpt, full, "--mask", "cmrxrecon-uniform"],
        "overwrite input": ["--checkpoint", ckpt, acc04],
    }[case]
    if case == "h5 without kspace":
        with h5py.File(tmp_path / "empty.h5", "w") as f:
            f.create_dataset("image", data=np.zeros((2, 8, 8), dtype=np.float32))
    if case == "no mask file":
        _remove_mask(cmrx_tree)
    if case == "overwrite input":
        out = tmp_path  # the mirrored path is the input itself
    capsys.readouterr()
    before = _tree(tmp_path)  # the inputs, the checkpoint and any earlier output
    assert _run(*argv, "--out", out, "--quiet") == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fmrecon reconstruct: error: "), captured.err
    assert message in err[0]
    assert captured.out == ""
    # nothing written anywhere (no output, no temporary, no folder) and nothing changed
    assert _tree(tmp_path) == before


def _tree(root: Path) -> dict:
    """Every file and folder under ``root``: relative path -> bytes (None for folders)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }
