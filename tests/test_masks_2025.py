"""CMRxRecon 2025 masks (github.com/CmrxRecon/CMRxRecon2025, CMRxReconMaskGeneration/
TaskAll/Toolbox_Mask_Generator/): hand-worked cases from the MATLAB code, ACS, R as
the MATLAB code counts it, determinism, pattern names, mask/k-space shape errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmrecon.errors import DataError, MaskError
from fmrecon.physics import masks as M
from fmrecon.physics.masks import (
    CMRXRECON25_ACCELERATIONS,
    CMRXRECON25_PATTERNS,
    MASK_KINDS,
    cmrxrecon25_mask,
    create_mask,
    mask_frames,
    parse_pattern_2025,
)

KINDS25 = [
    "cmrxrecon25-uniform",
    "cmrxrecon25-kt-uniform",
    "cmrxrecon25-kt-gaussian",
    "cmrxrecon25-kt-radial",
]


def lines(frame: np.ndarray) -> list[int]:
    """Sampled ky of a line mask (H, W) (checks every readout row is the same)."""
    assert (frame == frame[:1]).all(), "not a line mask"
    return np.flatnonzero(frame[0]).tolist()


def test_kinds_registered_and_named_after_the_official_patterns():
    assert all(k in MASK_KINDS for k in KINDS25)
    # ktMaskGenerator.m's cases, in its order
    assert list(CMRXRECON25_PATTERNS) == ["Uniform", "ktUniform", "ktGaussian", "ktRadial"]
    assert list(CMRXRECON25_PATTERNS.values()) == KINDS25
    assert CMRXRECON25_ACCELERATIONS == (8, 16, 24)  # MaskGeneration_TrainingSet.m
    for kind in KINDS25:
        f = create_mask(kind, 8)
        assert f.center_lines == 20  # ChallengeMaskGen_TrainingSet.m: ncalib = 20
        assert cmrxrecon25_mask(f.official_pattern, 16).kind == kind


# ----------------------------------------------------------------------------- Uniform


def test_uniform_hand_case_even_width():
    # UniformSampling.m, nx=4, ny=40, R=8, ncalib=20:
    # zpad(ones(4, 20), [4, 40]): columns floor(40/2)+1+ceil(-20/2) = 11 .. 20+10 = 30
    # (1-based) -> 0-based 10..29; mask(:, 1:8:end) -> 1, 9, 17, 25, 33 -> 0, 8, 16, 24, 32;
    # ktMaskGenerator.m 'Uniform': repmat over nt = 3 frames
    m = create_mask("cmrxrecon25-uniform", 8)((3, 4, 40))
    want = [0, 8, *range(10, 30), 32]
    assert m.shape == (3, 4, 40) and all(lines(fr) == want for fr in m)


def test_uniform_hand_case_odd_width():
    # ny=41: floor(41/2) = 20, the same ACS columns 10..29; 1:8:41 also reaches 41 -> 40
    m = create_mask("cmrxrecon25-uniform", 8)((4, 41))
    assert lines(m) == [0, 8, *range(10, 30), 32, 40]


# ----------------------------------------------------------------------------- ktUniform


def test_kt_uniform_two_d_is_the_official_nt_1_mask():
    # ktUniformSampling.m with nx=4, ny=40, nt=1, R=8 (a 4-D file: nt = 1), ncalib = 0:
    # ptmp(1:8:40) = 1 -> ind = 1, 9, 17, 25, 33; ph = ind-1-20 = -20, -12, -4, 4, 12;
    # ti = 0 - floor(1)/2 = -0.5. ktdup: pt = (ti+1-1)*40 + ph+21 = -19, -11, -3, 5, 13;
    # ind2xy: x = 21, 29, 37, 5, 13, y = 0, 0, 0, 1, 1 -> ph = 0, 8, 16, -16, -8,
    # ti = -1, -1, -1, 0, 0; ind = 40 ti + ph + 21 = -19, -11, -3, 5, 13; ind <= 0 -> 1:
    # samples 1, 5, 13 (1-based) -> ky 0, 4, 12.
    f = create_mask("cmrxrecon25-kt-uniform", 8, num_acs=0)
    assert lines(f((4, 40))) == [0, 4, 12]
    assert (f((4, 40)) == f((1, 4, 40))[0]).all()
    # 2024's kt-uniform takes frame 0 of nt = 2 instead: 0, 8, 16, 24, 32
    assert lines(create_mask("kt-uniform", 8, num_acs=0)((4, 40))) == [0, 8, 16, 24, 32]
    # with the 2025 ACS: 20 lines from 40 // 2 - 10 = 10
    assert lines(create_mask("cmrxrecon25-kt-uniform", 8)((4, 40))) == [0, 4, *range(10, 30)]


def test_kt_uniform_even_frames_sheared_lattice():
    # nt even: line y at frame t iff (y - t) % R == 0 (no index quirk), plus 20 ACS 10..29
    m = create_mask("cmrxrecon25-kt-uniform", 8)((2, 1, 40))
    acs = list(range(10, 30))
    assert lines(m[0]) == sorted({0, 8, 16, 24, 32} | set(acs))
    assert lines(m[1]) == sorted({1, 9, 17, 25, 33} | set(acs))


# ----------------------------------------------------------------------------- ktGaussian


def test_kt_gaussian_hand_case():
    # ktGaussianSampling.m, ny=20, nt=2, R=8, seed=1, ncalib=0 (MATLAB rng(s) = NumPy
    # RandomState(s), checked against MATLAB's rand in test_masks.py):
    # tr = round(20/8) = round(2.5) = 3 lines per frame (Python's round would give 2);
    # rng(1); rand(2,1) = 0.417022, 0.720324 -> tmpSd = 417022, 720324.
    # randp: rng(417022); rand(3,1) = 0.69734, 0.02166, 0.64281; histc over
    # [0; cumsum(prob)]/sum(prob) (0.5597, 0.6485, 0.7266 around the centre) -> bins
    # 13, 1, 12 -> ky 12, 0, 11. rng(720324): 0.48056, 0.27025, 0.55145 -> bins 11, 8, 11
    # -> ky 10, 7, 10; ktdup moves the repeated 10 to the nearest free ky of its frame,
    # 9 and 11 tie and min() takes the first vacancy: 9.
    f = create_mask("cmrxrecon25-kt-gaussian", 8, num_acs=0)
    m = f.from_matlab_seed((2, 3, 20), 1)
    assert [lines(fr) for fr in m] == [[0, 11, 12], [7, 9, 10]]
    edges = M._kt_gaussian_edges(20, 0.2)
    assert edges[11:14] == pytest.approx([0.5597, 0.6485, 0.7266], abs=5e-5)


@pytest.mark.parametrize("r", CMRXRECON25_ACCELERATIONS)
def test_kt_gaussian_lines_per_frame_and_acs(r):
    w = 246
    f = create_mask("cmrxrecon25-kt-gaussian", r)
    m = f.from_matlab_seed((12, 2, w), 437)
    drawn = M.KtGaussianMask(r, num_acs=0).from_matlab_seed((12, 2, w), 437)
    tr = math.floor(w / r + 0.5)  # MATLAB round(ny/R) distinct lines per frame (R=16: 15)
    acs = set(range(w // 2 - 10, w // 2 + 10))  # zpad: 113..132
    for fr, dr in zip(m, drawn, strict=True):
        assert len(lines(dr)) == tr  # R counts only the drawn lines
        assert set(lines(fr)) == set(lines(dr)) | acs  # ACS OR'ed on top
    # the 2025 mask is the 2024 construction with 20 ACS lines: same drawn lines
    m24 = create_mask("kt-gaussian", r, num_acs=20).from_matlab_seed((12, 2, w), 437)
    assert (m24 == m).all()


def test_kt_gaussian_determinism_and_seed_recovery():
    f = create_mask("cmrxrecon25-kt-gaussian", 8, seed=0)
    a = f((6, 2, 120), seed=(1, 2, 3))
    assert (a == f((6, 2, 120), seed=(1, 2, 3))).all()
    assert not (a == f((6, 2, 120), seed=4)).all()
    # an official mask's MATLAB seed (randi([1 1000])) is found among the 1000 candidates
    official = f.from_matlab_seed((5, 3, 120), 437)
    assert f.matlab_seed_of(official) == 437
    assert f.matlab_seed_of(official[:, :1]) == 437  # any number of readout rows
    assert f.matlab_seed_of(official[0]) == f.matlab_seed_of(official[:1])
    flipped = official.copy()
    flipped[2, :, 0] = ~flipped[2, :, 0]
    assert f.matlab_seed_of(flipped) is None
    # a mask of another R is not matched
    assert create_mask("cmrxrecon25-kt-gaussian", 16).matlab_seed_of(official) is None


# ----------------------------------------------------------------------------- ktRadial


@pytest.mark.parametrize("r,beams", [(8, 37), (16, 18), (24, 12)])
def test_kt_radial_spoke_counts(r, beams):
    # ktMaskGenerator.m: R = R * 0.6; ktRadialSampling.m: beams = floor(1/R * 180),
    # angles 0:180/beams:180 -> beams + 1 spokes; frame i + 1 starts at 137.5 i
    f = create_mask("cmrxrecon25-kt-radial", r)
    assert f.beams == beams
    a0, a2 = f.frame_angles(0), f.frame_angles(2)
    assert len(a0) == beams + 1 and a0[0] == 0 and a0[-1] == 180
    assert a2[0] == 275 and a2[-1] == 275 + 180


@pytest.mark.parametrize(
    "hw,rows,col",
    [((64, 64), [31, 32], 31), ((48, 64), [23, 24], 31), ((64, 48), [31, 32], 23)],
)
def test_kt_radial_hand_case_exact_angles(hw, rows, col):
    # R=24: 12 beams of 15 degrees, frame 1 holds 0, 90 and 180 degrees, which imrotate
    # does exactly (rot90). a = max(nx, ny) = 64; aux(round(64/2), :) = 1 -> row 32
    # (1-based); rot90 (90, counter-clockwise): B(i, j) = A(j, 65 - i) -> column 32;
    # 180: row 65 - 32 = 33. crop.m to (nx, ny): start floor(64/2) + 1 + ceil(-48/2) = 9,
    # so a 48 side moves rows/columns 32, 33 (1-based) to 24, 25 -> 0-based 23, 24.
    h, w = hw
    m = create_mask("cmrxrecon25-kt-radial", 24)((2, h, w))
    full_rows = [i for i in range(h) if m[0, i].all()]
    full_cols = [j for j in range(w) if m[0, :, j].all()]
    assert full_rows == rows and full_cols == [col]
    # 20x20 ACS block from (h//2 - 10, w//2 - 10) in every frame
    assert m[:, h // 2 - 10 : h // 2 + 10, w // 2 - 10 : w // 2 + 10].all()
    # frame 2 (137.5 + 15k never hits a multiple of 90): no full row or column
    assert not any(m[1, i].all() for i in range(h))


# ----------------------------------------------------------------------------- shared


@pytest.mark.parametrize("kind", KINDS25)
def test_acs_20_in_every_frame_and_2d_shape(kind):
    h, w = 40, 64
    f = create_mask(kind, 16, seed=2)
    m = f((5, h, w), seed=7)
    rows, cols = f.acs_slices(h, w)
    assert (cols.start, cols.stop) == (w // 2 - 10, w // 2 + 10)
    want_rows = (h // 2 - 10, h // 2 + 10) if kind.endswith("radial") else (0, h)
    assert (rows.start, rows.stop) == want_rows
    assert m[:, rows, cols].all()
    assert m.shape == (5, h, w) and m.dtype == np.bool_
    # a 2-D shape is the mask of a 4-D file, generated with nt = 1
    assert (f((h, w), seed=7) == f((1, h, w), seed=7)[0]).all()
    assert (f((5, h, w), seed=7) == m).all()  # deterministic for a given seed


@pytest.mark.parametrize("kind", KINDS25[:2])
@pytest.mark.parametrize("r", CMRXRECON25_ACCELERATIONS)
def test_uniform_masks_count_r_without_acs(kind, r):
    # "ACS not included for calculations": R is the line spacing (mask(:, 1:R:end),
    # ptmp(1:R:ny) sheared by one line per frame for nt even); the 20 ACS lines on top
    w = 246
    acs = set(range(w // 2 - 10, w // 2 + 10))
    for t, fr in enumerate(create_mask(kind, r)((12, 2, w))):
        shift = t if kind.endswith("kt-uniform") else 0
        assert set(lines(fr)) == {y for y in range(w) if (y - shift) % r == 0} | acs
        assert w / len(lines(fr)) < r  # so the achieved acceleration is below R


def test_radial_acceleration_figures():
    # ktMaskGenerator.m's realAF = numel(mask) / sum(mask(:)) of the 2025 kt-radial masks
    # (256 x 246, 6 frames): below R because of the 20x20 block and the spokes' overlap
    got = [
        (m := create_mask("cmrxrecon25-kt-radial", r)((6, 256, 246))).size / m.sum()
        for r in (8, 16, 24)
    ]
    assert got == pytest.approx([6.84, 13.14, 18.56], abs=0.01)


# ----------------------------------------------------------------------------- errors


def test_pattern_tags():
    assert parse_pattern_2025("ktRadial16") == ("ktRadial", 16)
    assert parse_pattern_2025("Uniform8") == ("Uniform", 8)
    assert parse_pattern_2025("ktGaussian24") == ("ktGaussian", 24)
    src = "P001/cine_sax_kus_ktSpiral8.mat"
    with pytest.raises(MaskError) as e:
        parse_pattern_2025("ktSpiral8", src)
    msg = str(e.value)
    assert "\n" not in msg and src in msg and "'ktSpiral'" in msg
    assert all(p in msg for p in CMRXRECON25_PATTERNS)
    with pytest.raises(MaskError, match="has no acceleration"):
        parse_pattern_2025("Uniform", src)
    with pytest.raises(MaskError, match="unknown CMRxRecon 2025 sampling pattern 'Poisson'"):
        cmrxrecon25_mask("Poisson", 8)


def test_mask_shape_mismatch_names_both_files_and_shapes():
    kpath, mpath = "P001/cine_sax_kus_ktRadial8.mat", "P001/cine_sax_mask_ktRadial8.mat"
    ok = np.ones((12, 8, 6), bool)
    assert mask_frames(ok, 12, (8, 6), mpath, kpath).shape == (12, 8, 6)
    two = mask_frames(np.eye(8, 6, dtype=bool), 3, (8, 6), mpath, kpath)
    assert two.shape == (3, 8, 6) and (two == np.eye(8, 6, dtype=bool)).all()
    cases = [
        (np.ones((10, 8, 6), bool), "(nx, ny, nt) = (8, 6, 10)"),  # frames differ
        (np.ones((12, 6, 8), bool), "(nx, ny, nt) = (6, 8, 12)"),  # matrix transposed
        (np.ones((8, 7), bool), "(nx, ny) = (8, 7)"),
    ]
    for bad, shown in cases:
        with pytest.raises(DataError) as e:
            mask_frames(bad, 12, (8, 6), mpath, kpath)
        msg = str(e.value)
        assert "\n" not in msg and mpath in msg and kpath in msg
        assert shown in msg and "(nx, ny, nt) = (8, 6, 12)" in msg


def test_dataset_refuses_a_mask_file_of_another_shape(cmrx_tree):
    from fmrecon.data.formats import discover
    from fmrecon.data.h5io import write_mat73
    from fmrecon.data.slices import SliceDataset

    sub = cmrx_tree / "MultiCoil/Cine/TrainingSet/AccFactor04/P001"
    kt = np.zeros((24, 40, 3))  # MATLAB (nx, ny, nt): 3 frames, the k-space has 4
    kt[:, ::4] = 1
    write_mat73(sub / "cine_sax_mask.mat", {"mask04": kt})
    vols, _ = discover(cmrx_tree / "MultiCoil/Cine/TrainingSet/AccFactor04")
    with pytest.raises(DataError) as e:
        SliceDataset(vols)[0]
    msg = str(e.value)
    assert str(sub / "cine_sax_mask.mat") in msg and str(sub / "cine_sax.mat") in msg
    assert "(nx, ny, nt) = (24, 40, 3)" in msg and "(nx, ny, nt) = (24, 40, 4)" in msg


def test_training_and_evaluation_grids_take_the_2025_kinds():
    from fmrecon.training.data import build_masks

    funcs = build_masks({"kind": "cmrxrecon25-kt-gaussian", "accelerations": [8, 16, 24]})
    assert [(f.kind, f.acceleration, f.center_lines) for f in funcs] == [
        ("cmrxrecon25-kt-gaussian", r, 20) for r in (8.0, 16.0, 24.0)
    ]
    with pytest.raises(MaskError, match="applies to fastMRI masks"):
        M.mask_grid("cmrxrecon25-uniform", [8], [0.08])
