"""Sampling masks: exact line sets, fastMRI draw sequences, k-t masks, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmrecon.errors import MaskError
from fmrecon.physics import masks as M
from fmrecon.physics.masks import MASK_KINDS, MaskFunc, create_mask

FNAME_SEED = tuple(map(ord, "file1000001.h5"))  # fastMRI's per-file seed
CMRX_KINDS = [
    *["cmrxrecon-uniform", "cmrxrecon24-uniform", "kt-uniform", "kt-gaussian", "kt-radial"],
    *["cmrxrecon25-uniform", "cmrxrecon25-kt-uniform", "cmrxrecon25-kt-gaussian"],
    "cmrxrecon25-kt-radial",
]  # the 2025 kinds' own tests: test_masks_2025.py
FASTMRI_KINDS = ["random", "equispaced", "equispaced-fraction"]


def lines(mask: np.ndarray) -> list[int]:
    """Sampled ky indices of a line mask (H, W) (checks it is a line mask)."""
    assert (mask == mask[:1]).all(), "not the same for every readout row"
    return np.flatnonzero(mask[0]).tolist()


def make(kind, r, **kw) -> MaskFunc:
    if kind in FASTMRI_KINDS:
        kw.setdefault("center_fraction", 0.08)
    return create_mask(kind, r, **kw)


# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_kind():
    assert list(MASK_KINDS) == CMRX_KINDS + FASTMRI_KINDS
    for name, cls in MASK_KINDS.items():
        assert cls.kind == name and issubclass(cls, MaskFunc)
        assert name in M.__doc__


@pytest.mark.parametrize("kind", CMRX_KINDS + FASTMRI_KINDS)
@pytest.mark.parametrize("shape", [(32, 64), (3, 32, 64)])
def test_shape_and_dtype(kind, shape):
    m = make(kind, 4, seed=0)(shape, seed=1)
    assert m.shape == shape and m.dtype == np.bool_ and m.flags.c_contiguous


# ------------------------------------------------------------------------ CMRxRecon exact lines


def test_cmrxrecon_uniform_hand_case():
    # MATLAB mask(:, 1:4:end) = 1 -> 0-based 0, 4, 8, 12, 16; 4 ACS from 20 // 2 - 2 = 8
    m = create_mask("cmrxrecon-uniform", 4, num_acs=4)((5, 20))
    assert lines(m) == [0, 4, 8, 9, 10, 11, 12, 16]


def test_cmrxrecon_uniform_default_24_acs():
    m = create_mask("cmrxrecon-uniform", 10)((4, 64))
    acs = list(range(64 // 2 - 12, 64 // 2 + 12))  # 20..43
    assert lines(m) == sorted({0, 10, 50, 60} | set(acs))
    assert create_mask("cmrxrecon-uniform", 10).center_lines == 24


def test_cmrxrecon24_uniform_hand_case():
    # UniformSampling.m: zpad(ones(nx, 16), [nx, ny]) -> 15 - 8 = 7..22, plus 0:4:end
    m = create_mask("cmrxrecon24-uniform", 4)((2, 30))
    assert lines(m) == [0, 4, *range(7, 23), 24, 28]
    assert create_mask("cmrxrecon24-uniform", 8).center_lines == 16


def test_cmrxrecon_explicit_offset_and_seed_ignored():
    f = create_mask("cmrxrecon-uniform", 4, num_acs=2)
    assert lines(f((1, 16), offset=1)) == [1, 5, 7, 8, 9, 13]
    assert (f((2, 16), seed=1) == f((2, 16), seed=2)).all()


@pytest.mark.parametrize(
    "w,n,cmrx,fastmri",
    [
        (20, 4, [8, 9, 10, 11], [8, 9, 10, 11]),
        (21, 4, [8, 9, 10, 11], [9, 10, 11, 12]),  # odd W: the conventions differ
        (20, 3, [9, 10, 11], [9, 10, 11]),
        (21, 3, [9, 10, 11], [9, 10, 11]),
    ],
)
def test_centre_placement_odd_even(w, n, cmrx, fastmri):
    # CMRxRecon (zpad): start W//2 - n//2; fastMRI: start (W - n + 1) // 2
    c = create_mask("cmrxrecon24-uniform", 8, num_acs=n)
    assert list(range(w))[c.acs_slices(4, w)[1]] == cmrx
    f = create_mask("random", 2, center_fraction=n / w + 1e-9)
    assert f.num_center_lines(w) == n
    assert list(range(w))[f.acs_slices(4, w)[1]] == fastmri
    assert set(lines(c((1, w)))) >= set(cmrx)


# ----------------------------------------------------------------------------- fastMRI exact lines


def test_equispaced_fraction_hand_cases():
    # W=20, cf=0.1: n=2 centre from (20-2+1)//2 = 9; adj = 4*(2-20)/(2*4-20) = 6
    f = create_mask("equispaced-fraction", 4, center_fraction=0.1)
    assert f.adjusted_acceleration(20) == 6
    assert lines(f((1, 20), offset=0)) == [0, 6, 9, 10, 12, 18]
    # W=12, cf=1/6, R=2: n=2 (5, 6); adj=2.5; around([0, 2.5, 5, 7.5, 10]) = [0, 2, 5, 8, 10]
    f = create_mask("equispaced-fraction", 2, center_fraction=1 / 6)
    assert f.adjusted_acceleration(12) == 2.5
    assert lines(f((1, 12), offset=0)) == [0, 2, 5, 6, 8, 10]


def test_center_lines_use_python_round():
    # round(20 * 0.125) = round(2.5) = 2 (half to even), centre 9, 10; adj 6, offset 1
    f = create_mask("equispaced-fraction", 4, center_fraction=0.125)
    assert f.num_center_lines(20) == 2 and f.center_lines is None
    assert lines(f((1, 20), offset=1)) == [1, 7, 9, 10, 13]


def test_equispaced_hand_case():
    f = create_mask("equispaced", 4, center_fraction=0.1)
    assert lines(f((1, 20), offset=1)) == [1, 5, 9, 10, 13, 17]


def test_equispaced_fraction_impossible_hand_case():
    # W=16, cf=0.25, R=4: 4 centre lines = W/R, so adj = R(n-W)/(nR-W) divides by zero
    with pytest.raises(MaskError, match="unreachable"):
        create_mask("equispaced-fraction", 4, center_fraction=0.25)


# ----------------------------------------------------------------------------- fastMRI draws


def _centre(w, cf):
    n = round(w * cf)
    c = np.zeros(w, bool)
    c[(w - n + 1) // 2 : (w - n + 1) // 2 + n] = True
    return c, n


def _replicate(kind, w, r, cf, rng):
    """fastMRI's draw sequence written out with the RandomState ``rng``."""
    centre, n = _centre(w, cf)
    rng.randint(1)  # choose_acceleration
    out = np.zeros(w, bool)
    if kind == "random":
        out = rng.uniform(size=w) < (w / r - n) / (w - n)
    elif kind == "equispaced":
        out[rng.randint(0, round(r)) :: r] = True
    else:
        adj = r * (n - w) / (n * r - w)
        offset = rng.randint(0, high=round(adj))
        out[np.around(np.arange(offset, w - 1, adj)).astype(np.uint)] = True
    return out | centre


