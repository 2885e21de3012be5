"""The simulator: real file formats (exact keys, dims, dtypes), determinism,
anatomy and physics sanity, official masks, and the ``fmrecon simulate`` verb."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest

from fmrecon.cli import main
from fmrecon.data import simulate as sim
from fmrecon.data.simulate import brain as sim_brain
from fmrecon.data.simulate import common as sim_common
from fmrecon.errors import ConfigError, DataError
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c

KX, KY = 48, 36  # small cardiac matrix (ky >= 26 for the 24 ACS lines)
T, Z, C = 4, 2, 4
ACC = (4, 8)
BRAIN = (64, 40)  # brain k-space (H incl. 2x oversampling, W)
NS = "{http://www.ismrm.org/ISMRMRD}"


@pytest.fixture(scope="module")
def cmrx(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("cmrx")
    paths = sim.simulate_cmrxrecon(
        out,
        2,
        seed=3,
        size=(KX, KY),
        n_slices=Z,
        n_frames=T,
        n_coils=C,
        accelerations=ACC,
        undersampled=True,
    )
    return out, paths


@pytest.fixture(scope="module")
def brain(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("brain")
    paths = sim.simulate_fastmri_brain(out, 2, seed=3, size=BRAIN, n_slices=3, n_coils=6)
    return out, paths


def _read_complex(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        raw = f[key][()]
    return raw["real"] + 1j * raw["imag"]


def _official_lines(ny: int, r: int) -> set[int]:
    return set(range(0, ny, r)) | set(range(ny // 2 - 12, ny // 2 + 12))


# --------------------------------------------------------------------------- CMRxRecon files


def test_cmrxrecon_layout(cmrx):
    out, paths = cmrx
    base = out / "MultiCoil" / "Cine" / "TrainingSet"
    expected = set()
    for subj in ("P001", "P002"):
        for view in ("sax", "lax"):
            expected.add(base / "FullSample" / subj / f"cine_{view}.mat")
            for r in ACC:
                expected.add(base / f"AccFactor{r:02d}" / subj / f"cine_{view}.mat")
                expected.add(base / f"AccFactor{r:02d}" / subj / f"cine_{view}_mask.mat")
    assert set(paths) == expected
    assert all(p.is_file() for p in paths)
    # nothing else (no temporary files) was left behind
    assert {p for p in out.rglob("*") if p.is_file()} == expected


def test_cmrxrecon_full_file_format(cmrx):
    out, _ = cmrx
    base = out / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample" / "P001"
    for view, nz in (("sax", Z), ("lax", sim.LAX_VIEWS)):
        path = base / f"cine_{view}.mat"
        assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
        with h5py.File(path, "r") as f:
            assert list(f.keys()) == ["kspace_full"]
            ds = f["kspace_full"]
            # MATLAB (kx, ky, coil, slice, time) -> h5py (time, slice, coil, ky, kx)
            assert ds.shape == (T, nz, C, KY, KX)
            assert ds.dtype.names == ("real", "imag")
            assert ds.dtype["real"] == np.float32 and ds.dtype["imag"] == np.float32
            assert ds.attrs["MATLAB_class"] == b"single"
            k = ds[()]
        assert np.isfinite(k["real"]).all() and np.abs(k["real"]).max() > 0


def test_cmrxrecon_masks_and_undersampled(cmrx):
    out, _ = cmrx
    base = out / "MultiCoil" / "Cine" / "TrainingSet"
    for view in ("sax", "lax"):
        full = _read_complex(base / "FullSample" / "P002" / f"cine_{view}.mat", "kspace_full")
        for r in ACC:
            folder = base / f"AccFactor{r:02d}" / "P002"
            with h5py.File(folder / f"cine_{view}_mask.mat", "r") as f:
                assert list(f.keys()) == [f"mask{r:02d}"]
                mask = f[f"mask{r:02d}"][()]
            assert mask.shape == (KY, KX)  # MATLAB (kx, ky)
            assert mask.dtype == np.float64
            assert set(np.unique(mask)) == {0.0, 1.0}
            assert (mask == mask[:, :1]).all()  # whole readout lines
            assert set(np.nonzero(mask[:, 0])[0].tolist()) == _official_lines(KY, r)
            with h5py.File(folder / f"cine_{view}.mat", "r") as f:
                assert list(f.keys()) == [f"kspace_sub{r:02d}"]
                assert f[f"kspace_sub{r:02d}"].shape == full.shape
            sub = _read_complex(folder / f"cine_{view}.mat", f"kspace_sub{r:02d}")
            np.testing.assert_array_equal(sub, full * mask)


def test_cmrxrecon_mask_helper_official():
    for ny, r in ((246, 4), (204, 8), (162, 10), (36, 4)):
        m = sim.cmrxrecon_mask(10, ny, r)
        assert m.shape == (10, ny)
        assert set(np.nonzero(m[0])[0].tolist()) == _official_lines(ny, r)


def test_cmrxrecon_deterministic(cmrx, tmp_path):
    out, paths = cmrx
    again = sim.simulate_cmrxrecon(
        tmp_path,
        2,
        seed=3,
        size=(KX, KY),
        n_slices=Z,
        n_frames=T,
        n_coils=C,
        accelerations=ACC,
        undersampled=True,
    )
    for a, b in zip(paths, again, strict=True):
        assert a.relative_to(out) == b.relative_to(tmp_path)
        with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
            for key in fa:
                assert fa[key][()].tobytes() == fb[key][()].tobytes()


def test_subject_independent_of_count_and_seed_changes_data():
    a = sim.simulate_cardiac_subject(1, 5, size=(KX, KY), n_slices=Z, n_frames=T, n_coils=C)
    b = sim.simulate_cardiac_subject(1, 5, size=(KX, KY), n_slices=Z, n_frames=T, n_coils=C)
    c = sim.simulate_cardiac_subject(1, 6, size=(KX, KY), n_slices=Z, n_frames=T, n_coils=C)
    d = sim.simulate_cardiac_subject(2, 5, size=(KX, KY), n_slices=Z, n_frames=T, n_coils=C)
    assert a["kspace"].tobytes() == b["kspace"].tobytes()
    assert a["kspace"].dtype == np.complex64 and a["kspace"].shape == (T, Z, C, KX, KY)
    for other in (c, d):
        assert not np.allclose(np.abs(a["image"]), np.abs(other["image"]), atol=1e-5)
        assert not np.allclose(a["maps"], other["maps"], atol=1e-3)


def test_value_scale_like_cmrxrecon():
    s = sim.simulate_cardiac_subject(0, 0, size=(KX, KY), n_slices=Z, n_frames=T, n_coils=C)
    img = rss(ifft2c(s["kspace"]), dim=2)
    assert 1e-4 < img.max() < 2e-3


# --------------------------------------------------------------------------- anatomy and physics


def test_heart_contracts_and_slices_differ():
    img, labels = sim.cardiac_phantom((96, 72), 3, 8, seed=1, return_labels=True)
    assert img.shape == (8, 3, 96, 72) and img.dtype == np.complex64
    assert labels.shape == img.shape
    lv = (labels == sim.LABELS["lv_blood"]).sum(axis=(-2, -1))  # (T, Z)
    myo = (labels == sim.LABELS["lv_myocardium"]).sum(axis=(-2, -1))
    es = int(np.argmax(sim.cardiac_curve(np.arange(8) / 8)))
    for z in range(3):
        assert lv[0, z] > 0
        assert lv[es, z] < 0.75 * lv[0, z]  # blood pool shrinks in systole
        assert lv[es, z] == lv[:, z].min() and lv[0, z] == lv[:, z].max()
        assert myo[es, z] > 0.8 * myo[0, z]  # myocardium (about) conserved: it thickens
    assert lv[0, 0] > lv[0, 2]  # base larger than apex
    # the blood pool is bright and the lungs dark in the image itself
    mag = np.abs(img[0])
    blood = mag[labels[0] == sim.LABELS["lv_blood"]].mean()
    lung = mag[labels[0] == sim.LABELS["lung"]].mean()
    myocardium = mag[labels[0] == sim.LABELS["lv_myocardium"]].mean()
    assert blood > 2 * myocardium > 4 * lung
    # the body is surrounded by air
    assert mag[:, 0, :].max() == 0 and mag[:, :, 0].max() == 0


def test_lax_phantom_has_beating_chambers():
    img, labels = sim.cardiac_phantom((96, 72), 3, 6, seed=2, view="lax", return_labels=True)
    lv = (labels == sim.LABELS["lv_blood"]).sum(axis=(-2, -1))
    assert (lv[2] < 0.8 * lv[0]).all()
    assert (labels[:, 2] == sim.LABELS["rv_blood"]).any()  # 4-chamber view has an RV
    assert not (labels[:, 0] == sim.LABELS["rv_blood"]).any()  # 2-chamber view has none


def test_anatomy_varies_between_subjects():
    a = sim.sample_cardiac_anatomy(sim_common._rng(0, "cmrx", 0, "anatomy"))
    b = sim.sample_cardiac_anatomy(sim_common._rng(0, "cmrx", 1, "anatomy"))
    assert a["torso"] != b["torso"] and a["heart"] != b["heart"]
    assert a["intensity"]["myocardium"] != b["intensity"]["myocardium"]


def test_coil_maps_smooth_varying_and_flat_rss():
    maps = sim.coil_maps(
        (96, 72), 10, pixel=40 / 96, body_axes=(15.0, 10.5), z=(-1.0, 0.0, 1.0), seed=4
    )
    assert maps.shape == (3, 10, 96, 72) and maps.dtype == np.complex64
    # smooth: small changes from pixel to pixel, tiny curvature
    m = maps.astype(np.complex128)
    peak = np.abs(m).max(axis=(-2, -1))
    for axis in (-2, -1):
        assert (np.abs(np.diff(m, axis=axis)).max(axis=(-2, -1)) < 0.12 * peak).all()
    lap = m[..., 2:, 1:-1] + m[..., :-2, 1:-1] + m[..., 1:-1, 2:] + m[..., 1:-1, :-2]
    lap = np.abs(lap - 4 * m[..., 1:-1, 1:-1]).mean(axis=(-2, -1))
    assert (lap < 0.02 * np.abs(m).mean(axis=(-2, -1))).all()
    # vary across coils: peaks in different places, magnitudes not alike
    mag = np.abs(maps[1])
    peaks = {np.unravel_index(np.argmax(m), m.shape) for m in mag}
    assert len(peaks) >= 8
    flat = mag.reshape(10, -1)
    corr = np.corrcoef(flat)
    assert corr[~np.eye(10, dtype=bool)].min() < 0.5
    # slices see different profiles
    assert not np.allclose(np.abs(maps[0]), np.abs(maps[2]), atol=1e-3)
    # sum of |S|^2 reasonably flat inside the body
    x, y = sim_common._grid(96, 72, 40 / 96)
    body = (x / 15.0) ** 2 + (y / 10.5) ** 2 < 1
    weight = np.sqrt((np.abs(maps) ** 2).sum(axis=1))[:, body]
    assert abs(weight.mean() - 1) < 0.05
    assert weight.min() > 0.6 and weight.max() < 1.6


def test_rss_matches_phantom_weighting():
    s = sim.simulate_cardiac_subject(
        0, 1, size=(KX, KY), n_slices=Z, n_frames=T, n_coils=C, noise=0.0
    )
    expected = np.abs(s["image"]) * np.sqrt((np.abs(s["maps"]) ** 2).sum(axis=1))[None]
    got = rss(ifft2c(s["kspace"]), dim=2)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * expected.max())
    noisy = sim.simulate_cardiac_subject(0, 1, size=(KX, KY), n_slices=Z, n_frames=T, n_coils=C)
    assert np.array_equal(noisy["image"], s["image"])
    got = rss(ifft2c(noisy["kspace"]), dim=2)
    body = s["labels"] > 0
    rel = np.abs(got - expected)[body].mean() / expected[body].mean()
    assert 0.005 < rel < 0.1  # noise present but small
    # noise standard deviation in the k-space corners matches the setting
    corner = noisy["kspace"][..., :6, :6] - s["kspace"][..., :6, :6]
    assert np.std(corner) == pytest.approx(sim.NOISE * sim.IMAGE_SCALE, rel=0.15)


# --------------------------------------------------------------------------- fastMRI brain


def test_fastmri_file_format(brain):
    out, paths = brain
    assert [p.relative_to(out).as_posix() for p in paths] == [
        "multicoil_val/file_brain_AXT1_sim_0001.h5",
        "multicoil_val/file_brain_AXT1_sim_0002.h5",
    ]
    h, w = BRAIN
    with h5py.File(paths[0], "r") as f:
        assert set(f.keys()) == {"kspace", "reconstruction_rss", "ismrmrd_header"}
        assert f["kspace"].shape == (3, 6, h, w) and f["kspace"].dtype == np.complex64
        assert f["reconstruction_rss"].shape == (3, h // 2, w)
        assert f["reconstruction_rss"].dtype == np.float32
        kspace = f["kspace"][()]
        target = f["reconstruction_rss"][()]
        attrs = dict(f.attrs)
        header = f["ismrmrd_header"][()]
    assert attrs["acquisition"] == "AXT1"
    assert isinstance(attrs["patient_id"], str) and attrs["patient_id"]
    assert attrs["max"] == pytest.approx(float(target.max()))
    assert attrs["norm"] == pytest.approx(float(np.linalg.norm(target)), rel=1e-6)
    # reconstruction_rss = centre crop of the RSS of the fully sampled k-space
    full = rss(ifft2c(kspace), dim=1)
    top = (h - h // 2) // 2
    np.testing.assert_allclose(target, full[:, top : top + h // 2, :], rtol=1e-5, atol=1e-9)
    # ISMRMRD header as the fastMRI reader parses it
    enc = ET.fromstring(header).find(f"{NS}encoding")
    assert int(enc.find(f"{NS}encodedSpace/{NS}matrixSize/{NS}x").text) == h
    assert int(enc.find(f"{NS}encodedSpace/{NS}matrixSize/{NS}y").text) == w
    assert int(enc.find(f"{NS}reconSpace/{NS}matrixSize/{NS}x").text) == h // 2
    assert int(enc.find(f"{NS}reconSpace/{NS}matrixSize/{NS}y").text) == w
    lim = enc.find(f"{NS}encodingLimits/{NS}kspace_encoding_step_1")
    assert int(lim.find(f"{NS}minimum").text) == 0
    assert int(lim.find(f"{NS}maximum").text) == w - 1
    assert int(lim.find(f"{NS}center").text) == w // 2
    # the other file is a different subject
    with h5py.File(paths[1], "r") as f:
        assert f.attrs["patient_id"] != attrs["patient_id"]
        assert not np.allclose(f["reconstruction_rss"][()], target)


def test_brain_phantom_oversampled_fov_and_anatomy():
    img = sim.brain_phantom((128, 64), 4, seed=0, phase=False)
    assert img.shape == (4, 128, 64) and img.dtype == np.complex64
    mag = np.abs(img)
    # 2x readout oversampling: nothing outside the central half of the rows
    assert mag[:, :32].max() == 0 and mag[:, 96:].max() == 0
    assert (mag[:, 32:96].reshape(4, -1) > 0.5 * sim.IMAGE_SCALE).sum(axis=1).min() > 200
    # a head: bright tissue in the middle, dark air in the corners of the target
    assert mag[:, 64, 32].min() > 0.1 * sim.IMAGE_SCALE
    assert mag[:, 33, 1].max() == 0
    # slices from different levels differ
    assert not np.allclose(mag[0], mag[-1])


def test_brain_deterministic_and_template_missing(monkeypatch):
    a = sim.simulate_brain_volume(0, 7, size=(64, 32), n_slices=2, n_coils=4)
    b = sim.simulate_brain_volume(0, 7, size=(64, 32), n_slices=2, n_coils=4)
    c = sim.simulate_brain_volume(0, 8, size=(64, 32), n_slices=2, n_coils=4)
    assert a["kspace"].tobytes() == b["kspace"].tobytes()
    assert not np.allclose(a["target"], c["target"])
    monkeypatch.setattr(sim_brain.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setitem(sys.modules, "nilearn.datasets", None)
    sim.mni_template.cache_clear()
    try:
        with pytest.raises(DataError, match="not available offline"):
            sim.mni_template()
    finally:
        sim.mni_template.cache_clear()


# --------------------------------------------------------------------------- API errors, CLI


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": (16, 48)},
        {"size": (64, 20)},
        {"n_subjects": 0},
        {"n_frames": 0},
        {"accelerations": (1,)},
        {"noise": -1.0},
        {"seed": -1},
    ],
)
def test_cmrxrecon_bad_arguments(tmp_path, kwargs):
    args = {"n_subjects": 1, "size": (KX, KY)} | kwargs
    with pytest.raises(ConfigError):
        sim.simulate_cmrxrecon(tmp_path, **args)
    assert not any(tmp_path.iterdir())


def test_fastmri_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="even"):
        sim.simulate_fastmri_brain(tmp_path, 1, size=(65, 40))
    with pytest.raises(ConfigError, match="too small"):
        sim.simulate_fastmri_brain(tmp_path, 1, size=(16, 40))


def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["simulate", "--out", str(out), "--subjects", "1", "--size", "64", "40"]
    argv += ["--slices", "2", "--frames", "3", "--coils", "4", "--accelerations", "4"]
    argv += ["--seed", "9", "--undersampled"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    written = [line for line in lines if line.startswith("wrote ")]
    assert len(written) == 2 * 3 + 1  # (full, sub, mask) x (sax, lax) + one brain file
    assert lines[-1].startswith("simulated 1 cardiac subjects")
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["seed"] == 9
    assert meta["formats"]["cmrxrecon"]["size"] == [64, 40]
    assert meta["formats"]["cmrxrecon"]["accelerations"] == [4]
    assert meta["formats"]["fastmri"]["n_slices"] == 2
    files = meta["formats"]["cmrxrecon"]["files"] + meta["formats"]["fastmri"]["files"]
    assert all((out / f).is_file() for f in files)
    with h5py.File(out / "MultiCoil/Cine/TrainingSet/FullSample/P001/cine_sax.mat", "r") as f:
        assert f["kspace_full"].shape == (3, 2, 4, 40, 64)
    with h5py.File(out / "multicoil_val/file_brain_AXT1_sim_0001.h5", "r") as f:
        assert f["kspace"].shape == (2, 4, 64, 40)


def test_cli_simulate_one_format(tmp_path, capsys):
    out = tmp_path / "brain"
    argv = ["simulate", "--out", str(out), "--format", "fastmri", "--subjects", "1"]
    argv += ["--slices", "1", "--coils", "2"]
    assert main(argv) == 0
    assert not (out / "MultiCoil").exists()
    assert len(list((out / "multicoil_val").glob("*.h5"))) == 1
    assert "cmrxrecon" not in json.loads((out / "simulation.json").read_text())["formats"]


def test_cli_simulate_without_undersampled_copies(tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["simulate", "--out", str(out), "--format", "cmrxrecon", "--subjects", "1"]
    argv += ["--size", "64", "40", "--slices", "1", "--frames", "2", "--coils", "2", "--no-lax"]
    assert main(argv) == 0
    acc = out / "MultiCoil/Cine/TrainingSet/AccFactor08/P001"
    assert sorted(p.name for p in acc.iterdir()) == ["cine_sax_mask.mat"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--subjects", "0"], "--subjects"),
        (["--format", "dicom"], "--format"),
        (["--size", "8", "8"], "too small"),
        (["--frames", "0"], "--frames"),
        (["--noise", "-0.1"], "--noise"),
        (["--accelerations", "1"], "acceleration"),
    ],
)
def test_cli_simulate_errors(tmp_path, capsys, extra, message):
    assert main(["simulate", "--out", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fmrecon simulate: error:") and message in err
    assert len(err.splitlines()) == 1


def test_plot_subject(tmp_path):
    path = sim.plot_subject(
        tmp_path / "fig.png", size=(64, 48), n_frames=4, n_coils=4, brain_size=(64, 32)
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
