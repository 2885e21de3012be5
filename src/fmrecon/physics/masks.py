"""Undersampling masks with the conventions of CMRxRecon 2023/2024/2025 and fastMRI.

Shapes: a mask is a NumPy bool array of exactly the requested shape, (H, W) or
(T, H, W). H is the readout (kx, fully sampled), W the phase-encode axis (ky)
that line masks act on; T is frames (time or weightings). Line masks are the
same for every readout row; k-t masks vary over T.

Kinds (``MASK_KINDS``, built by :func:`create_mask`):

- ``cmrxrecon-uniform``: CMRxRecon 2023. Every R-th ky line from index 0
  (MATLAB ``mask(:, 1:R:end) = 1``) plus 24 centred ACS lines starting at
  ``W // 2 - 12``. Deterministic.
- ``cmrxrecon24-uniform``: CMRxRecon 2024 Task 1 (R 4/8/10). Same construction
  with 16 ACS lines (``UniformSampling.m``). Deterministic.
- ``kt-uniform``: CMRxRecon 2024 Task 2 ``ktUniform``. Equispaced lines whose
  offset moves by one line per frame, plus 16 ACS lines. Deterministic.
- ``kt-gaussian``: CMRxRecon 2024 Task 2 ``ktGaussian``. ``round(W/R)`` lines
  per frame drawn from a Gaussian density over ky, redrawn per frame, plus 16
  ACS lines. Seeded.
- ``kt-radial``: CMRxRecon 2024 Task 2 ``ktRadial``. Pseudo-radial spokes in
  the (kx, ky) plane, rotated by 137.5 degrees per frame, plus a 16x16 fully
  sampled centre block. Deterministic.
- ``cmrxrecon25-uniform``, ``cmrxrecon25-kt-uniform``, ``cmrxrecon25-kt-gaussian``,
  ``cmrxrecon25-kt-radial``: CMRxRecon 2025 ``ktMaskGenerator.m`` patterns
  ``Uniform`` (the 2024 Task 1 lines, the same in every frame), ``ktUniform``,
  ``ktGaussian``, ``ktRadial`` (the 2024 Task 2 constructions), all with 20 ACS
  lines (a 20x20 block for ``ktRadial``); official R 8, 16, 24. See the
  "CMRxRecon 2025" section for what differs from 2024.
- ``random``, ``equispaced``, ``equispaced-fraction``: fastMRI
  (``fastmri/data/subsample.py``) random, equispaced and equispaced-fraction
  masks, including its random draws, so a seed gives fastMRI's mask.

All share the :class:`MaskFunc` interface, and so do :class:`MaskChoice`
(several mask functions as one, e.g. a training run's accelerations, one
picked per call) and :class:`StoredMask` (phase-encode lines read from a file).

Fidelity to the official CMRxRecon 2024 generators (MATLAB, Zi Wang, in
github.com/CmrxRecon/CMRxRecon2024, ``CMRxReconMaskGeneration/``:
``UniformSampling.m``, ``ktUniformSampling.m``, ``ktGaussianSampling.m``,
``ktRadialSampling.m``, ``ktdup.m``, ``randp.m``, ``ktMaskGenerator_Task2.m``;
the challenge itself ran the ``.p`` builds shipped beside them, which we
cannot read, so "exact" means "exact to the published ``.m`` sources"):

- ``cmrxrecon24-uniform``: exact. ACS "not counted in R" simply means R is the
  line spacing and the ACS block (``zpad``, start ``W // 2 - ncalib // 2``) is
  OR'ed on top, so the achieved acceleration is below R.
- ``kt-uniform``: exact, including an index quirk of the official code: it
  centres the frame axis with ``floor(nt)/2`` instead of ``floor(nt/2)``. For
  an even number of frames the mask is the intended pattern (line ``r`` at
  frame ``t`` iff ``(r - t) % R == 0``); for an odd number of frames (T1/T2
  mapping) every sample moves by ``W/2`` in column-major (ky, t) order: the
  two ky halves get different line phases and the last frame has no lines
  at ky >= W/2 (ACS aside). We
  reproduce it; ``matlab_indexing=False`` gives the intended pattern. Samples
  the MATLAB code would index out of range (odd W and odd T only, where MATLAB
  errors) are dropped.
- ``kt-gaussian``: exact algorithm (density ``0.1 + a/(1-a) exp(-ky^2/s^2)``
  with ``a = 0.2``, ``s = W/5``; per-frame seeds ``round(1e6 * rand)``;
  ``randp`` draws with replacement; ``ktdup`` moves repeats to the nearest
  free line of the same frame, lower line on ties). MATLAB's ``rng(seed)``
  Mersenne Twister equals NumPy's ``RandomState(seed)`` (``seed 0`` =
  ``5489``), so :meth:`KtGaussianMask.from_matlab_seed` reproduces an
  official mask made with ``seed = randi([1 1000])`` bit for bit, barring
  last-ulp differences of ``exp``/``sum``. Not checked against a MATLAB run
  here (no MATLAB on this machine). The per-call ``seed`` of ``__call__`` is
  ours: it seeds the draw of that MATLAB seed from 1..1000.
- ``kt-radial``: the spoke set is exact (``R_eff = 0.6 R``,
  ``beams = floor(180 / R_eff)``, angles ``137.5 (t) + k 180/beams`` for
  ``k = 0..beams``, a line at row ``round(a/2)`` of an ``a x a`` grid,
  ``a = max(H, W)``, rotated and centre-cropped to (H, W), 16x16 ``zpad``
  block). Reconstructed: the pixel rasterisation of MATLAB's
  ``imrotate(..., 'crop')`` (nearest neighbour about the grid centre
  ``(a + 1)/2``); individual spoke pixels may differ from MATLAB's.

The fastMRI kinds follow ``subsample.py``'s conventions and draw order (cited
at each step below); the tests check them against ``fastmri.data.subsample``
itself (fastmri 0.3.0: integer and file-name seeds, odd and even widths,
explicit offsets, the seeded object's stream).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from fmrecon.errors import DataError, MaskError
from fmrecon.physics.coils import num_low_frequencies

__all__ = [
    "MASK_KINDS",
    "CMRXRECON25_ACCELERATIONS",
    "CMRXRECON25_PATTERNS",
    "CMRxReconUniformMask",
    "CMRxRecon24UniformMask",
    "CMRxRecon25KtGaussianMask",
    "CMRxRecon25KtRadialMask",
    "CMRxRecon25KtUniformMask",
    "CMRxRecon25UniformMask",
    "EquispacedMask",
    "EquispacedFractionMask",
    "KtGaussianMask",
    "KtRadialMask",
    "KtUniformMask",
    "MaskChoice",
    "MaskFunc",
    "RandomMask",
    "SingleMaskFunc",
    "StoredMask",
    "FRACTION_KINDS",
    "cmrxrecon25_mask",
    "create_mask",
    "mask_frames",
    "mask_grid",
    "parse_pattern_2025",
]

Seed = int | Sequence[int] | None


# ----------------------------------------------------------------------------- helpers


def _matlab_round(x):
    """MATLAB ``round``: halves away from zero (Python/NumPy round halves to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _acs_start(size: int, n: int) -> int:
    """0-based start of a centred block of ``n`` in ``size`` (Lustig's ``zpad``:
    1-based ``floor(s/2) + 1 + ceil(-n/2)``)."""
    return size // 2 - n // 2


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_acceleration(kind: str, acceleration: Any, integer: bool) -> float:
    if not _is_number(acceleration):
        raise MaskError(f"mask '{kind}': acceleration must be a number, got {acceleration!r}")
    r = float(acceleration)
    if not math.isfinite(r) or r <= 1:
        raise MaskError(f"mask '{kind}': acceleration must be a finite number > 1, got {r}")
    if integer and r != int(r):
        raise MaskError(f"mask '{kind}': acceleration must be an integer, got {r}")
    return r


def _check_seed(seed: Any, what: str = "seed") -> None:
    if seed is None:
        return
    try:
        np.random.RandomState(seed)
    except (TypeError, ValueError) as e:
        raise MaskError(
            f"{what} must be None, an int in [0, 2**32) or a sequence of such ints, "
            f"got {seed!r} ({e})"
        ) from None


@contextlib.contextmanager
def _temp_seed(rng: np.random.RandomState, seed: Seed) -> Iterator[None]:
    """Reseed ``rng`` for the block and restore its state afterwards (fastMRI's
    ``temp_seed``); ``seed=None`` leaves the stream running."""
    if seed is None:
        yield
        return
    state = rng.get_state()
    rng.seed(seed)
    try:
        yield
    finally:
        rng.set_state(state)


def _parse_shape(shape: Any) -> tuple[int, int, int, bool]:
    """(H, W) or (T, H, W) -> (T, H, W, is_2d)."""
    try:
        dims = tuple(int(d) for d in shape)
        ok = all(int(d) == d for d in shape)
    except (TypeError, ValueError):
        dims, ok = (), False
    if not ok or len(dims) not in (2, 3) or any(d < 1 for d in dims):
        raise MaskError(f"mask shape must be (H, W) or (T, H, W) of positive ints, got {shape!r}")
    if len(dims) == 2:
        return 1, dims[0], dims[1], True
    return dims[0], dims[1], dims[2], False


def _check_offset(kind: str, offset: Any, high: int) -> int:
    if not isinstance(offset, numbers.Integral) or isinstance(offset, bool):
        raise MaskError(f"mask '{kind}': offset must be an int, got {offset!r}")
    if not 0 <= offset < high:
        raise MaskError(f"mask '{kind}': offset must be in [0, {high}), got {offset}")
    return int(offset)


# ----------------------------------------------------------------------------- base classes


class MaskFunc(ABC):
    """A sampling-mask function: ``mask_func(shape, seed=None, offset=None)``.

    ``shape`` is (H, W) or (T, H, W); the result is a bool array of that shape.
    ``seed`` (None, int or tuple of ints, e.g. fastMRI's ``tuple(map(ord, fname))``)
    seeds the call; ``offset`` fixes the line offset of the kinds that have one.

    Every mask function draws from ``choices``, the single mask constructions
    behind it (itself for a single one, several for :class:`MaskChoice`);
    ``choose(seed)`` is the one a call with ``seed`` uses. ``official_pattern``
    names the CMRxRecon 2024/2025 mask files of the kind (``Uniform``,
    ``ktGaussian``, ...; None for kinds without files of their own).
    """

    kind: ClassVar[str] = ""
    #: file-name pattern of the kind's official CMRxRecon mask files
    official_pattern: ClassVar[str | None] = None
    #: True for k-t masks, which differ between frames
    varies_over_frames: ClassVar[bool] = False
    #: whether ``offset`` means something for this kind
    has_offset: ClassVar[bool] = False
    #: acceleration must be an integer (line spacing)
    integer_acceleration: ClassVar[bool] = False

    def __init__(self, acceleration: float, seed: Seed = None):
        self.acceleration = self._checked_acceleration(acceleration)
        _check_seed(seed)
        self.seed = seed
        self.rng = np.random.RandomState(seed)

    def _checked_acceleration(self, acceleration: Any) -> float:
        return _check_acceleration(self.kind, acceleration, self.integer_acceleration)

    @property
    def choices(self) -> tuple[MaskFunc, ...]:
        return (self,)

    def choose(self, seed: Seed = None) -> MaskFunc:
        """The mask function a call with ``seed`` uses."""
        return self

    @abstractmethod
    def __call__(self, shape: Sequence[int], seed: Seed = None, offset: int | None = None):
        """A bool mask of ``shape`` (H, W) or (T, H, W)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(acceleration={self.acceleration:g}, seed={self.seed!r})"


class SingleMaskFunc(MaskFunc):
    """One mask construction (every kind of ``MASK_KINDS``, a stored mask).

    A call checks the shape, temporarily reseeds the object's own
    ``np.random.RandomState`` (created from the constructor's ``seed``) with
    the call's ``seed``, as fastMRI does, and draws with ``_sample``;
    deterministic kinds ignore the seed.
    """

    def __call__(self, shape: Sequence[int], seed: Seed = None, offset: int | None = None):
        t, h, w, is_2d = _parse_shape(shape)
        _check_seed(seed)
        if offset is not None and not self.has_offset:
            raise MaskError(f"mask '{self.kind}' has no offset; got offset={offset!r}")
        self._check_size(h, w)
        with _temp_seed(self.rng, seed):
            m = self._sample(t, h, w, offset, is_2d)
        out = np.ascontiguousarray(np.broadcast_to(m, (t, h, w)), dtype=bool)
        return out[0] if is_2d else out

    @abstractmethod
    def _sample(self, t: int, h: int, w: int, offset: int | None, is_2d: bool) -> np.ndarray:
        """A bool array broadcastable to (t, h, w)."""

    def _check_size(self, h: int, w: int) -> None:
        """Raise MaskError when (H, W) cannot carry this mask (default: any size)."""
        return None

    @property
    def center_lines(self) -> int | None:
        """ACS lines every frame holds (the block side for ``kt-radial``);
        None when the count depends on W (fastMRI: see :meth:`num_center_lines`)."""
        return None

    @abstractmethod
    def num_center_lines(self, width: int) -> int:
        """Number of centre ky lines guaranteed for phase-encode width ``width``."""

    def acs_slices(self, height: int, width: int) -> tuple[slice, slice]:
        """(rows, columns) of the block every frame samples fully, for (H, W)."""
        n = self.num_center_lines(width)
        start = self._center_start(width, n)
        return slice(0, height), slice(start, start + n)

    def _center_start(self, width: int, n: int) -> int:
        return _acs_start(width, n)


class MaskChoice(MaskFunc):
    """Several mask functions (accelerations x centre fractions) as one: every
    call picks one with the call's seed (or the object's own generator) and
    draws its mask with that seed, the way fastMRI's mask functions pick an
    acceleration per sample. ``acceleration``, ``kind`` and
    ``official_pattern`` are the first choice's, for callers that need one
    value; per item, the dataset asks :meth:`choose` (Sample.acceleration is
    the one actually used)."""

    def __init__(self, funcs: Sequence[MaskFunc], seed: Seed = None):
        self._choices = tuple(funcs)
        if not self._choices:
            raise MaskError("a mask choice needs at least one mask function")
        super().__init__(self._choices[0].acceleration, seed)

    def _checked_acceleration(self, acceleration: Any) -> float:
        return float(acceleration)  # the first choice's, checked by it

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self._choices[0].kind

    @property
    def official_pattern(self) -> str | None:  # type: ignore[override]
        return self._choices[0].official_pattern

    @property
    def choices(self) -> tuple[MaskFunc, ...]:
        return self._choices

    def choose(self, seed: Seed = None) -> MaskFunc:
        """The mask function a call with ``seed`` uses (None: the object's generator)."""
        if len(self._choices) == 1:
            return self._choices[0]
        rng = self.rng if seed is None else np.random.RandomState(_seed32(seed))
        return self._choices[rng.randint(len(self._choices))]

    def __call__(self, shape: Sequence[int], seed: Seed = None, offset: int | None = None):
        return self.choose(seed)(shape, seed=seed, offset=offset)

    def __repr__(self) -> str:
        return f"MaskChoice({list(self._choices)!r})"


def _seed32(seed) -> int:
    """A 32-bit seed from an int or a tuple of ints."""
    if isinstance(seed, int):
        return seed % (2**32)
    return int(np.random.SeedSequence(list(seed)).generate_state(1)[0])


class StoredMask(SingleMaskFunc):
    """Phase-encode lines (W,) read from a file (a fastMRI test file's
    ``mask``) as a mask function: every frame and row gets them. Its
    acceleration W / lines is >= 1 (1: every line sampled); no seed."""

    kind = "file"

    def __init__(self, lines: np.ndarray, source: str = "file"):
        self.lines = np.asarray(lines, dtype=bool).reshape(-1)
        self.source = source
        super().__init__(self.lines.size / max(int(self.lines.sum()), 1))

    def _checked_acceleration(self, acceleration: Any) -> float:
        return float(acceleration)  # W / lines >= 1 by construction

    def _check_size(self, h: int, w: int) -> None:
        if w != self.lines.size:
            raise DataError(f"{self.source}: 'mask' has {self.lines.size} lines, k-space W = {w}")

    def _sample(self, t, h, w, offset, is_2d):
        return self.lines[None, None, :]

    def num_center_lines(self, width: int) -> int:
        return num_low_frequencies(self.lines[None, :])

    def __repr__(self) -> str:
        return f"StoredMask(lines={int(self.lines.sum())}/{self.lines.size})"


# ----------------------------------------------------------------------------- CMRxRecon


class _CMRxReconMask(SingleMaskFunc):
    default_acs: ClassVar[int] = 16

    def __init__(self, acceleration: float, num_acs: int | None = None, seed: Seed = None):
        super().__init__(acceleration, seed)
        if num_acs is None:
            num_acs = self.default_acs
        if not isinstance(num_acs, numbers.Integral) or isinstance(num_acs, bool) or num_acs < 0:
            raise MaskError(f"mask '{self.kind}': num_acs must be an int >= 0, got {num_acs!r}")
        self.num_acs = int(num_acs)

    @property
    def center_lines(self) -> int:
        return self.num_acs

    def num_center_lines(self, width: int) -> int:
        return self.num_acs

    def _check_size(self, h: int, w: int) -> None:
        if self.num_acs > w:
            raise MaskError(f"mask '{self.kind}': {self.num_acs} ACS lines do not fit in W={w}")
        if self.acceleration >= w:
            raise MaskError(
                f"mask '{self.kind}': acceleration {self.acceleration:g} >= W={w} "
                "leaves at most one sampled line"
            )

    def _acs_lines(self, w: int) -> np.ndarray:
        """(W,) bool: the centred ACS lines (``zpad(ones(nx, ncalib), [nx, ny])``)."""
        acs = np.zeros(w, dtype=bool)
        s = _acs_start(w, self.num_acs)
        acs[s : s + self.num_acs] = True
        return acs

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(acceleration={self.acceleration:g}, "
            f"num_acs={self.num_acs}, seed={self.seed!r})"
        )


class CMRxReconUniformMask(_CMRxReconMask):
    """CMRxRecon 2023: lines ``offset::R`` (official offset 0, MATLAB
    ``mask(:, 1:R:end) = 1``) OR 24 ACS lines from ``W // 2 - 12``. Same for all
    rows and frames; seed ignored. Returns (H, W) or (T, H, W) bool."""

    kind = "cmrxrecon-uniform"
    default_acs = 24
    official_pattern = "Uniform"
    has_offset = True
    integer_acceleration = True

    def _sample(self, t, h, w, offset, is_2d):
        r = int(self.acceleration)
        off = 0 if offset is None else _check_offset(self.kind, offset, r)
        lines = self._acs_lines(w)
        lines[off::r] = True
        return lines[None, None, :]


class CMRxRecon24UniformMask(CMRxReconUniformMask):
    """CMRxRecon 2024 Task 1 ``Uniform`` (official R 4/8/10): exactly
    ``UniformSampling.m`` with ``ncalib = 16``: lines ``0::R`` OR 16 ACS lines
    from ``W // 2 - 8``. The ACS lines are added on top of the R-spaced lines
    ("not counted in R"), so W / sampled lines < R. Returns (H, W) or (T, H, W)."""

    kind = "cmrxrecon24-uniform"
    default_acs = 16


def _kt_uniform_lines(w: int, t: int, r: int, offset: int, matlab_indexing: bool) -> np.ndarray:
    """(T, W) bool sampling of ``ktUniformSampling.m`` (without ACS).

    The intended pattern is a sheared lattice: line ``y`` at frame ``f`` iff
    ``(y - f - offset) % R == 0`` (the official ``toeplitz(ptmp, ttmp)`` with
    ptmp/ttmp = ``1:R:end``, ``offset`` = 0). With ``matlab_indexing`` the
    official index arithmetic is replayed, including ``floor(nt)/2``.
    """
    y = np.arange(w)[:, None]
    f = np.arange(t)[None, :]
    top = (y - f - offset) % r == 0  # (W, T) like MATLAB's (ny, nt)
    if not matlab_indexing:
        return top.T.copy()
    # replay ktUniformSampling.m + ktdup.m in 1-based MATLAB arithmetic
    ry, cf = np.nonzero(top)  # 0-based row (ky) and column (frame) of each sample
    ph = ry - math.floor(w / 2)  # rem(ind-1, ny) - floor(ny/2)
    ti = cf - t / 2  # floor((ind-1)/ny) - (floor(nt)/2)   <- the quirk
    # ktdup: shift to 1-based, linearise, (no repeats here), back to (x, y)
    ph1 = ph + math.ceil((w + 1) / 2)
    ti1 = ti + math.ceil((t + 1) / 2)
    pt = (ti1 - 1) * w + ph1
    x = pt - np.floor((pt - 1) / w) * w
    yy = np.ceil(pt / w)
    ph2 = x - math.ceil((w + 1) / 2)
    ti2 = yy - math.ceil((t + 1) / 2)
    ind = _matlab_round(w * (ti2 + math.floor(t / 2)) + (ph2 + math.floor(w / 2) + 1))
    ind[ind <= 0] = 1  # official "% Changed" line
    ind = ind[ind <= w * t].astype(np.int64)  # MATLAB would error on these (odd W and T)
    samp = np.zeros(w * t, dtype=bool)
    samp[ind - 1] = True
    return samp.reshape(t, w)  # column-major (ny, nt) == row-major (nt, ny)


class KtUniformMask(_CMRxReconMask):
    """CMRxRecon 2024 Task 2 ``ktUniform`` (R 4..24): at frame ``f`` the lines
    ``y`` with ``(y - f - offset) % R == 0`` (official offset 0), OR 16 ACS
    lines from ``W // 2 - 8``. Deterministic (seed ignored).

    ``matlab_indexing`` (default True) replays the official index arithmetic,
    which for an odd number of frames shifts the pattern (see module docstring).
    A 2-D shape (H, W) returns frame 0 of an even-length sequence, i.e. lines
    ``offset::R`` plus ACS. Returns (H, W) or (T, H, W) bool.
    """

    kind = "kt-uniform"
    official_pattern = "ktUniform"
    varies_over_frames = True
    has_offset = True
    integer_acceleration = True
    #: frames the official code is run with for a 2-D shape (H, W): 2024 takes frame 0
    #: of an even-length sequence; 2025 runs it with nt = 1 (a 4-D file's mask)
    two_d_frames: ClassVar[int] = 2

    def __init__(
        self,
        acceleration: float,
        num_acs: int | None = None,
        seed: Seed = None,
        *,
        matlab_indexing: bool = True,
    ):
        super().__init__(acceleration, num_acs, seed)
        self.matlab_indexing = bool(matlab_indexing)

    def _sample(self, t, h, w, offset, is_2d):
        r = int(self.acceleration)
        off = 0 if offset is None else _check_offset(self.kind, offset, r)
        nt = self.two_d_frames if is_2d else t
        lines = _kt_uniform_lines(w, nt, r, off, self.matlab_indexing)[:t]
        lines |= self._acs_lines(w)[None, :]
        return lines[:, None, :]


def _matlab_rng(seed: int) -> np.random.RandomState:
    """The stream of MATLAB ``rng(seed)`` (Mersenne Twister; MATLAB maps seed 0
    to the reference seed 5489). ``rand`` == ``random_sample`` (53-bit)."""
    return np.random.RandomState(5489 if seed == 0 else seed)


def _ktdup_frame(rows: np.ndarray, w: int) -> np.ndarray:
    """``ktdup.m`` for one frame: (W,) bool of the drawn lines after moving each
    repeat to the nearest line not drawn in this frame (lower line on ties)."""
    uniq, counts = np.unique(rows, return_counts=True)
    taken = np.zeros(w, dtype=bool)
    taken[uniq] = True
    for v, c in zip(uniq, counts, strict=True):
        for _ in range(int(c) - 1):
            free = np.flatnonzero(~taken)
            if free.size == 0:
                break
            taken[free[np.argmin(np.abs(free - v))]] = True
    return taken


def _kt_gaussian_edges(w: int, alpha: float) -> np.ndarray:
    """``randp``'s histc edges ``[0; cumsum(prob)] / sum(prob)`` of the density of
    ``ktGaussianSampling.m`` over ky = ``-floor(W/2):ceil(W/2)-1``."""
    p1 = np.arange(-(w // 2), math.ceil(w / 2), dtype=np.float64)
    sig = w / 5
    prob = 0.1 + alpha / (1 - alpha + 1e-10) * np.exp(-(p1**2) / (1 * sig**2))
    return np.concatenate([[0.0], np.cumsum(prob)]) / np.sum(prob)


def _kt_gaussian_frame(edges: np.ndarray, w: int, tr: int, frame_seed: int) -> np.ndarray:
    """(W,) bool lines of one frame: ``randp(prob, sd, tr, 1)`` then ``ktdup``."""
    x = _matlab_rng(frame_seed).random_sample(tr)  # randp: rng(sd); rand(tr, 1)
    k = np.searchsorted(edges, x, side="right")  # histc bin, 1-based
    return _ktdup_frame(np.clip(k, 1, w) - 1, w)


def _kt_gaussian_frame_seeds(t: int, matlab_seed: int) -> np.ndarray:
    """``rng(seed); tmpSd = round(1e6 * rand(nt, 1))``: the per-frame seeds."""
    return _matlab_round(1e6 * _matlab_rng(matlab_seed).random_sample(t))


def _kt_gaussian_lines(
    w: int, t: int, r: float, matlab_seed: int, alpha: float = 0.2
) -> np.ndarray:
    """(T, W) bool lines of ``ktGaussianSampling.m`` (without ACS)."""
    tr = int(_matlab_round(w / r))  # lines per frame
    edges = _kt_gaussian_edges(w, alpha)
    frame_seeds = _kt_gaussian_frame_seeds(t, matlab_seed)
    out = np.zeros((t, w), dtype=bool)
    for f in range(t):
        out[f] = _kt_gaussian_frame(edges, w, tr, int(frame_seeds[f]))
    return out


class KtGaussianMask(_CMRxReconMask):
    """CMRxRecon 2024 Task 2 ``ktGaussian`` (R 4..24): per frame ``round(W/R)``
    distinct lines drawn from ``0.1 + a/(1-a) exp(-ky^2 / (W/5)^2)`` (a = 0.2),
    OR 16 ACS lines from ``W // 2 - 8``.

    Each call draws the official generator's seed (``randi([1 1000])``) from
    the object's RandomState (temporarily reseeded by ``seed``); use
    :meth:`from_matlab_seed` to rebuild an official mask from its MATLAB seed.
    A 2-D shape returns frame 0. Returns (H, W) or (T, H, W) bool.
    """

    kind = "kt-gaussian"
    official_pattern = "ktGaussian"
    varies_over_frames = True

    def __init__(
        self,
        acceleration: float,
        num_acs: int | None = None,
        seed: Seed = None,
        *,
        alpha: float = 0.2,
    ):
        super().__init__(acceleration, num_acs, seed)
        if not _is_number(alpha) or not 0 <= alpha < 1:
            raise MaskError(f"mask '{self.kind}': alpha must be in [0, 1), got {alpha!r}")
        self.alpha = float(alpha)

    def _check_size(self, h: int, w: int) -> None:
        super()._check_size(h, w)
        if _matlab_round(w / self.acceleration) < 1:
            raise MaskError(
                f"mask '{self.kind}': acceleration {self.acceleration:g} leaves "
                f"round(W/R) = 0 lines per frame for W={w}"
            )

    def _sample(self, t, h, w, offset, is_2d):
        matlab_seed = int(self.rng.randint(1, 1001))  # randi([1 1000])
        return self._frames(t, w, matlab_seed)

    def _frames(self, t: int, w: int, matlab_seed: int) -> np.ndarray:
        lines = _kt_gaussian_lines(w, t, self.acceleration, matlab_seed, self.alpha)
        lines |= self._acs_lines(w)[None, :]
        return lines[:, None, :]

    def from_matlab_seed(self, shape: Sequence[int], matlab_seed: int) -> np.ndarray:
        """The official mask for MATLAB ``seed`` (``ktGaussianSampling(..., seed)``),
        (H, W) or (T, H, W) bool."""
        t, h, w, is_2d = _parse_shape(shape)
        if not isinstance(matlab_seed, numbers.Integral) or not 0 <= matlab_seed < 2**32:
            raise MaskError(f"matlab_seed must be an int in [0, 2**32), got {matlab_seed!r}")
        self._check_size(h, w)
        m = np.ascontiguousarray(np.broadcast_to(self._frames(t, w, int(matlab_seed)), (t, h, w)))
        return m[0] if is_2d else m

    def matlab_seed_of(self, mask: np.ndarray, seeds: Sequence[int] = range(1, 1001)) -> int | None:
        """The MATLAB seed among ``seeds`` (default 1..1000, the official
        ``randi([1 1000])``) whose mask equals ``mask`` ((H, W) or (T, H, W)
        bool, e.g. an official mask file), or None. The official seed of a file
        is not recoverable from the file's name (it is the next draw of the
        generating MATLAB session), but it is one of 1000 candidates, so an
        official mask can be matched bit for bit by trying them all."""
        m = np.asarray(mask, dtype=bool)
        t, h, w, _ = _parse_shape(m.shape)
        m = m.reshape(t, h, w)
        if not (m == m[:, :1]).all():  # not a line mask: no seed gives it
            return None
        want = m[:, 0, :]
        tr = int(_matlab_round(w / self.acceleration))
        edges, acs = _kt_gaussian_edges(w, self.alpha), self._acs_lines(w)
        for seed in seeds:
            frame_seeds = _kt_gaussian_frame_seeds(t, int(seed))
            if all(
                ((_kt_gaussian_frame(edges, w, tr, int(frame_seeds[f])) | acs) == want[f]).all()
                for f in range(t)
            ):
                return int(seed)
        return None


def _sind_cosd(deg: float) -> tuple[float, float]:
    """MATLAB ``sind``/``cosd``: exact at multiples of 90 degrees."""
    d = math.fmod(deg, 360.0)
    if d % 90 == 0:
        k = int(d // 90) % 4
        return (0.0, 1.0, 0.0, -1.0)[k], (1.0, 0.0, -1.0, 0.0)[k]
    rad = math.radians(d)
    return math.sin(rad), math.cos(rad)


def _matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """MATLAB ``start:step:stop``: tolerant end point; the second half of the
    elements is counted back from the end point when that is hit."""
    n = int(math.floor((stop - start) / step + 1e-10)) + 1
    k = np.arange(n, dtype=np.float64)
    v = start + k * step
    if math.isclose(start + (n - 1) * step, stop, rel_tol=1e-12, abs_tol=1e-12):
        half = n // 2
        v[half:] = stop - (n - 1 - k[half:]) * step
    return v


def _radial_frame(h: int, w: int, angles: np.ndarray) -> np.ndarray:
    """(H, W) bool: ``crop(sum_a imrotate(aux, a, 'crop'), H, W) > 0`` where
    ``aux`` is an ``n x n`` grid (``n = max(H, W)``) with one line at row
    ``round(n/2)``. Nearest-neighbour inverse mapping about the centre
    ``(n+1)/2`` (our reconstruction of imrotate's rasterisation)."""
    n = max(h, w)
    r0 = float(_matlab_round(n / 2))  # 1-based row of the line in aux
    c = (n + 1) / 2
    row0 = n // 2 - h // 2  # crop offsets (0-based): floor(m/2) + ceil(-s/2)
    col0 = n // 2 - w // 2
    out = np.zeros((h, w), dtype=bool)
    for ang in angles:
        s, co = _sind_cosd(float(ang))
        # output pixel (i, j), 1-based in the n x n grid, samples input at
        # col = c + dx*cos - dy*sin, row = c + dx*sin + dy*cos (dx = j - c, dy = i - c)
        if abs(co) >= abs(s):
            j = np.arange(col0 + 1, col0 + w + 1, dtype=np.float64)
            i_mid = c + (r0 - c - (j - c) * s) / co
            cand = np.floor(i_mid)[None, :] + np.arange(-2, 3)[:, None]
            jj = np.broadcast_to(j[None, :], cand.shape)
            ii = cand
        else:
            i = np.arange(row0 + 1, row0 + h + 1, dtype=np.float64)
            j_mid = c + (r0 - c - (i - c) * co) / s
            cand = np.floor(j_mid)[None, :] + np.arange(-2, 3)[:, None]
            ii = np.broadcast_to(i[None, :], cand.shape)
            jj = cand
        dx, dy = jj - c, ii - c
        row_in = np.floor(c + dx * s + dy * co + 0.5)
        col_in = np.floor(c + dx * co - dy * s + 0.5)
        hit = (row_in == r0) & (col_in >= 1) & (col_in <= n)
        oi = (ii[hit] - 1 - row0).astype(np.int64)
        oj = (jj[hit] - 1 - col0).astype(np.int64)
        keep = (oi >= 0) & (oi < h) & (oj >= 0) & (oj < w)
        out[oi[keep], oj[keep]] = True
    return out


class KtRadialMask(_CMRxReconMask):
    """CMRxRecon 2024 Task 2 ``ktRadial`` (R 4..24): ``floor(180 / (0.6 R)) + 1``
    pseudo-radial spokes over 180 degrees in the (kx, ky) = (H, W) plane, the
    set rotated by ``golden_angle`` (137.5) degrees per frame, OR a
    ``num_acs x num_acs`` (16x16) centred block. Deterministic (seed ignored).
    A 2-D shape returns frame 0. Returns (H, W) or (T, H, W) bool.
    """

    kind = "kt-radial"
    official_pattern = "ktRadial"
    varies_over_frames = True

    def __init__(
        self,
        acceleration: float,
        num_acs: int | None = None,
        seed: Seed = None,
        *,
        golden_angle: float = 137.5,
    ):
        super().__init__(acceleration, num_acs, seed)
        if not _is_number(golden_angle) or not math.isfinite(golden_angle):
            raise MaskError(f"mask '{self.kind}': golden_angle must be a finite number")
        self.golden_angle = float(golden_angle)
        # ktMaskGenerator_Task2.m: R = R * 0.6; ktRadialSampling.m: beams = floor(1/R*180)
        self.beams = math.floor((1 / (self.acceleration * 0.6)) * 180)
        if self.beams < 1:
            raise MaskError(
                f"mask '{self.kind}': acceleration {self.acceleration:g} is too high "
                "(needs floor(180 / (0.6 R)) >= 1 spoke, i.e. R <= 300)"
            )

    def _check_size(self, h: int, w: int) -> None:
        if self.num_acs > min(h, w):
            raise MaskError(
                f"mask '{self.kind}': {self.num_acs}x{self.num_acs} ACS block does not fit "
                f"in (H, W)=({h}, {w})"
            )

    def acs_slices(self, height: int, width: int) -> tuple[slice, slice]:
        n = self.num_acs
        r, c = _acs_start(height, n), _acs_start(width, n)
        return slice(r, r + n), slice(c, c + n)

    def frame_angles(self, frame: int) -> np.ndarray:
        """Spoke angles in degrees of frame ``frame`` (0-based)."""
        step = 180 / self.beams
        start = 0 + self.golden_angle * frame
        return _matlab_colon(start, step, 180 + self.golden_angle * frame)

    def _sample(self, t, h, w, offset, is_2d):
        out = np.zeros((t, h, w), dtype=bool)
        rows, cols = self.acs_slices(h, w)
        for f in range(t):
            out[f] = _radial_frame(h, w, self.frame_angles(f))
            out[f, rows, cols] = True
        return out


# ----------------------------------------------------------------------------- CMRxRecon 2025

# CMRxRecon 2025 (github.com/CmrxRecon/CMRxRecon2025, CMRxReconMaskGeneration/TaskAll/
# Toolbox_Mask_Generator/). UniformSampling.m, ktUniformSampling.m, ktGaussianSampling.m,
# ktRadialSampling.m, ktdup.m, randp.m, zpad.m and crop.m are the 2024 files unchanged (only
# the author line differs), so the 2025 kinds are the 2024 classes with these differences:
# - ACS: ChallengeMaskGen_TrainingSet.m sets ncalib = 20 (2024's ChallengeMaskGen_Task1/2_
#   TrainingSet.m: 16): 20 centred lines, or a 20x20 block for ktRadial;
# - nt: that script calls the generator with nt = size(kspace, 5) for 5-D k-space and nt = 1
#   for 4-D k-space (BlackBlood, T1w, T2w), so a 2-D shape (H, W) here means nt = 1; this
#   matters for ktUniform only (2024's 2-D kt-uniform is frame 0 of nt = 2);
# - ktMaskGenerator.m gains a 'Uniform' case: UniformSampling's (nx, ny) mask repeated over
#   the nt frames (2024: MaskGenerator_Task1.m, 2-D only);
# - MaskGeneration_TrainingSet.m: patterns Uniform, ktGaussian, ktRadial at R = 8, 16, 24
#   (2024: Uniform at 4/8/10, kt* at 4..24). ktUniform is still a case of the generator but
#   no official 2025 mask uses it;
# - alpha 0.2, seed randi([1 1000]), R x 0.6 and 137.5 degrees per frame for ktRadial,
#   cropcorner = true: as 2024.

#: official accelerations of the CMRxRecon 2025 masks (MaskGeneration_TrainingSet.m)
CMRXRECON25_ACCELERATIONS = (8, 16, 24)


class CMRxRecon25UniformMask(CMRxRecon24UniformMask):
    """CMRxRecon 2025 ``Uniform`` (``ktMaskGenerator.m``, R 8/16/24): lines
    ``0::R`` OR 20 ACS lines from ``W // 2 - 10``, the same in every frame.
    Deterministic. Returns (H, W) or (T, H, W) bool."""

    kind = "cmrxrecon25-uniform"
    default_acs = 20


class CMRxRecon25KtUniformMask(KtUniformMask):
    """CMRxRecon 2025 ``ktUniform`` (a case of ``ktMaskGenerator.m`` that no
    official 2025 mask uses): 2024's ``kt-uniform`` with 20 ACS lines; a 2-D
    shape is the official mask for nt = 1 (index quirk included)."""

    kind = "cmrxrecon25-kt-uniform"
    default_acs = 20
    two_d_frames = 1


class CMRxRecon25KtGaussianMask(KtGaussianMask):
    """CMRxRecon 2025 ``ktGaussian`` (R 8/16/24): 2024's ``kt-gaussian``
    (``round(W/R)`` lines per frame, alpha 0.2) with 20 ACS lines from
    ``W // 2 - 10``. Seeded as ``kt-gaussian`` (:meth:`from_matlab_seed`,
    :meth:`matlab_seed_of`)."""

    kind = "cmrxrecon25-kt-gaussian"
    default_acs = 20


class CMRxRecon25KtRadialMask(KtRadialMask):
    """CMRxRecon 2025 ``ktRadial`` (R 8/16/24): 2024's ``kt-radial``
    (``floor(180 / (0.6 R)) + 1`` spokes, 137.5 degrees per frame, corners
    cropped) with a 20x20 fully sampled centre block. Deterministic."""

    kind = "cmrxrecon25-kt-radial"
    default_acs = 20


#: CMRxRecon 2025 pattern names (file names ``*_mask_{Pattern}{R}.mat``,
#: ``*_kus_{Pattern}{R}.mat``; ``ktMaskGenerator.m`` cases) -> mask kinds
CMRXRECON25_PATTERNS: dict[str, str] = {
    cls.official_pattern: cls.kind
    for cls in (
        CMRxRecon25UniformMask,
        CMRxRecon25KtUniformMask,
        CMRxRecon25KtGaussianMask,
        CMRxRecon25KtRadialMask,
    )
}


def parse_pattern_2025(tag: str, source: str | os.PathLike = "") -> tuple[str, int]:
    """``"ktRadial16"`` -> ``("ktRadial", 16)``: the sampling pattern and R of a
    CMRxRecon 2025 file-name tag; MaskError (one line naming ``source``) for an
    unknown pattern or a tag without an integer R."""
    where = f"{source}: " if str(source) else ""
    m = re.fullmatch(r"([A-Za-z]+?)(\d+)", str(tag))
    pattern = m.group(1) if m else str(tag)
    if pattern not in CMRXRECON25_PATTERNS:
        raise MaskError(
            f"{where}unknown CMRxRecon 2025 sampling pattern {pattern!r} "
            f"(known: {', '.join(CMRXRECON25_PATTERNS)})"
        )
    if m is None:
        raise MaskError(f"{where}pattern tag {tag!r} has no acceleration (e.g. {pattern}8)")
    return pattern, int(m.group(2))


def cmrxrecon25_mask(pattern: str, acceleration: float, seed: Seed = None) -> MaskFunc:
    """The CMRxRecon 2025 mask function of ``pattern`` (``Uniform``, ``ktUniform``,
    ``ktGaussian``, ``ktRadial``: ``ktMaskGenerator.m``) at ``acceleration``."""
    if pattern not in CMRXRECON25_PATTERNS:
        raise MaskError(
            f"unknown CMRxRecon 2025 sampling pattern {pattern!r} "
            f"(known: {', '.join(CMRXRECON25_PATTERNS)})"
        )
    return create_mask(CMRXRECON25_PATTERNS[pattern], acceleration, seed=seed)


def mask_frames(
    mask: np.ndarray,
    n_frames: int,
    shape: tuple[int, int],
    mask_path: str | os.PathLike,
    kspace_path: str | os.PathLike,
) -> np.ndarray:
    """A mask read from a file, (H, W) or (T, H, W), as (T, H, W) for k-space of
    ``n_frames`` frames and matrix ``shape`` = (H, W) (2-D masks are shared by
    every frame; the official ``kspace .* mask`` broadcast). DataError, one line
    naming both files and both shapes in MATLAB order (nx, ny[, nt]), when they
    do not match."""
    h, w = int(shape[0]), int(shape[1])
    m = np.asarray(mask)
    frames_ok = m.ndim == 2 or (m.ndim == 3 and m.shape[0] == n_frames)
    if m.ndim not in (2, 3) or m.shape[-2:] != (h, w) or not frames_ok:
        dims = (*m.shape[-2:], *m.shape[:-2])  # (T, H, W) -> MATLAB (nx, ny, nt)
        raise DataError(
            f"{mask_path}: mask (nx, ny{', nt' if m.ndim == 3 else ''}) = {dims} does not "
            f"match the k-space of {kspace_path}: (nx, ny, nt) = {(h, w, n_frames)}"
        )
    return np.broadcast_to(m, (n_frames, h, w)) if m.ndim == 2 else m


# ----------------------------------------------------------------------------- fastMRI


class _FastMRIMask(SingleMaskFunc):
    """Common part of the fastMRI kinds (``fastmri/data/subsample.py``).

    Draw order per call, as fastMRI: ``rng.randint(len(center_fractions))``
    (``choose_acceleration``; len 1 here), no draw for the centre, then the
    kind's acceleration-mask draws. Lines (W,) are OR'ed with the centre and
    shared by all rows and frames.
    """

    def __init__(self, acceleration: float, center_fraction: float, seed: Seed = None):
        super().__init__(acceleration, seed)
        if center_fraction is None:
            raise MaskError(f"mask '{self.kind}' needs center_fraction (e.g. 0.08)")
        if (
            not _is_number(center_fraction)
            or not math.isfinite(center_fraction)
            or not 0 < center_fraction < 1
        ):
            raise MaskError(
                f"mask '{self.kind}': center_fraction must be in (0, 1), got {center_fraction!r}"
            )
        self.center_fraction = float(center_fraction)
        if self.center_fraction * self.acceleration >= 1:
            raise MaskError(
                f"mask '{self.kind}': acceleration {self.acceleration:g} is unreachable with "
                f"center_fraction {self.center_fraction:g} (the centre alone samples more "
                "than 1/R of the lines)"
            )

    def num_center_lines(self, width: int) -> int:
        # fastMRI: num_low_frequencies = round(num_cols * center_fraction) (Python round)
        return round(width * self.center_fraction)

    def _center_start(self, width: int, n: int) -> int:
        # fastMRI calculate_center_mask: pad = (num_cols - num_low_freqs + 1) // 2
        return (width - n + 1) // 2

    def _check_size(self, h: int, w: int) -> None:
        n = self.num_center_lines(w)
        if n >= w / self.acceleration:
            raise MaskError(
                f"mask '{self.kind}': acceleration {self.acceleration:g} is unreachable for "
                f"W={w}: {n} centre lines >= W/R = {w / self.acceleration:.2f}"
            )

    def _sample(self, t, h, w, offset, is_2d):
        self.rng.randint(1)  # choose_acceleration: rng.randint(len(center_fractions))
        n = self.num_center_lines(w)
        center = np.zeros(w, dtype=bool)
        start = self._center_start(w, n)
        center[start : start + n] = True
        lines = self._acceleration_lines(w, n, offset)
        return (center | lines)[None, None, :]

    @abstractmethod
    def _acceleration_lines(self, w: int, n: int, offset: int | None) -> np.ndarray:
        """(W,) bool outer lines (before OR with the centre)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(acceleration={self.acceleration:g}, "
            f"center_fraction={self.center_fraction:g}, seed={self.seed!r})"
        )


class RandomMask(_FastMRIMask):
    """fastMRI ``RandomMaskFunc``: each line kept with probability
    ``(W/R - n) / (W - n)`` via ``rng.uniform(size=W) < prob``, OR the
    ``n = round(W cf)`` centre lines. Returns (H, W) or (T, H, W) bool."""

    kind = "random"

    def _acceleration_lines(self, w, n, offset):
        prob = (w / self.acceleration - n) / (w - n)
        return self.rng.uniform(size=w) < prob


class EquispacedMask(_FastMRIMask):
    """fastMRI ``EquiSpacedMaskFunc``: lines ``offset::R`` (offset =
    ``rng.randint(0, round(R))`` unless given) OR the centre lines."""

    kind = "equispaced"
    has_offset = True
    integer_acceleration = True

    def _acceleration_lines(self, w, n, offset):
        r = int(self.acceleration)
        if offset is None:
            offset = int(self.rng.randint(0, round(self.acceleration)))
        else:
            offset = _check_offset(self.kind, offset, r)
        lines = np.zeros(w, dtype=bool)
        lines[offset::r] = True
        return lines


class EquispacedFractionMask(_FastMRIMask):
    """fastMRI ``EquispacedMaskFractionFunc``: with the adjusted acceleration
    ``adj = R (n - W) / (n R - W)``, lines ``around(arange(offset, W - 1, adj))``
    (offset = ``rng.randint(0, high=round(adj))`` unless given) OR the centre,
    so that on average W/R lines are sampled."""

    kind = "equispaced-fraction"
    has_offset = True

    def adjusted_acceleration(self, width: int) -> float:
        n = self.num_center_lines(width)
        r = self.acceleration
        return (r * (n - width)) / (n * r - width)

    def _acceleration_lines(self, w, n, offset):
        adj = self.adjusted_acceleration(w)
        if offset is None:
            offset = int(self.rng.randint(0, high=round(adj)))
        else:
            offset = _check_offset(self.kind, offset, max(1, round(adj)))
        lines = np.zeros(w, dtype=bool)
        idx = np.around(np.arange(offset, w - 1, adj)).astype(np.uint)
        lines[idx] = True
        return lines


# ----------------------------------------------------------------------------- registry

MASK_KINDS: dict[str, type[MaskFunc]] = {
    cls.kind: cls
    for cls in (
        CMRxReconUniformMask,
        CMRxRecon24UniformMask,
        KtUniformMask,
        KtGaussianMask,
        KtRadialMask,
        CMRxRecon25UniformMask,
        CMRxRecon25KtUniformMask,
        CMRxRecon25KtGaussianMask,
        CMRxRecon25KtRadialMask,
        RandomMask,
        EquispacedMask,
        EquispacedFractionMask,
    )
}

_FASTMRI_KINDS = ("random", "equispaced", "equispaced-fraction")


def create_mask(
    kind: str,
    acceleration: float,
    center_fraction: float | None = None,
    num_acs: int | None = None,
    seed: Seed = None,
) -> MaskFunc:
    """Build a mask function by name (see ``MASK_KINDS``).

    fastMRI kinds need ``center_fraction`` and take no ``num_acs``; CMRxRecon
    kinds take ``num_acs`` (default 24 for ``cmrxrecon-uniform``, 20 for the
    ``cmrxrecon25-*`` kinds, else 16; the block side for the radial kinds) and
    no ``center_fraction``. Raises MaskError with a one-line message on bad input.
    """
    if kind not in MASK_KINDS:
        raise MaskError(f"unknown mask kind {kind!r}; valid kinds: {', '.join(MASK_KINDS)}")
    cls = MASK_KINDS[kind]
    if kind in _FASTMRI_KINDS:
        if num_acs is not None:
            raise MaskError(f"mask '{kind}' takes center_fraction, not num_acs")
        return cls(acceleration, center_fraction=center_fraction, seed=seed)
    if center_fraction is not None:
        raise MaskError(f"mask '{kind}' takes num_acs, not center_fraction")
    return cls(acceleration, num_acs=num_acs, seed=seed)


# the fastMRI kinds: their centre is a fraction of W; the CMRxRecon kinds have fixed ACS lines
FRACTION_KINDS = ("random", "equispaced", "equispaced-fraction")


def mask_grid(
    kind: str,
    accelerations: Sequence[float],
    center_fractions: Sequence[float] | None = None,
    num_acs: int | None = None,
    option: str = "center_fractions",
) -> list[tuple[float, float | None, MaskFunc]]:
    """``(acceleration, centre fraction, mask)`` for every combination, as the
    papers' tables combine them. fastMRI kinds need centre fractions, the others
    refuse them; ``option`` names the setting in the one-line error."""
    if kind in FRACTION_KINDS:
        if not center_fractions:
            raise MaskError(f"mask '{kind}' needs {option} (e.g. 0.08, or 0.04 and 0.08)")
        fractions: Sequence[float | None] = list(center_fractions)
    else:
        if center_fractions:
            raise MaskError(
                f"{option} applies to fastMRI masks ({', '.join(FRACTION_KINDS)}), not to "
                f"'{kind}' (its ACS lines are fixed; set num_acs)"
            )
        fractions = [None]
    return [
        (acc, cf, create_mask(kind, acc, center_fraction=cf, num_acs=num_acs))
        for acc in accelerations
        for cf in fractions
    ]