@pytest.mark.parametrize("kind", FASTMRI_KINDS)
def test_fastmri_per_file_seed_matches_hand_replication(kind):
    w, r, cf = 368, 4, 0.08
    f = create_mask(kind, r, center_fraction=cf, seed=123)
    got = f((640, w), seed=FNAME_SEED)
    rng = np.random.RandomState()
    rng.seed(FNAME_SEED)
    assert lines(got) == np.flatnonzero(_replicate(kind, w, r, cf, rng)).tolist()
    # the same seed again, through a fresh object: same mask
    again = create_mask(kind, r, center_fraction=cf)((2, 640, w), seed=FNAME_SEED)
    assert (again == got[None]).all()


@pytest.mark.parametrize("kind", FASTMRI_KINDS)
def test_fastmri_object_stream_and_temp_seed(kind):
    w, r, cf = 320, 4, 0.08
    f = create_mask(kind, r, center_fraction=cf, seed=42)
    rng = np.random.RandomState(42)
    first = lines(f((1, w)))
    f((1, w), seed=7)  # a per-call seed must not disturb the object's stream
    second = lines(f((1, w)))
    assert first == np.flatnonzero(_replicate(kind, w, r, cf, rng)).tolist()
    assert second == np.flatnonzero(_replicate(kind, w, r, cf, rng)).tolist()


