"""Metrics in the fastMRI and CMRxRecon conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from fmrecon.errors import DataError
from fmrecon.metrics import (
    CONVENTION_HELP,
    CONVENTIONS,
    METRIC_NAMES,
    center_crop,
    cmrxrecon_crop,
    cmrxrecon_image_metrics,
    cmrxrecon_volume_metrics,
    convention_metrics,
    fastmri_volume_metrics,
    fingerprint_db,
    is_mapping_modality,
    nmse,
    psnr,
    ranking_crop_size,
    ranking_indices,
    ranking_reduce,
    round_half_away,
    ssim,
)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _smooth(rng, shape):
    """Positive, smooth-ish magnitude images (box-blurred noise)."""
    x = rng.random(shape)
    for ax in (-2, -1):
        x = (x + np.roll(x, 1, axis=ax) + np.roll(x, -1, axis=ax)) / 3
    return x + 0.1


# ----------------------------------------------------------------------------- fastMRI


def test_nmse_and_psnr_hand_formulas():
    gt = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    pred = np.array([[[1.0, 2.5], [2.0, 4.0]]])
    err2 = 0.5**2 + 1.0**2  # 1.25
    assert nmse(gt, pred) == pytest.approx(err2 / (1 + 4 + 9 + 16))
    mse = err2 / 4
    assert psnr(gt, pred) == pytest.approx(10 * math.log10(4.0**2 / mse))
    assert psnr(gt, pred, maxval=2.0) == pytest.approx(10 * math.log10(2.0**2 / mse))
    assert psnr(gt, gt) == math.inf
    assert nmse(gt, gt) == 0.0
    assert nmse(np.zeros(3), np.zeros(3)) == 0.0


def test_ssim_identical_is_one(rng):
    vol = _smooth(rng, (3, 16, 20))
    assert ssim(vol, vol) == pytest.approx(1.0)
    assert ssim(vol[0], vol[0]) == pytest.approx(1.0)  # a single 2-D image


def test_ssim_uses_volume_max_as_data_range(rng):
    gt = _smooth(rng, (2, 16, 16))
    pred = gt + 0.05 * rng.standard_normal(gt.shape)
    # scale slice 1 up: the volume max (hence slice 0's data range) changes
    gt[1] *= 10.0
    pred[1] *= 10.0
    vmax = gt.max()
    per_slice = [
        structural_similarity(g, p, data_range=vmax) for g, p in zip(gt, pred, strict=True)
    ]
    assert ssim(gt, pred) == pytest.approx(np.mean(per_slice), abs=1e-12)
    own_max = [
        structural_similarity(g, p, data_range=g.max()) for g, p in zip(gt, pred, strict=True)
    ]
    assert abs(ssim(gt, pred) - np.mean(own_max)) > 1e-3


def test_center_crop_odd_and_even():
    x = np.arange(7 * 8).reshape(7, 8)
    c = center_crop(x, (3, 4))  # rows start (7-3)//2 = 2, cols (8-4)//2 = 2
    np.testing.assert_array_equal(c, x[2:5, 2:6])
    c = center_crop(x, (4, 3))  # rows (7-4)//2 = 1, cols (8-3)//2 = 2
    np.testing.assert_array_equal(c, x[1:5, 2:5])
    with pytest.raises(ValueError):
        center_crop(x, (8, 8))


def test_fastmri_volume_metrics_crops_to_target_width(rng):
    target = _smooth(rng, (2, 12, 10))
    recon = rng.random((2, 16, 14))
    # recon's centre 12x10 region equals the target's -> both cropped to 10x10
    recon[:, 2:14, 2:12] = target
    m = fastmri_volume_metrics(target, recon)
    assert set(m) == set(METRIC_NAMES)
    assert m["ssim"] == pytest.approx(1.0)
    assert m["nmse"] == pytest.approx(0.0)
    assert m["psnr"] == math.inf

    noisy = target + 0.01 * rng.standard_normal(target.shape)
    m = fastmri_volume_metrics(target, noisy)
    t, r = target[:, 1:11, :], noisy[:, 1:11, :]
    assert m["nmse"] == pytest.approx(np.sum((t - r) ** 2) / np.sum(t**2))
    assert m["psnr"] == pytest.approx(10 * np.log10(t.max() ** 2 / np.mean((t - r) ** 2)))


def test_fastmri_volume_metrics_errors(rng):
    t = _smooth(rng, (2, 10, 10))
    with pytest.raises(DataError, match="slice counts"):
        fastmri_volume_metrics(t, t[:1])
    bad = t.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        fastmri_volume_metrics(t, bad)
    with pytest.raises(DataError, match="non-finite"):
        fastmri_volume_metrics(bad, t)
    with pytest.raises(DataError):
        fastmri_volume_metrics(t[0], t[0])


# ----------------------------------------------------------------------------- CMRxRecon


def test_round_half_away():
    assert [round_half_away(v) for v in (0.5, 1.5, 2.5, 4.5, 122.5, -2.5, 2.4)] == [
        1,
        2,
        3,
        5,
        123,
        -3,
        2,
    ]


def test_cmrxrecon_image_metrics_per_image_normalisation(rng):
    gt = _smooth(rng, (20, 24))
    pred = gt + 0.02 * rng.standard_normal(gt.shape)
    base = cmrxrecon_image_metrics(gt, pred)
    scaled = cmrxrecon_image_metrics(3.7 * gt, 0.01 * pred)
    for k in METRIC_NAMES:
        assert scaled[k] == pytest.approx(base[k], rel=1e-10)
    g, p = gt / gt.max(), pred / pred.max()
    assert base["ssim"] == pytest.approx(structural_similarity(g, p, data_range=1.0))
    assert base["psnr"] == pytest.approx(10 * np.log10(1.0 / np.mean((g - p) ** 2)))
    assert base["nmse"] == pytest.approx(np.sum((g - p) ** 2) / np.sum(g**2))
    # all-zero images do not divide by zero
    z = cmrxrecon_image_metrics(np.zeros((8, 8)), np.zeros((8, 8)))
    assert z["nmse"] == 0.0


# hand-computed from run4Ranking.m: (round(sz/2)-1):round(sz/2), 1-based, MATLAB round
SLICES = {
    1: [0],  # sz < 3: all slices
    2: [0, 1],
    3: [0, 1],  # round(1.5) = 2 -> 1:2
    4: [0, 1],  # round(2) = 2 -> 1:2
    5: [1, 2],  # round(2.5) = 3 -> 2:3 (Python's round would give 2 -> [0, 1])
    9: [3, 4],  # round(4.5) = 5 -> 4:5 (Python's round would give 4 -> [2, 3])
    10: [3, 4],  # round(5) = 5 -> 4:5
}
FRAMES_CINE = {1: [0], 2: [0, 1], 3: [0, 1, 2], 12: [0, 1, 2]}
FRAMES_MAP = {1: [0], 2: [0, 1], 3: [0, 1, 2], 12: list(range(12))}


@pytest.mark.parametrize("nz", sorted(SLICES))
@pytest.mark.parametrize("nt", sorted(FRAMES_CINE))
def test_ranking_indices(nz, nt):
    assert ranking_indices(nz, nt, "cine_sax") == (SLICES[nz], FRAMES_CINE[nt])
    assert ranking_indices(nz, nt, "cine_lax") == (SLICES[nz], FRAMES_CINE[nt])
    assert ranking_indices(nz, nt, "T1map") == (SLICES[nz], FRAMES_MAP[nt])
    assert ranking_indices(nz, nt, "T2map") == (SLICES[nz], FRAMES_MAP[nt])


def test_mapping_modality_names():
    assert is_mapping_modality("T1map") and is_mapping_modality("T2smap")
    assert not is_mapping_modality("cine_sax") and not is_mapping_modality("tagging")


def test_cmrxrecon_crop_start_parity():
    x = np.arange(10 * 11).reshape(10, 11)
    # even size, odd crop: floor(10/2) - floor(3/2) = 4 (fastMRI: (10-3)//2 = 3)
    # odd size, odd crop: floor(11/2) - floor(5/2) = 3 (fastMRI agrees)
    np.testing.assert_array_equal(cmrxrecon_crop(x, (3, 5)), x[4:7, 3:8])
    assert not np.array_equal(cmrxrecon_crop(x, (3, 5)), center_crop(x, (3, 5)))
    # even crop: both conventions agree
    np.testing.assert_array_equal(cmrxrecon_crop(x, (4, 4)), center_crop(x, (4, 4)))
    # the real case: ky = 512 -> crop 171 starts at 256 - 85 = 171, fastMRI at 170
    y = np.arange(512)[None, :] * np.ones((3, 1))
    assert cmrxrecon_crop(y, (3, 171))[0, 0] == 171
    assert center_crop(y, (3, 171))[0, 0] == 170


def test_ranking_crop_size():
    assert ranking_crop_size(246, 512) == (82, 256)
    assert ranking_crop_size(512, 246) == (171, 123)
    assert ranking_crop_size(246, 245) == (82, 123)  # 122.5 rounds away from zero


def test_ranking_reduce_and_volume_metrics(rng):
    vol = rng.random((12, 5, 24, 30))
    red = ranking_reduce(vol, "cine_sax")
    assert red.shape == (3, 2, 8, 15)
    # slices [1, 2], frames [0, 1, 2], rows 12-4=8.., cols 15-7=8..
    np.testing.assert_array_equal(red, vol[:3, 1:3, 8:16, 8:23])
    assert ranking_reduce(vol, "T1map").shape == (12, 2, 8, 15)

    target = _smooth(rng, (4, 3, 24, 30))
    recon = target * 5.0 + 0.01 * rng.standard_normal(target.shape)
    m = cmrxrecon_volume_metrics(target, recon, "cine_lax")
    t, r = ranking_reduce(target, "cine_lax"), ranking_reduce(recon, "cine_lax")
    per = [cmrxrecon_image_metrics(t[i, j], r[i, j]) for i in range(3) for j in range(2)]
    for k in METRIC_NAMES:
        assert m[k] == pytest.approx(np.mean([p[k] for p in per]))
    full = cmrxrecon_volume_metrics(target, recon, "cine_lax", reduce=False)
    per = [cmrxrecon_image_metrics(target[i, j], recon[i, j]) for i in range(4) for j in range(3)]
    assert full["ssim"] == pytest.approx(np.mean([p["ssim"] for p in per]))


def test_cmrxrecon_volume_metrics_errors(rng):
    t = _smooth(rng, (3, 3, 24, 24))
    with pytest.raises(DataError):
        cmrxrecon_volume_metrics(t, t[:, :2], "cine_sax")
    bad = t.copy()
    bad[1, 1, 10, 10] = np.inf
    with pytest.raises(DataError, match="non-finite"):
        cmrxrecon_volume_metrics(t, bad, "cine_sax")
    with pytest.raises(DataError, match="complex"):
        cmrxrecon_volume_metrics(t.astype(complex), t, "cine_sax")


# ----------------------------------------------------------------------------- fingerprint

# the scored region of one 30x20 image, written out by hand per convention:
# fastmri (W, W) = 20x20 from row (30-20)//2 = 5; cmrxrecon round(30/3) x round(20/2)
# = 10x10 from row 15-5 = 10, col 10-5 = 5; full-*: everything
REGION = {
    "fastmri": (slice(5, 25), slice(0, 20)),
    "cmrxrecon": (slice(10, 20), slice(5, 15)),
    "full-volume": (slice(None), slice(None)),
    "full-per-image": (slice(None), slice(None)),
    "cmrxrecon2025": (slice(10, 20), slice(5, 15)),  # the same ranking crop as 2023
}


def _peaked(rng, shape):
    """A bright off-centre blob on a dim, noisy background: every crop changes the
    ratio of peak to RMS, so a wrong region gives a wrong fingerprint."""
    h, w = shape[-2:]
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    blob = np.exp(-((y - 0.45 * h) ** 2 + (x - 0.55 * w) ** 2) / (0.02 * h * w))
    return 0.05 + 0.1 * rng.random(shape) + blob


def test_conventions_are_documented():
    assert set(CONVENTION_HELP) == set(CONVENTIONS)
    assert {"fastmri", "cmrxrecon", "full-volume", "full-per-image"} | {"cmrxrecon2025"} == set(
        CONVENTIONS
    )


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_fingerprint_identity_per_image(rng, convention):
    """PSNR + 10 log10(NMSE) == 10 log10(peak^2 / mean(target^2)) over the scored
    region, whatever the reconstruction (the error cancels)."""
    region = REGION[convention]
    for trial in range(3):
        target = _peaked(rng, (30, 20)) * 10.0**trial
        recon = target * (1 + 0.1 * trial) + 0.05 * target.max() * rng.standard_normal(target.shape)
        m = convention_metrics(target[None], recon[None], convention)
        scored = target[region]
        expected = 10 * np.log10(scored.max() ** 2 / np.mean(scored**2))
        assert m["psnr"] + 10 * np.log10(m["nmse"]) == pytest.approx(expected, abs=1e-9)
        assert m["fingerprint_db"] == pytest.approx(expected, abs=1e-9)
        assert fingerprint_db(scored) == pytest.approx(expected, abs=1e-12)
    if convention in ("fastmri", "cmrxrecon"):  # the region matters by far more than rounding
        full = 10 * np.log10(target.max() ** 2 / np.mean(target**2))
        assert abs(m["fingerprint_db"] - full) > 0.2


def test_fingerprint_volume_max_versus_per_image(rng):
    """full-volume: one fingerprint per volume (its max, its mean square); full-per-image:
    the mean of the images' own fingerprints, each exact per image."""
    target = _peaked(rng, (3, 16, 18)) * np.array([1.0, 0.3, 0.05])[:, None, None]
    recon = target + 0.02 * rng.standard_normal(target.shape)
    vol = convention_metrics(target, recon, "full-volume")
    vol_fp = 10 * np.log10(target.max() ** 2 / np.mean(target**2))
    assert vol["psnr"] + 10 * np.log10(vol["nmse"]) == pytest.approx(vol_fp, abs=1e-9)
    assert vol["fingerprint_db"] == pytest.approx(vol_fp, abs=1e-9)
    per = convention_metrics(target, recon, "full-per-image")
    own = [10 * np.log10(t.max() ** 2 / np.mean(t**2)) for t in target]
    assert per["fingerprint_db"] == pytest.approx(np.mean(own), abs=1e-9)
    for t, r, fp in zip(target, recon, own, strict=True):
        one = cmrxrecon_image_metrics(t, r)
        assert one["psnr"] + 10 * np.log10(one["nmse"]) == pytest.approx(fp, abs=1e-9)
    # dim images scored against the volume max lift the volume's fingerprint
    assert vol["fingerprint_db"] > per["fingerprint_db"] + 1.0
    # the table statistic (mean PSNR + log of mean NMSE) is >= the mean exact one
    assert per["psnr"] + 10 * np.log10(per["nmse"]) >= per["fingerprint_db"] - 1e-12
    # full-volume equals fastMRI's metrics when the (W, W) crop is a no-op
    square = target[:, :16, :16]
    a = convention_metrics(square, recon[:, :16, :16], "full-volume")
    b = fastmri_volume_metrics(square, recon[:, :16, :16])
    assert all(a[k] == pytest.approx(b[k]) for k in METRIC_NAMES)


