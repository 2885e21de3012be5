"""CMRxRecon 2025 ranking reduction (run4Ranking_2025.m, github.com/CmrxRecon/
CMRxRecon2025 CMRxReconDemo/) and scoring (the organisers' test-2025/Test_Score2025.py
and Evaluation.py in github.com/CmrxRecon/CMRx-evaluation-snippets): hand-worked
indices and crops, a line-by-line transcription of each as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fmrecon.errors import DataError
from fmrecon.metrics import (
    CONVENTIONS,
    cmrxrecon2025_image_metrics,
    convention_metrics,
    img4ranking_2025,
    normalize_percentile_2025,
    ranking_array_2025,
    ranking_indices_2025,
    ranking_reference_2025,
    run4ranking_2025,
)


@pytest.fixture
def rng():
    return np.random.default_rng(2025)


# ----------------------------------------------------------------------------- indices

# (round(sz/2)-1):round(sz/2), 1-based, MATLAB round (halves away from zero); all if sz < 3
SLICES = {1: [0], 2: [0, 1], 3: [0, 1], 4: [0, 1], 5: [1, 2], 6: [1, 2]}
# frames: isBlackBlood || t == 1 -> 1; isMapping || isT1rho -> 1:t; else 1:min(3, t)
FIRST3 = {1: [0], 2: [0, 1], 5: [0, 1, 2]}
ALL = {1: [0], 2: [0, 1], 5: [0, 1, 2, 3, 4]}
NAMES = {
    "cine_sax.mat": FIRST3,
    "cine_lax_3ch_kus_ktRadial16.mat": FIRST3,
    "LGE.mat": FIRST3,
    "perfusion.mat": FIRST3,
    "flow2d.mat": FIRST3,
    "T1map.mat": ALL,
    "T2map_kus_Uniform8.mat": ALL,
    "T2smap.mat": ALL,
    "T1mappost.mat": ALL,
    "T1rho.mat": ALL,
    "t1map.mat": FIRST3,  # MATLAB's contains is case-sensitive
}


@pytest.mark.parametrize("nz", sorted(SLICES))
@pytest.mark.parametrize("nt", [1, 2, 5])
def test_ranking_indices_2025(nz, nt):
    for name, frames in NAMES.items():
        assert ranking_indices_2025(nz, nt, name) == (SLICES[nz], frames[nt]), name
    for name in ["blackblood.mat", "T1w.mat", "T2w_kus_Uniform24.mat"]:
        if nt == 1:  # 4-D modalities: one frame
            assert ranking_indices_2025(nz, 1, name) == (SLICES[nz], [0])
        else:  # named 4-D but with a time axis: refused in one line naming the file
            with pytest.raises(DataError, match=f"{name}: named as a 4-D modality"):
                ranking_indices_2025(nz, nt, name)
            with pytest.raises(DataError, match=f"^C1/V/P001/{name}: named as a 4-D"):
                ranking_indices_2025(nz, nt, name, f"C1/V/P001/{name}")


# ----------------------------------------------------------------------------- reduction


def test_img4ranking_hand_cases_even_and_odd(rng):
    # (T, Z, H, W) = (5, 4, 10, 8) cine: slices round(4/2) = 2 -> 1:2 -> [0, 1]; frames
    # 1:3; crop round(10/3) = 3 x round(8/2) = 4; crop.m rows 5+1-1 = 5 .. 5+2 = 7
    # (1-based) -> 4..6, columns 4+1-2 = 3 .. 4+2 = 6 -> 2..5
    vol = rng.random((5, 4, 10, 8))
    got = img4ranking_2025(vol, "cine_sax.mat")
    want = vol[:3, 0:2, 4:7, 2:6].transpose(2, 3, 1, 0)
    assert got.shape == (3, 4, 2, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want.astype(np.float32))
    # (5, 5, 11, 9) T1rho: slices round(2.5) = 3 -> 2:3 -> [1, 2]; all 5 frames;
    # crop round(11/3) = 4 x round(4.5) = 5 (Python's round: 4); rows floor(11/2)+1-2 = 4 ..
    # 5+2 = 7 -> 3..6, columns floor(9/2)+1+ceil(-2.5) = 3 .. 4+3 = 7 -> 2..6
    vol = rng.random((5, 5, 11, 9))
    got = img4ranking_2025(vol, "T1rho.mat")
    assert got.shape == (4, 5, 2, 5)
    np.testing.assert_array_equal(
        got, vol[:, 1:3, 3:7, 2:7].transpose(2, 3, 1, 0).astype(np.float32)
    )


@pytest.mark.parametrize(
    "name,t,z,dims",
    [
        ("cine_sax.mat", 5, 1, (4, 5, 1, 3)),  # one slice, several frames: (h, w, 1, T)
        ("cine_sax.mat", 2, 3, (4, 5, 2, 2)),
        ("LGE.mat", 1, 3, (4, 5, 2)),  # one frame: (h, w, S)
        ("blackblood.mat", 1, 2, (4, 5, 2)),
        ("T2w.mat", 1, 1, (4, 5)),  # 4-D file, one slice: (h, w)
        ("cine_sax.mat", 1, 1, (4, 5)),  # MATLAB assigns nothing here; ours: (h, w)
    ],
)
def test_img4ranking_matlab_dims(rng, name, t, z, dims):
    assert img4ranking_2025(rng.random((t, z, 12, 10)), name).shape == dims


def _msize(a: np.ndarray, n: int) -> list[int]:
    """MATLAB ``[d1, ..., dn] = size(a)``: missing dims are 1, the last output is the
    product of the remaining dims."""
    dims = list(a.shape) + [1] * max(0, n - a.ndim)
    return dims[: n - 1] + [int(np.prod(dims[n - 1 :]))]


def _mdims(a: np.ndarray) -> tuple[int, ...]:
    """MATLAB's ``size(a)``: trailing singleton dims dropped, at least 2."""
    dims = list(a.shape)
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _mcrop(x: np.ndarray, s: list[int]) -> np.ndarray:
    """ESPIRiT crop.m, 1-based: idx = floor(m/2)+1+ceil(-s/2) : floor(m/2)+ceil(s/2)."""
    m = list(_mdims(x))
    s = list(s) + [1] * (len(m) - len(s))
    x = x.reshape(m, order="F")
    if m == s:
        return x
    idx = [
        np.arange(mm // 2 + 1 + math.ceil(-ss / 2), mm // 2 + math.ceil(ss / 2) + 1) - 1
        for mm, ss in zip(m, s, strict=True)
    ]
    return x[np.ix_(*idx)]


def _literal_run4ranking_2025(img: np.ndarray, filetype: str) -> np.ndarray:
    """run4Ranking_2025.m transcribed line by line (MATLAB sizes, 1-based indices,
    column-major reshape); raises where MATLAB leaves img4ranking unassigned."""
    mround = lambda x: math.floor(x + 0.5)  # noqa: E731  (positive arguments only)
    is_bb = "blackblood" in filetype or "T1w" in filetype or "T2w" in filetype
    if is_bb:
        sx, sy, _, sz = _msize(img, 4)
        t = 1
    else:
        sx, sy, _, sz, t = _msize(img, 5)
    is_map = any(k in filetype for k in ["T1map", "T2map", "T2smap", "T1mappost"])
    is_rho = "T1rho" in filetype
    if sz < 3:
        slices = list(range(1, sz + 1))
    else:
        c = mround(sz / 2)
        slices = [c - 1, c]
    if is_bb or t == 1:
        frames = [1]
    elif is_map or is_rho:
        frames = list(range(1, t + 1))
    else:
        frames = list(range(1, min(3, t) + 1))
    sos = np.sqrt(np.sum(np.abs(img) ** 2, axis=2, keepdims=True))  # sos(img, 3)
    sos = sos.reshape([d for d in sos.shape if d != 1] or [1, 1], order="F")  # squeeze
    if sz == 1:
        third = sos.shape[2] if sos.ndim > 2 else 1
        sos = sos.reshape([sos.shape[0], sos.shape[1], 1, third], order="F")
    while sos.ndim < 4:
        sos = sos[..., None]
    zi, ti = [z - 1 for z in slices], [f - 1 for f in frames]
    size = [mround(sx / 3), mround(sy / 2)]
    if is_bb:
        sel = np.abs(sos[:, :, zi, 0])
        out = _mcrop(sel, size + [len(zi)] if len(zi) > 1 else size)
    else:
        sel = np.abs(sos[:, :, zi][:, :, :, ti])
        if len(ti) > 1 and len(zi) > 1:
            out = _mcrop(sel, size + [len(zi), len(ti)])
        elif len(ti) > 1 and len(zi) == 1:
            out = _mcrop(sel, size + [1, len(ti)])
        elif len(ti) == 1 and len(zi) > 1:
            out = _mcrop(sel, size + [len(zi)])
        else:
            raise RuntimeError("Output argument img4ranking not assigned")
    out = out.astype(np.float32)
    return out.reshape(_mdims(out), order="F")


@pytest.mark.parametrize("sx,sy", [(9, 7), (10, 8), (12, 11)])
@pytest.mark.parametrize("sz", [1, 2, 3, 4])
@pytest.mark.parametrize("nt", [1, 2, 5])
def test_run4ranking_equals_literal_transcription(rng, sx, sy, sz, nt):
    for name in ["cine_sax.mat", "T1map.mat", "T1rho.mat", "LGE.mat", "blackblood.mat", "T1w.mat"]:
        four_d = "blackblood" in name or "T1w" in name
        if four_d and nt > 1:
            continue
        shape = (sx, sy, 3, sz) if four_d else (sx, sy, 3, sz, nt)
        img = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        got = run4ranking_2025(img, name)
        try:
            want = _literal_run4ranking_2025(img, name)
        except RuntimeError:  # a 5-D file with one slice and one frame: (h, w) here
            assert not four_d and sz == 1 and nt == 1 and got.ndim == 2
            continue
        assert got.shape == want.shape, (name, shape)
        np.testing.assert_allclose(got, want, rtol=2e-7)  # both float32 of one float64 value


def test_ranking_array_takes_the_selected_images(rng):
    vol = rng.random((3, 2, 12, 10))
    assert ranking_array_2025(vol).shape == (4, 5, 2, 3)
    with pytest.raises(DataError, match="must be"):
        ranking_array_2025(vol[0])


# ----------------------------------------------------------------------------- scoring


def _official_calmetric(pred_recon, gt_recon):
    """Evaluation.py (test-2025) calmetric transcribed: per-image percentile
    normalisation, skimage SSIM/PSNR with data range = the first argument's max,
    NMSE = ||a - b||^2 / ||a||^2; the 2-D/3-D branches swap the arguments."""

    def norm(a):
        d = np.abs(a)
        p = np.percentile(d, 99.5)
        return d if p == 0 else d / p

    def metrics(first, second):
        return (
            peak_signal_noise_ratio(first, second, data_range=first.max()),
            structural_similarity(first, second, data_range=first.max()),
            np.linalg.norm(first - second) ** 2 / np.linalg.norm(first) ** 2,
        )

    out = []
    if gt_recon.ndim == 4:
        for i in range(gt_recon.shape[-2]):
            for j in range(gt_recon.shape[-1]):
                pred, gt = pred_recon[:, :, i, j], gt_recon[:, :, i, j]
                out.append(metrics(norm(gt), norm(pred)))
    elif gt_recon.ndim == 3:
        for j in range(gt_recon.shape[-1]):
            pred, gt = pred_recon[:, :, j], gt_recon[:, :, j]
            out.append(metrics(norm(pred), norm(gt)))
    else:
        out.append(metrics(norm(pred_recon), norm(gt_recon)))
    return np.array(out)  # (images, [psnr, ssim, nmse])


def _official_compute_metrics(gt, recon):
    """Test_Score2025.py compute_metrics: squeeze both, calmetric(gt, recon), means."""
    per = _official_calmetric(np.squeeze(gt), np.squeeze(recon))
    return {"psnr": per[:, 0].mean(), "ssim": per[:, 1].mean(), "nmse": per[:, 2].mean()}


def _pair(rng, t, z, h=30, w=26):
    """Targets with structure and reconstructions with errors and a bright outlier,
    so that the reference's max after normalisation differs between the two."""
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    blob = np.exp(-((y - 0.4 * h) ** 2 + (x - 0.6 * w) ** 2) / (0.05 * h * w))
    target = 0.1 + 0.2 * rng.random((t, z, h, w)) + blob
    recon = target + 0.05 * rng.standard_normal(target.shape)
    recon[..., h // 2, w // 2] += 3.0  # in the crop: raises the recon's normalised max
    return target.astype(np.float32), recon.astype(np.float32)


@pytest.mark.parametrize(
    "name,t,z",
    [
        ("cine_sax.mat", 3, 2),  # img4ranking (h, w, 2, 3): 4-D, the recon is the reference
        ("cine_sax.mat", 3, 1),  # (h, w, 1, 3) squeezed to 3-D: the target is
        ("LGE.mat", 1, 2),  # (h, w, 2)
        ("T2w.mat", 1, 1),  # (h, w)
    ],
)
def test_scoring_equals_the_official_scorer(rng, name, t, z):
    target, recon = _pair(rng, t, z)
    gt_img, rc_img = img4ranking_2025(target, name), img4ranking_2025(recon, name)
    want = _official_compute_metrics(gt_img.astype(np.float64), rc_img.astype(np.float64))
    # what `fmrecon evaluate` passes: the (frame, slice) images, uncropped, and the grid
    got = convention_metrics(
        target.reshape(-1, *target.shape[-2:]),
        recon.reshape(-1, *recon.shape[-2:]),
        "cmrxrecon2025",
        grid=(t, z),
    )
    for k in ("psnr", "ssim", "nmse"):
        # float64 on both sides from the same float32 images: summation order only
        assert got[k] == pytest.approx(want[k], rel=1e-10), k
    # the reference matters: scoring against the other image gives other numbers
    other = "target" if ranking_reference_2025(z, t) == "recon" else "recon"
    h, w = gt_img.shape[:2]
    flip = np.mean(
        [
            cmrxrecon2025_image_metrics(g, r, other)["psnr"]
            for g, r in zip(
                gt_img.reshape(h, w, -1, order="F").transpose(2, 0, 1),
                rc_img.reshape(h, w, -1, order="F").transpose(2, 0, 1),
                strict=True,
            )
        ]
    )
    assert abs(flip - got["psnr"]) > 0.1


def test_reference_rule_and_fingerprint_identity(rng):
    assert ranking_reference_2025(2, 3) == "recon"
    assert [ranking_reference_2025(*sz) for sz in [(1, 3), (2, 1), (1, 1)]] == ["target"] * 3
    target, recon = _pair(rng, 1, 1)
    for ref in ("target", "recon"):
        m = cmrxrecon2025_image_metrics(target[0, 0], recon[0, 0], ref)
        r = normalize_percentile_2025(target[0, 0] if ref == "target" else recon[0, 0])
        # PSNR + 10 log10 NMSE = 10 log10(max(ref)^2 / mean(ref^2)), whatever the other image
        fp = 10 * np.log10(r.max() ** 2 / np.mean(r**2))
        assert m["psnr"] + 10 * np.log10(m["nmse"]) == pytest.approx(fp, abs=1e-9)
        assert m["fingerprint_db"] == pytest.approx(fp, abs=1e-9)


def test_percentile_normalisation_and_edge_cases(rng):
    x = rng.random((20, 20))
    np.testing.assert_allclose(normalize_percentile_2025(-x), x / np.percentile(x, 99.5))
    assert normalize_percentile_2025(x).max() >= 1.0
    sparse = np.zeros((20, 20))
    sparse[3, 4] = 2.0  # 99.5th percentile 0: left as |x|
    np.testing.assert_array_equal(normalize_percentile_2025(sparse), sparse)
    # scale does not matter (each image is normalised by itself)
    y = x + 0.1 * rng.random(x.shape)
    a, b = cmrxrecon2025_image_metrics(x, y), cmrxrecon2025_image_metrics(3 * x, 0.2 * y)
    assert a["ssim"] < 1.0 and all(b[k] == pytest.approx(a[k], rel=1e-9) for k in a)
    assert cmrxrecon2025_image_metrics(x, 5 * x)["nmse"] == pytest.approx(0.0, abs=1e-25)
    z = cmrxrecon2025_image_metrics(x, np.zeros_like(x), "recon")
    assert all(math.isnan(v) for v in z.values())
    assert "cmrxrecon2025" in CONVENTIONS
    with pytest.raises(DataError, match="are not 2 frames x 2 slices"):
        convention_metrics(x[None].repeat(3, 0), x[None].repeat(3, 0), "cmrxrecon2025", grid=(2, 2))


def test_evaluate_cli_scores_as_the_official_scorer(cmrx_tree, tmp_path):
    """`fmrecon evaluate --convention cmrxrecon2025` against run4Ranking_2025.m and
    Test_Score2025.py transcribed, from the k-space the fixture wrote."""
    import csv

    from conftest import random_kspace, write_cmrx
    from fmrecon.cli import main
    from fmrecon.physics.masks import create_mask

    # T1rho: every weighting ranked in 2025 (2023's ranking keeps "map" names only)
    t1rho = cmrx_tree / "MultiCoil/T1rho/TrainingSet/FullSample/P001/T1rho.mat"
    write_cmrx(t1rho, random_kspace((24, 40, 3, 3, 5), 11))
    out = tmp_path / "ev"
    args = ["evaluate", "--data", str(cmrx_tree / "MultiCoil"), "--model", "zero-filled"]
    args += ["--mask", "cmrxrecon25-kt-radial", "--accelerations", "8"]
    args += ["--convention", "cmrxrecon2025", "--no-figures", "--quiet", "--out", str(out)]
    assert main(args) == 0
    rows = {r["file"]: r for r in csv.DictReader(open(out / "metrics.csv"))}
    checks = [  # the fixture's files: name, seed, MATLAB shape (kx, ky, coils, slices, t)
        ("Cine/TrainingSet/FullSample/P001/cine_sax.mat", 0, (24, 40, 3, 2, 4), 6),
        ("Mapping/TrainingSet/FullSample/P001/T1map.mat", 9, (24, 40, 3, 2, 9), 18),
        ("T1rho/TrainingSet/FullSample/P001/T1rho.mat", 11, (24, 40, 3, 3, 5), 10),
    ]
    for rel, seed, shape, n_images in checks:
        row = rows[str(cmrx_tree / "MultiCoil" / rel)]
        assert int(row["n_images"]) == n_images  # 2 slices x (3 frames | all weightings)
        k = random_kspace(shape, seed).astype(np.complex128)
        mask = create_mask("cmrxrecon25-kt-radial", 8)((shape[4], 24, 40))
        mask5 = mask.transpose(1, 2, 0)[:, :, None, None, :]  # reshape(mask, [nx,ny,1,1,nt])

        def coil_images(kk):  # ifft2c over (kx, ky), orthonormal and centred
            kk = np.fft.ifftshift(kk, axes=(0, 1))
            return np.fft.fftshift(np.fft.ifft2(kk, axes=(0, 1), norm="ortho"), axes=(0, 1))

        name = rel.rsplit("/", 1)[1]
        gt = _literal_run4ranking_2025(coil_images(k), name).astype(np.float64)
        zf = _literal_run4ranking_2025(coil_images(k * mask5), name).astype(np.float64)
        want = _official_compute_metrics(gt, zf)
        for key in ("ssim", "psnr", "nmse"):
            # fmrecon's images are float32 (eps 6e-8, ~10 FFT stages: ~6e-7 per pixel),
            # amplified in the error by |x| / |x - y| ~ 1 / sqrt(NMSE) ~ 5: < 1e-5
            assert float(row[key]) == pytest.approx(want[key], rel=1e-5), (rel, key)


def test_challenge_summary_hand_case():
    # Test_Score2025.py: per (center, vendor) PSNR_adj = sum / expected, SSIM alike,
    # NMSE_adj = mean * (2 - submitted / expected); then the mean over the groups
    from fmrecon.metrics import challenge_summary_2025

    rows = [
        {"center": "A", "vendor": "V1", "psnr": 30.0, "ssim": 0.9, "nmse": 0.01},
        {"center": "A", "vendor": "V1", "psnr": 32.0, "ssim": 0.8, "nmse": 0.03},
        {"center": "B", "vendor": "V2", "psnr": 20.0, "ssim": 0.5, "nmse": 0.10},
        {"center": "B", "vendor": "V2", "psnr": math.nan, "ssim": 0.1, "nmse": 0.5},  # dropped
    ]
    s = challenge_summary_2025(rows, ("center", "vendor"))
    a, b = s["groups"][("A", "V1")], s["groups"][("B", "V2")]
    assert (a["n"], b["n"]) == (2, 1)
    assert (a["psnr"], a["ssim"], a["nmse"]) == pytest.approx((31.0, 0.85, 0.02))
    assert (b["psnr"], b["ssim"], b["nmse"]) == pytest.approx((20.0, 0.5, 0.10))
    # every group counts once: (31 + 20) / 2 = 25.5, not the mean over files (27.33)
    assert (s["mean"]["psnr"], s["mean"]["ssim"], s["mean"]["nmse"]) == pytest.approx(
        (25.5, 0.675, 0.06)
    )
    # 2 of 4 files of A submitted: 62 / 4 = 15.5, 1.7 / 4, 0.02 * (2 - 2/4) = 0.03
    s = challenge_summary_2025(rows, ("center", "vendor"), {("A", "V1"): 4, ("B", "V2"): 1})
    a = s["groups"][("A", "V1")]
    assert (a["psnr"], a["ssim"], a["nmse"]) == pytest.approx((15.5, 0.425, 0.03))
    assert s["mean"]["psnr"] == pytest.approx(17.75)