@pytest.mark.parametrize("kind", FASTMRI_KINDS)
def test_fastmri_kinds_equal_fastmri_subsample(kind):
    """The fastmri package's own mask functions (fastmri.data.subsample) as the
    oracle: per-call seeds (ints and per-file name seeds), odd and even widths,
    both centre fractions, explicit offsets and the object's seeded stream."""
    from fastmri.data import subsample

    cls = {
        "random": subsample.RandomMaskFunc,
        "equispaced": subsample.EquiSpacedMaskFunc,
        "equispaced-fraction": subsample.EquispacedMaskFractionFunc,
    }[kind]

    def reference(func, w, seed=None, offset=None):
        mask, n_low = func((1, 16, w, 2), offset=offset, seed=seed)
        return np.flatnonzero(mask.numpy().reshape(-1)).tolist(), int(n_low)

    seeds = [0, 1, 7, 12345, FNAME_SEED, tuple(map(ord, "file_brain_AXT2_200_6002.h5"))]
    for w, r, cf in [(368, 4, 0.08), (320, 8, 0.04), (333, 4, 0.08), (41, 4, 0.08)]:
        ours = create_mask(kind, r, center_fraction=cf)
        ref = cls([cf], [r])
        for seed in seeds:
            want, n_low = reference(ref, w, seed)
            assert lines(ours((16, w), seed=seed)) == want, (w, r, cf, seed)
            assert ours.num_center_lines(w) == n_low
        if ours.has_offset:
            for offset in range(min(r, 3)):
                want, _ = reference(ref, w, seed=3, offset=offset)
                assert lines(ours((16, w), seed=3, offset=offset)) == want, (w, offset)
    # a seeded object draws the same stream as fastMRI's seeded object
    ours, ref = create_mask(kind, 4, center_fraction=0.08, seed=42), cls([0.08], [4], seed=42)
    for _ in range(3):
        assert lines(ours((16, 320))) == reference(ref, 320)[0]


@pytest.mark.parametrize("kind", FASTMRI_KINDS)
def test_fastmri_determinism(kind):
    f = create_mask(kind, 4, center_fraction=0.08)
    a, b = f((1, 368), seed=1), f((1, 368), seed=1)
    assert (a == b).all()
    assert not (f((1, 368), seed=2) == a).all()
    if f.has_offset:  # an explicit offset makes the line set deterministic
        assert len({tuple(lines(f((1, 368), seed=s, offset=2))) for s in range(3)}) == 1


# ----------------------------------------------------------------------------- accelerations


def test_fastmri_achieved_acceleration_knee():
    w = 368  # fastMRI knee
    for r, cf in [(4, 0.08), (8, 0.04)]:
        rs = [
            w / len(lines(make("random", r, center_fraction=cf)((1, w), seed=s))) for s in range(40)
        ]
        assert abs(np.mean(rs) - r) / r < 0.06
        for s in range(5):
            m = make("equispaced-fraction", r, center_fraction=cf)((1, w), seed=s)
            assert abs(w / len(lines(m)) - r) / r < 0.1
        # plain equispaced does not adjust for the centre: the outer lines are W/R
        f = make("equispaced", r, center_fraction=cf)
        outer = set(lines(f((1, w), seed=0))) - set(range(w)[f.acs_slices(1, w)[1]])
        assert abs(len(outer) - (w - round(w * cf)) / r) <= 2


@pytest.mark.parametrize("kind", ["cmrxrecon-uniform", "cmrxrecon24-uniform", "kt-uniform"])
@pytest.mark.parametrize("r", [4, 8, 10])
def test_cmrx_uniform_acceleration_not_counting_acs(kind, r):
    w = 246  # CMRxRecon cine
    f = create_mask(kind, r)
    m = f((12, 4, w))
    acs = set(range(w)[f.acs_slices(4, w)[1]])
    for frame in m:
        outer = set(lines(frame)) - acs
        assert abs(len(outer) - (w - len(acs)) / r) <= 1  # R counts only non-ACS lines
        assert w / len(lines(frame)) < r  # so the total acceleration is below R


@pytest.mark.parametrize("r", [4, 8, 12, 16, 20, 24])
def test_kt_gaussian_lines_per_frame(r):
    w = 246
    f = create_mask("kt-gaussian", r, seed=0)
    m = f((12, 2, w))
    tr = math.floor(w / r + 0.5)  # MATLAB round(ny / R) drawn lines per frame
    for frame in m:
        n = len(lines(frame))
        assert tr <= n <= tr + 16
    assert abs(w / tr - r) / r < 0.05


