"""``fmrecon simulate --format cmrxrecon2025``: the 2025 layout with several
simulated centers and scanners that differ as scanners do, read back by the
2025 reader."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from fmrecon.cli import main
from fmrecon.data import cmrxrecon
from fmrecon.data.formats import discover, reader
from fmrecon.data.simulate import multicenter as m
from fmrecon.data.slices import SliceDataset
from fmrecon.errors import ConfigError
from fmrecon.physics.fft import ifft2c


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim25")
    rc = main(
        [
            "simulate",
            "--format",
            "cmrxrecon2025",
            "--out",
            str(out),
            "--subjects",
            "1",
            "--modalities",
            "Cine",
            "BlackBlood",
            "--no-lax",
            "--frames",
            "2",
            "--noise",
            "0.05",
        ]
    )
    assert rc == 0
    return out


def test_layout_centers_vendors_and_fields(sim_root):
    infos, skipped = discover(sim_root)
    assert skipped == []
    # every scanner x (cine_sax, blackblood)
    assert len(infos) == 2 * len(m.SCANNERS)
    got = {(i.center, i.vendor, i.field_strength) for i in infos}
    assert got == {(s.center, s.vendor, s.field) for s in m.SCANNERS}
    assert {i.field_strength for i in infos} == {1.5, 3.0, 5.0}
    c2 = {i.subject for i in infos if i.center == "Center002"}
    assert c2 == {"Center002/UIH_30T_umr880/P001", "Center002/Siemens_15T_Aera/P001"}
    for i in infos:
        s = next(s for s in m.SCANNERS if s.vendor == i.vendor)
        h = 2 * round(m.BASE_SIZE[0] * s.scale / 2) * s.oversampling
        w = 2 * round(m.BASE_SIZE[1] * s.scale / 2)
        assert i.shape == (h, w) and i.n_coils == s.coils and i.key == "kspace"
        assert i.n_frames == (1 if i.modality_folder == "BlackBlood" else 2)
        with h5py.File(i.path) as f:  # MATLAB v7.3: 4-D BlackBlood, 5-D Cine, reversed
            assert f["kspace"].ndim == (4 if i.modality_folder == "BlackBlood" else 5)
    meta = json.loads((sim_root / "simulation.json").read_text())["formats"]["cmrxrecon2025"]
    assert len(meta["scanners"]) == len(m.SCANNERS) and len(meta["files"]) == len(infos)


def _coil_images(info):
    fmt = reader(info)
    with fmt.open(info.path) as f:
        return ifft2c(fmt.read_kspace(f, info, 0, 0))  # (C, H, W)


def test_readout_oversampling_and_noise_by_field(sim_root):
    infos, _ = discover(sim_root)
    sax = {i.vendor: i for i in infos if i.modality == "cine_sax"}
    noise = {}
    for vendor in ("Siemens_30T_Vida", "Siemens_15T_Aera", "UIH_50T_umr890"):
        img = _coil_images(sax[vendor])
        h = img.shape[1]
        # 2x oversampling: the outer quarter of the readout on each side is air
        outer = np.concatenate([img[:, : h // 4 - 2], img[:, -(h // 4 - 2) :]], axis=1)
        # complex noise std per coil image pixel = k-space sigma (orthonormal FFT)
        noise[vendor] = np.sqrt(np.mean(np.abs(outer) ** 2))
    # sigma = 0.05 x noise figure x 3 T / B0 x IMAGE_SCALE: 1.2 x 2 at 1.5 T, 1.0 x 0.6 at 5 T;
    # the estimate from n ~ 10^4 complex samples is within ~1 % (1/sqrt(n)): 5 % margin
    ratio_15 = noise["Siemens_15T_Aera"] / noise["Siemens_30T_Vida"]
    ratio_50 = noise["UIH_50T_umr890"] / noise["Siemens_30T_Vida"]
    assert ratio_15 == pytest.approx(1.2 * 3.0 / 1.5, rel=0.05)
    assert ratio_50 == pytest.approx(1.0 * 3.0 / 5.0, rel=0.05)


@pytest.mark.parametrize("index", [0, 1])
def test_readout_oversampling_pads_the_field_of_view(index):
    scanner = m.SCANNERS[index]  # Siemens: 2x oversampling kept; UIH: none
    sim = m.simulate_scan(scanner, 1, "cine_sax", noise=0.0, n_slices=1, n_frames=1)
    image = np.abs(sim["image"][0, 0])  # (H, W) incl. oversampling
    h = 2 * round(m.BASE_SIZE[0] * scanner.scale / 2)
    assert image.shape[0] == h * scanner.oversampling
    pad = (image.shape[0] - h) // 2
    assert pad == (h // 2 if scanner.oversampling == 2 else 0)
    assert np.all(image[:pad] == 0) and np.all(image[pad + h :] == 0)
    assert image[pad : pad + h].max() > 0
    # the k-space is that image through the coils: the readout edges hold no signal
    coil = np.abs(ifft2c(sim["kspace"][0, 0]))
    if pad:
        assert coil[:, : pad - 1].max() < 1e-3 * coil.max()


def test_t1_contrast_by_field_hand_worked():
    # Stanisz 2005 T1 (ms): blood 1441 / 1932, myocardium 1030 / 1471 at 1.5 / 3 T
    assert m.tissue_t1("blood", 1.5) == pytest.approx(1441)
    assert m.tissue_t1("blood", 3.0) == pytest.approx(1932)
    # power law through both: 1441 (5 / 1.5)^log2(1932 / 1441) = 2398.3 ms
    assert m.tissue_t1("blood", 5.0) == pytest.approx(2398.3, abs=0.5)
    # T1map first weighting TI = 100 ms at 3 T: blood 0.95 |1 - 2 e^(-100/1932)| = 0.85416,
    # myocardium 0.75 |1 - 2 e^(-100/1471)| = 0.65142
    w3 = m.modality_intensities("T1map", 3.0, 0)
    assert w3["blood"] / w3["myocardium"] == pytest.approx(0.85416 / 0.65142, rel=1e-4)
    w15 = m.modality_intensities("T1map", 1.5, 0)
    assert w15["blood"] / w15["myocardium"] != pytest.approx(w3["blood"] / w3["myocardium"])
    # black blood: blood suppressed to 5 % of its spin-echo signal
    bb = m.modality_intensities("blackblood", 3.0)
    t2w = m.modality_intensities("T2w", 3.0)
    assert bb["blood"] / bb["myocardium"] == pytest.approx(
        0.05 * t2w["blood"] / t2w["myocardium"], rel=1e-9
    )


def test_same_patient_number_is_one_person_per_center():
    a = m.simulate_scan(m.SCANNERS[1], 1, "blackblood", n_slices=1)  # Center002 UIH
    b = m.simulate_scan(m.SCANNERS[2], 1, "blackblood", n_slices=1)  # Center002 Siemens 1.5 T
    c = m.simulate_scan(m.SCANNERS[1], 2, "blackblood", n_slices=1)

    # the anatomy is keyed by (center, patient): body outline (air vs body) agrees where
    # the grids overlap in physical units; compare the torso's extent along the readout
    def extent(sim, scanner):
        body = np.abs(sim["image"][0, 0]).max(axis=1) > 0.05 * np.abs(sim["image"]).max()
        pixel = 40.0 / (sim["image"].shape[2] / scanner.oversampling)
        return body.sum() * pixel

    ea, eb, ec = extent(a, m.SCANNERS[1]), extent(b, m.SCANNERS[2]), extent(c, m.SCANNERS[1])
    assert ea == pytest.approx(eb, abs=2 * 40.0 / 43)  # two pixels of the coarser grid
    assert abs(ea - ec) > 1.0  # another patient: another torso (cm)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="unknown simulated center 'Center009'"):
        m.simulate_cmrxrecon2025(tmp_path, centers=["Center009"])
    with pytest.raises(ConfigError, match="unknown simulated modality 'LGE'"):
        m.simulate_cmrxrecon2025(tmp_path, modalities=["LGE"])


@pytest.fixture(scope="module")
def sim_val(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim25val")
    rc = main(
        [
            "simulate",
            "--format",
            "cmrxrecon2025",
            "--out",
            str(out),
            "--subjects",
            "1",
            "--centers",
            "Center001",
            "Center002",
            "--modalities",
            "Cine",
            "BlackBlood",
            "--no-lax",
            "--frames",
            "3",
            "--undersampled",
        ]
    )
    assert rc == 0
    return out


def test_validation_layout_kus_is_kspace_times_mask(sim_val):
    infos, skipped = discover(sim_val)
    kus = [i for i in infos if not i.fully_sampled]
    assert len(kus) == 2 * 3  # one validation patient x 2 files x 3 scanners
    assert {i.task for i in kus} == {"TaskR1"} and {i.patient for i in kus} == {"P002"}
    assert {i.pattern for i in kus} <= set(m.PATTERNS)
    assert {i.acceleration for i in kus} <= {8.0, 16.0, 24.0}
    ds = SliceDataset(kus)
    for idx in range(len(ds)):
        s = ds[idx]
        k = s.kspace.numpy()
        sampled = s.mask[0].numpy()
        assert np.all(k[:, ~sampled] == 0)  # kus = kspace .* mask
        assert np.count_nonzero(k[:, sampled]) == k[:, sampled].size  # noisy data: no zeros
    ds.close()
    # every training file has the official masks of every pattern and R (Mask_TaskAll)
    full = [i for i in infos if i.fully_sampled]
    assert len(skipped) == len(kus) + len(full) * 3 * 3


def test_training_masks_are_the_2025_generators_and_used_as_official(sim_val):
    from fmrecon.physics.masks import cmrxrecon25_mask

    infos, _ = discover(sim_val)
    info = next(i for i in infos if i.fully_sampled and i.modality == "cine_sax")
    func = cmrxrecon25_mask("ktRadial", 16)
    ds = SliceDataset([info], mask_func=func, official_masks=True)
    path = cmrxrecon.official_mask_path(info.path, 16, "ktRadial")
    assert path.parts[-5] == "Mask_TaskAll"
    stored = cmrxrecon.read_mask(path)  # (t, kx, ky)
    assert stored.shape == (info.n_frames, *info.shape)
    # the radial generator ignores the seed: the file is the generator's mask
    np.testing.assert_array_equal(stored, func((info.n_frames, *info.shape)))
    for idx in range(len(ds)):
        s = ds[idx]
        np.testing.assert_array_equal(s.mask[0].numpy(), stored[s.frame])
    ds.close()