def test_full_volume_crops_a_larger_recon_to_the_target(rng):
    target = _peaked(rng, (2, 12, 10))
    recon = rng.random((2, 16, 14))
    recon[:, 2:14, 2:12] = target
    m = convention_metrics(target, recon, "full-volume")
    assert m["nmse"] == pytest.approx(0.0) and m["ssim"] == pytest.approx(1.0)
    # fastmri crops the 12x10 target to 10x10, full-volume keeps all 12 rows
    assert m["fingerprint_db"] == pytest.approx(fingerprint_db(target), abs=1e-12)
    assert convention_metrics(target, recon, "fastmri")["fingerprint_db"] == pytest.approx(
        fingerprint_db(target[:, 1:11]), abs=1e-12
    )


def test_fingerprint_edge_cases_and_unknown_convention(rng):
    assert fingerprint_db(np.zeros((4, 4))) == math.inf
    assert fingerprint_db(np.full((4, 4), 2.0)) == pytest.approx(0.0)
    assert fingerprint_db(np.array([[1.0, 0.0]])) == pytest.approx(10 * np.log10(2.0))
    t = _peaked(rng, (1, 12, 12))
    with pytest.raises(DataError, match="unknown convention 'nope'"):
        convention_metrics(t, t, "nope")
    with pytest.raises(DataError, match="same N"):
        convention_metrics(t, t[:0], "full-per-image")
    # fastMRI files: the stored target is smaller than the k-space image
    t = _peaked(rng, (1, 24, 24))
    big = np.zeros((1, 32, 24))
    big[:, 4:28] = t
    assert convention_metrics(t, big, "full-per-image")["nmse"] == 0.0
    # ranking crop of the 32x24 matrix: 11x12, taken from the target's centre too
    m = convention_metrics(t, big, "cmrxrecon")
    assert m["nmse"] == 0.0
    assert m["fingerprint_db"] == pytest.approx(fingerprint_db(t[0, 7:18, 6:18]), abs=1e-12)