@pytest.mark.parametrize("hw", [(400, 246), (448, 204)])
@pytest.mark.parametrize("r", [4, 8, 12, 16, 20, 24])
def test_kt_radial_acceleration(hw, r):
    m = create_mask("kt-radial", r)((4, *hw))
    for frame in m:
        assert abs(frame.size / frame.sum() - r) / r < 0.15


# ----------------------------------------------------------------------------- k-t masks


@pytest.mark.parametrize("kind", ["kt-uniform", "kt-gaussian", "kt-radial"])
def test_kt_masks_vary_over_frames_and_keep_acs(kind):
    h, w = 64, 246
    f = create_mask(kind, 8, seed=3)
    m = f((10, h, w))
    assert f.varies_over_frames and f.center_lines == 16
    assert len({frame.tobytes() for frame in m}) > 1
    rows, cols = f.acs_slices(h, w)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (
        (16, 16) if kind == "kt-radial" else (h, 16)
    )
    assert cols.start == w // 2 - 8
    assert m[:, rows, cols].all()


def test_kt_uniform_even_frames_hand_case():
    # line y at frame t iff (y - t) % 4 == 0, plus 2 ACS lines 9, 10
    m = create_mask("kt-uniform", 4, num_acs=2)((4, 3, 20))
    assert [lines(fr) for fr in m] == [
        [0, 4, 8, 9, 10, 12, 16],
        [1, 5, 9, 10, 13, 17],
        [2, 6, 9, 10, 14, 18],
        [3, 7, 9, 10, 11, 15, 19],
    ]


def test_kt_uniform_odd_frames_reproduce_official_index_quirk():
    # ktUniformSampling.m centres frames with floor(nt)/2: for odd nt every sample
    # (y, t) moves to column-major position t*W + y - W/2. W=20, nt=3, R=4:
    # frame 0 rows 0..9 come from y = row+10 at t=0 (12, 16 -> 2, 6), rows 10..19
    # from y = row-10 at t=1 (1, 5, 9 -> 11, 15, 19); positions <= 0 go to row 0.
    f = create_mask("kt-uniform", 4, num_acs=0)
    assert [lines(fr) for fr in f((3, 1, 20))] == [[0, 2, 6, 11, 15, 19], [3, 7, 12, 16], [0, 4, 8]]
    clean = M.KtUniformMask(4, num_acs=0, matlab_indexing=False)((3, 1, 20))
    assert [lines(fr) for fr in clean] == [[0, 4, 8, 12, 16], [1, 5, 9, 13, 17], [2, 6, 10, 14, 18]]


def test_kt_two_d_shape_is_frame_zero():
    for kind in ["kt-uniform", "kt-gaussian", "kt-radial"]:
        f = create_mask(kind, 8, seed=5)
        assert (f((40, 246), seed=9) == f((6, 40, 246), seed=9)[0]).all()
    assert lines(create_mask("kt-uniform", 4, num_acs=2)((2, 20))) == [0, 4, 8, 9, 10, 12, 16]


def test_kt_gaussian_seeding():
    f = create_mask("kt-gaussian", 8, seed=0)
    a = f((6, 2, 246), seed=FNAME_SEED)
    assert (a == f((6, 2, 246), seed=FNAME_SEED)).all()
    assert not (a == f((6, 2, 246), seed=1)).all()
    # a per-call seed draws the official generator's MATLAB seed (randi([1 1000]))
    rng = np.random.RandomState()
    rng.seed(FNAME_SEED)
    assert (a == f.from_matlab_seed((6, 2, 246), int(rng.randint(1, 1001)))).all()
    # the density is Gaussian over ky: the centre is sampled more than the edges
    m = f.from_matlab_seed((200, 1, 246), 10)[:, 0]
    outside = np.ones(246, bool)
    outside[f.acs_slices(1, 246)[1]] = False
    freq = m.mean(0)
    assert freq[100:146][outside[100:146]].mean() > 2 * np.r_[freq[:30], freq[-30:]].mean()


def test_matlab_rng_matches_matlab_rand():
    # MATLAB: rng default (seed 0); rand(3) -> 0.8147 0.9058 0.1270 0.9134 ... (column-major)
    x = M._matlab_rng(0).random_sample(9)
    want = [0.8147, 0.9058, 0.1270, 0.9134, 0.6324, 0.0975, 0.2785, 0.5469, 0.9575]
    # MATLAB prints 4 decimals: each value is within half a unit of the 4th (5e-5)
    np.testing.assert_allclose(x, want, rtol=0, atol=5e-5)
    assert M._matlab_rng(1).random_sample() == pytest.approx(0.417022004702574, abs=1e-15)


def _literal_kt_gaussian(ny, nt, r, seed, alpha=0.2):
    """ktGaussianSampling.m + ktdup.m transcribed line by line (global ktdup,
    1-based linear indices), as an independent check of the per-frame code."""
    mround = M._matlab_round
    p1 = np.arange(-(ny // 2), math.ceil(ny / 2)).astype(float)
    tr = int(mround(ny / r))
    prob = 0.1 + alpha / (1 - alpha + 1e-10) * np.exp(-(p1**2) / (1 * (ny / 5) ** 2))
    sds = mround(1e6 * M._matlab_rng(seed).random_sample(nt))
    ph, ti = [], []
    for i in range(-(nt // 2), math.ceil(nt / 2)):
        x = M._matlab_rng(int(sds[i + nt // 2])).random_sample(tr)
        edges = np.concatenate([[0], np.cumsum(prob)]) / prob.sum()
        ph += list(np.searchsorted(edges, x, side="right") - ny // 2 - 1)
        ti += [i] * tr
    ph = np.array(ph, float) + math.ceil((ny + 1) / 2)
    ti = np.array(ti, float) + math.ceil((nt + 1) / 2)
    pt = (ti - 1) * ny + ph
    uq, cnt = np.unique(pt, return_counts=True)
    dup = [d for v in uq[cnt != 1] for d in np.flatnonzero(pt == v)[1:]]
    emp = np.setdiff1d(np.arange(1, ny * nt + 1), pt)
    for d in dup:
        x0, y0 = pt[d] - np.floor((pt[d] - 1) / ny) * ny, np.ceil(pt[d] / ny)
        x, y = emp - np.floor((emp - 1) / ny) * ny, np.ceil(emp / ny)
        dis = np.sqrt((x - x0) ** 2 + np.where((y - y0) ** 2 > np.finfo(float).eps, np.inf, 0))
        pt[d] = emp[np.argmin(dis)]
        emp = np.setdiff1d(emp, [pt[d]])
    samp = np.zeros(ny * nt, bool)
    samp[pt.astype(int) - 1] = True
    return samp.reshape(nt, ny)


@pytest.mark.parametrize("ny,nt,r,seed", [(246, 12, 4, 10), (203, 9, 24, 777), (50, 3, 2, 1)])
def test_kt_gaussian_equals_literal_transcription(ny, nt, r, seed):
    f = M.KtGaussianMask(r, num_acs=0)
    got = f.from_matlab_seed((nt, 1, ny), seed)[:, 0]
    assert (got == _literal_kt_gaussian(ny, nt, r, seed)).all()


def test_kt_radial_spokes():
    f = create_mask("kt-radial", 4)
    assert f.beams == 75  # floor(180 / (0.6 * 4))
    a0, a1 = f.frame_angles(0), f.frame_angles(1)
    assert len(a0) == 76 and a0[0] == 0 and a0[-1] == 180
    assert a1[0] == 137.5 and a1[-1] == 137.5 + 180
    m = f((2, 400, 246))
    # angles 0 and 180 (exact rot90 cases): aux row round(400/2)=200 and its flip 201
    # (1-based) cropped to 400 rows -> 0-based rows 199 and 200 fully sampled
    assert m[0, 199].all() and m[0, 200].all() and not m[1, 199].all()
    assert not (m[0] == m[1]).all()
    assert (f((2, 400, 246), seed=1) == m).all()  # deterministic


# ----------------------------------------------------------------------------- errors


def _one_line_error(fn, match):
    with pytest.raises(MaskError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_unknown_kind_lists_valid_kinds():
    msg = _one_line_error(lambda: create_mask("gaussian", 4), "unknown mask kind")
    assert all(k in msg for k in MASK_KINDS)


@pytest.mark.parametrize("kind", CMRX_KINDS + FASTMRI_KINDS)
@pytest.mark.parametrize("r", [1, 0.5, -4, float("nan"), float("inf"), True, "4", None])
def test_bad_acceleration(kind, r):
    _one_line_error(lambda: make(kind, r), "acceleration")


@pytest.mark.parametrize(
    "kind", ["cmrxrecon-uniform", "cmrxrecon24-uniform", "kt-uniform", "equispaced"]
)
def test_integer_acceleration_required(kind):
    _one_line_error(lambda: make(kind, 4.5), "integer")
    assert make(kind, 4.0).acceleration == 4


@pytest.mark.parametrize("kind", FASTMRI_KINDS)
def test_center_fraction_checks(kind):
    _one_line_error(lambda: create_mask(kind, 4), "needs center_fraction")
    for cf in [0, 1, 1.5, -0.1, float("nan"), "0.08", True]:
        _one_line_error(lambda cf=cf: create_mask(kind, 4, center_fraction=cf), "center_fraction")
    _one_line_error(lambda: create_mask(kind, 16, center_fraction=0.08), "unreachable")
    _one_line_error(lambda: create_mask(kind, 4, center_fraction=0.08, num_acs=24), "not num_acs")
    # W-dependent: round(11 * 0.23) = 3 centre lines >= 11 / 4
    f = create_mask(kind, 4, center_fraction=0.23)
    _one_line_error(lambda: f((4, 11)), "unreachable for W=11")


@pytest.mark.parametrize("kind", CMRX_KINDS)
def test_cmrx_parameter_checks(kind):
    _one_line_error(lambda: create_mask(kind, 4, center_fraction=0.08), "not center_fraction")
    for bad in [-1, 2.5, True, "16"]:
        _one_line_error(lambda bad=bad: create_mask(kind, 4, num_acs=bad), "num_acs")
    _one_line_error(lambda: create_mask(kind, 4, num_acs=24)((4, 20)), "do(es)? not fit")


def test_size_dependent_errors():
    _one_line_error(lambda: create_mask("cmrxrecon-uniform", 4)((8, 20)), "24 ACS lines")
    _one_line_error(lambda: create_mask("cmrxrecon24-uniform", 20, num_acs=2)((8, 20)), "W=20")
    _one_line_error(lambda: create_mask("kt-radial", 4)((2, 10, 64)), "16x16")
    _one_line_error(lambda: create_mask("kt-radial", 400), "too high")


@pytest.mark.parametrize("shape", [(5,), (0, 10), (1, 2, 3, 4), "ab", (2.5, 3), None, (4, -2)])
def test_bad_shape(shape):
    _one_line_error(lambda: create_mask("cmrxrecon24-uniform", 4)(shape), "mask shape")


@pytest.mark.parametrize("seed", [-1, 2**40, "x", 1.5, (1, -2)])
def test_bad_seed(seed):
    _one_line_error(
        lambda: create_mask("random", 4, center_fraction=0.08)((4, 32), seed=seed), "seed"
    )
    _one_line_error(lambda: create_mask("kt-gaussian", 4, seed=seed), "seed")


def test_bad_offset():
    _one_line_error(
        lambda: make("cmrxrecon-uniform", 4)((4, 64), offset=4), r"offset must be in \[0, 4\)"
    )
    _one_line_error(lambda: make("equispaced", 4)((4, 64), offset=1.0), "offset must be an int")
    _one_line_error(
        lambda: make("equispaced-fraction", 4)((4, 368), offset=99), "offset must be in"
    )
    for kind in ["random", "kt-gaussian", "kt-radial"]:
        _one_line_error(lambda kind=kind: make(kind, 4)((4, 64), offset=0), "has no offset")


def test_mask_grid_combines_every_acceleration_with_every_fraction():
    from fmrecon.physics.masks import mask_grid

    grid = mask_grid("equispaced-fraction", [4, 8], [0.08, 0.04])
    assert [(a, c) for a, c, _ in grid] == [(4, 0.08), (4, 0.04), (8, 0.08), (8, 0.04)]
    assert all(f.acceleration == a for a, _, f in grid)
    assert [(a, c) for a, c, _ in mask_grid("cmrxrecon-uniform", [10])] == [(10, None)]
    with pytest.raises(MaskError, match="needs --cf"):
        mask_grid("random", [4], None, option="--cf")
    with pytest.raises(MaskError, match="applies to fastMRI masks"):
        mask_grid("kt-radial", [8], [0.08])
