"""Simulated CMRxRecon 2025 data: several centers and scanners that differ the
way scanners differ, in the 2025 layout (:mod:`fmrecon.data.cmrxrecon2025`).

Each :class:`Scanner` (a center and a vendor folder ``{Maker}_{NN}T_{Model}``)
has its own receive coil count, matrix size, readout oversampling kept in the
k-space and noise figure; its field strength (from the folder name) sets

- the SNR: the k-space noise is ``noise x scanner.noise x 3 T / B0`` (image SNR
  grows about linearly with B0 at these fields: Hoult & Richards, J Magn Reson
  24:71, 1976; Edelstein et al., Magn Reson Med 3:604, 1986), and
- the contrast of the T1-weighted modalities: tissue T1 at 1.5 T and 3 T from
  Stanisz et al., Magn Reson Med 54:507, 2005 (blood, myocardium, liver,
  skeletal muscle; fat and the rest rounded literature values), extrapolated
  to other fields with the power law ``T1(B) = T1(1.5 T) (B / 1.5 T)^g`` that
  joins the two (g per tissue).

Modalities (the anatomy of :func:`fmrecon.data.simulate.cardiac.cardiac_phantom`,
its tissue intensities set per modality): ``Cine`` (bright-blood cine, 5-D:
``cine_sax`` and the 2-/3-/4-chamber ``cine_lax``), ``Mapping`` (``T1map``:
inversion-recovery weightings ``|1 - 2 exp(-TI_k / T1)|`` of the static heart,
5-D), ``BlackBlood``, ``T1w`` and ``T2w`` (spin-echo weightings of one cardiac
phase with blood suppressed for the black-blood ones, 4-D (nx, ny, nc, nz)).

A patient number names one simulated person per center: ``Center002``'s
``P001`` under its two vendors is the same anatomy scanned on two scanners,
the case the official listing leaves open (``P004`` under two vendors of
Center002) and the reason splits group by center and patient.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fmrecon.data.cmrxrecon2025 import MODALITIES_4D, field_strength, training_mask_path
from fmrecon.data.h5io import write_mat73
from fmrecon.data.simulate.acquisition import _multicoil_kspace, coil_maps
from fmrecon.data.simulate.cardiac import cardiac_phantom, sample_cardiac_anatomy
from fmrecon.data.simulate.common import (
    CARDIAC_FOV_CM,
    IMAGE_SCALE,
    LAX_VIEWS,
    NOISE,
    Progress,
    _check_positive,
    _check_size,
    _rng,
)
from fmrecon.errors import ConfigError
from fmrecon.physics.masks import CMRXRECON25_ACCELERATIONS, cmrxrecon25_mask


@dataclass(frozen=True)
class Scanner:
    """One simulated scanner of one center."""

    center: str
    vendor: str  # the vendor folder: {Maker}_{NN}T_{Model}
    coils: int  # receive channels after the vendor's coil compression
    scale: float  # matrix relative to the base matrix (kx, ky)
    oversampling: int  # readout oversampling kept in the stored k-space (kx x this)
    noise: float  # noise figure relative to the base noise at 3 T

    @property
    def field(self) -> float | None:
        return field_strength(self.vendor)


#: the simulated centers and scanners; Center002 has two vendors (patient numbers
#: repeat across them), Center005 is the 5 T scanner of the special task S1
SCANNERS: tuple[Scanner, ...] = (
    Scanner("Center001", "Siemens_30T_Vida", coils=10, scale=1.0, oversampling=2, noise=1.0),
    Scanner("Center002", "UIH_30T_umr880", coils=8, scale=1.25, oversampling=1, noise=0.8),
    Scanner("Center002", "Siemens_15T_Aera", coils=6, scale=0.9, oversampling=2, noise=1.2),
    Scanner("Center003", "GE_15T_SignaArtist", coils=6, scale=1.0, oversampling=1, noise=1.3),
    Scanner("Center004", "Philips_30T_Ingenia", coils=4, scale=1.2, oversampling=1, noise=0.9),
    Scanner("Center005", "UIH_50T_umr890", coils=8, scale=1.1, oversampling=2, noise=1.0),
)
#: base matrix (kx, ky) before each scanner's scale and oversampling: small, so a
#: whole data set is written in seconds (the released data: 10 coils after coil
#: compression, Format_TaskR1.txt; matrices of a few hundred)
BASE_SIZE = (48, 40)
SLICES = 2
FRAMES = 4
SUBJECTS_PER_SCANNER = 2
MODALITIES = ("Cine", "Mapping", "BlackBlood", "T1w", "T2w")
DEFAULT_MODALITIES = ("Cine", "Mapping", "BlackBlood")
MAPPING_WEIGHTINGS = 5
#: the files of each modality folder (names as in the challenge's listings)
FILES = {
    "Cine": ("cine_sax", "cine_lax"),
    "Mapping": ("T1map",),
    "BlackBlood": ("blackblood",),
    "T1w": ("T1w",),
    "T2w": ("T2w",),
}

# tissue (the phantom's intensity keys): proton density (relative), T1 at 1.5 T and
# 3 T (ms, Stanisz 2005 where measured), T2 (ms)
_TISSUE = {
    "blood": (0.95, 1441, 1932, 250),
    "myocardium": (0.75, 1030, 1471, 45),
    "fat": (0.9, 290, 370, 70),
    "pericardial_fat": (0.9, 290, 370, 70),
    "muscle": (0.75, 1008, 1412, 35),
    "liver": (0.75, 576, 812, 40),
    "lung": (0.15, 1200, 1300, 40),
    "vessel": (0.6, 1441, 1932, 150),
    "bone": (0.5, 550, 600, 50),
    "csf": (1.0, 4000, 4300, 1500),
}
_BLOOD = ("blood", "vessel")  # suppressed by the black-blood preparation
_DARK_BLOOD = 0.05  # residual blood signal after the double-inversion preparation
# spin-echo timings (ms): T1w, T2w and the black-blood T2w
_SE = {"T1w": (700.0, 10.0), "T2w": (1600.0, 60.0), "blackblood": (1600.0, 60.0)}


def tissue_t1(tissue: str, field: float) -> float:
    """T1 (ms) of a phantom tissue at ``field`` tesla (see the module doc)."""
    _, t15, t30, _ = _TISSUE[tissue]
    g = np.log(t30 / t15) / np.log(2.0)
    return float(t15 * (field / 1.5) ** g)


def modality_intensities(name: str, field: float, weighting: int = 0) -> dict[str, float]:
    """The phantom's tissue intensities for file ``name`` at ``field`` tesla
    (relative; the brightest tissue 1), weighting ``weighting`` for T1map."""
    out = {}
    for tissue, (pd, _, _, t2) in _TISSUE.items():
        t1 = tissue_t1(tissue, field)
        if name == "T1map":
            ti = 100.0 * 2.0**weighting  # inversion times 100, 200, 400, ... ms
            out[tissue] = pd * abs(1.0 - 2.0 * np.exp(-ti / t1))
        else:
            tr, te = _SE[name]
            out[tissue] = pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)
            if name in ("blackblood", "T1w") and tissue in _BLOOD:
                out[tissue] *= _DARK_BLOOD
    top = max(out.values())
    return {k: v / top for k, v in out.items()}


def _images(name: str, an: dict, size, n_slices, n_frames, n_weightings, field, rng_tags):
    """Complex images (T, Z, H, W) of file ``name`` for anatomy ``an``."""
    if name.startswith("cine_"):
        view = name.removeprefix("cine_")
        z = n_slices if view == "sax" else LAX_VIEWS
        return cardiac_phantom(size, z, n_frames, _rng(*rng_tags), view=view, anatomy=an)
    frames = n_weightings if name == "T1map" else 1
    out = []
    for k in range(frames):
        a = copy.deepcopy(an)
        a["intensity"] = {**an["intensity"], **modality_intensities(name, field, k)}
        # the same texture and phase in every weighting: the same stream each time
        out.append(cardiac_phantom(size, n_slices, 1, _rng(*rng_tags), anatomy=a)[0])
    return np.stack(out)


def simulate_scan(
    scanner: Scanner,
    patient: int,
    name: str,
    seed: int = 0,
    *,
    base_size: Sequence[int] = BASE_SIZE,
    n_slices: int = SLICES,
    n_frames: int = FRAMES,
    n_weightings: int = MAPPING_WEIGHTINGS,
    n_coils: int | None = None,
    noise: float = NOISE,
) -> dict:
    """One file's fully sampled k-space ``kspace`` (T, Z, C, H, W) complex64 with
    H = the scanner's kx including its readout oversampling, and the noise-free
    ``image`` (T, Z, H, W) on that grid (zero outside the body's field of view)."""
    field = scanner.field if scanner.field is not None else 3.0
    h = 2 * int(round(base_size[0] * scanner.scale / 2))
    w = 2 * int(round(base_size[1] * scanner.scale / 2))
    coils = int(n_coils or scanner.coils)
    # one person per center and patient number (the anatomy ignores the vendor)
    an = sample_cardiac_anatomy(_rng(seed, "cmrx25", scanner.center, patient, "anatomy"))
    tags = (seed, "cmrx25", scanner.center, scanner.vendor, patient, name)
    img = _images(name, an, (h, w), n_slices, n_frames, n_weightings, field, tags + ("img",))
    hh = h * scanner.oversampling
    pad = (hh - h) // 2
    grid = np.zeros((*img.shape[:2], hh, w), dtype=np.complex64)
    grid[:, :, pad : pad + h] = img
    n_views = img.shape[1]
    zpos = (np.arange(n_views) - (n_views - 1) / 2) * (2.5 if name == "cine_lax" else 1.0)
    at, bt = an["torso"]
    maps = coil_maps(
        (hh, w),
        coils,
        pixel=CARDIAC_FOV_CM / h,
        body_axes=(at, bt),
        body_centre=an["shift"],
        z=zpos,
        seed=_rng(*tags, "coils"),
    )
    sigma = noise * scanner.noise * (3.0 / field) * IMAGE_SCALE
    kspace = _multicoil_kspace(grid, maps, sigma, _rng(*tags, "noise"))
    return {"kspace": kspace, "image": grid}


def _matlab_view(stored: np.ndarray) -> np.ndarray:
    return stored.transpose(tuple(range(stored.ndim))[::-1])


def training_path(out_dir, modality: str, scanner: Scanner, patient: int, name: str) -> Path:
    return (
        Path(out_dir)
        / "MultiCoil"
        / modality
        / "TrainingSet"
        / "FullSample"
        / scanner.center
        / scanner.vendor
        / f"P{patient:03d}"
        / f"{name}.mat"
    )


#: the patterns of the official masks (MaskGeneration_TrainingSet.m: Uniform,
#: ktGaussian, ktRadial; ktUniform has no official 2025 file)
PATTERNS = ("Uniform", "ktGaussian", "ktRadial")
#: the validation task written with ``undersampled``
TASK = "TaskR1"


def mask_2025(pattern: str, r: int, t: int | None, h: int, w: int, tag: str) -> np.ndarray:
    """A 2025 mask in MATLAB order, (nx, ny, nt) float64 or (nx, ny) for a 4-D
    file (``t`` None), seeded by ``tag`` (one fixed mask per file and setting)."""
    seed = zlib.crc32(tag.encode())
    mask = cmrxrecon25_mask(pattern, r)((t, h, w) if t else (h, w), seed=seed)
    return (mask.transpose(1, 2, 0) if t else mask).astype(np.float64)


def _validation_path(out_dir, kind: str, modality, scanner, patient, name, pattern, r) -> Path:
    folder = f"UnderSample_{TASK}" if kind == "kus" else f"Mask_{TASK}"
    return (
        Path(out_dir) / TASK / "MultiCoil" / modality / "ValidationSet" / folder
        / scanner.center / scanner.vendor / f"P{patient:03d}" / f"{name}_{kind}_{pattern}{r}.mat"
    )  # fmt: skip


def _write_training_masks(emit, k, path: Path, modality, accelerations) -> None:
    """``TrainingSet/Mask_TaskAll/.../{name}_mask_{P}{R}.mat`` for every pattern and R
    (MaskGeneration_TrainingSet.m), of k-space ``k`` (HDF5 order)."""
    t = None if modality in MODALITIES_4D else k.shape[0]
    h, w = k.shape[-1], k.shape[-2]
    for pattern in PATTERNS:
        for r in accelerations:
            mp = training_mask_path(path, pattern, r)
            emit(mp, {"mask": mask_2025(pattern, r, t, h, w, mp.as_posix())}, "gzip")


def _write_validation(emit, k, out_dir, modality, scanner, patient, name, accelerations):
    """One undersampled file ``{name}_kus_{P}{R}.mat`` (``kus = kspace .* mask``,
    Format_TaskR1.txt part 3) and its mask; the pattern and R of a file are drawn
    from its name (fixed per file, varied over the files, as in the official listing)."""
    pick = zlib.crc32(f"{scanner.center}/{scanner.vendor}/{patient}/{name}".encode())
    pattern = PATTERNS[pick % len(PATTERNS)]
    r = accelerations[(pick // len(PATTERNS)) % len(accelerations)]
    t = None if modality in MODALITIES_4D else k.shape[0]
    h, w = k.shape[-1], k.shape[-2]
    mp = _validation_path(out_dir, "mask", modality, scanner, patient, name, pattern, r)
    mask = mask_2025(pattern, r, t, h, w, mp.relative_to(out_dir).as_posix())
    # mask (nx, ny[, nt]) -> HDF5 order ([nt,] 1, 1, ny, nx) against k ([T,] Z, C, ky, kx)
    m = mask.T.astype(np.float32)
    m = m[:, None, None] if t else m[None, None]
    kp = _validation_path(out_dir, "kus", modality, scanner, patient, name, pattern, r)
    emit(kp, {"kus": _matlab_view(np.ascontiguousarray(k * m))}, "gzip")
    emit(mp, {"mask": mask}, "gzip")


def pick_scanners(centers: Sequence[str] | None) -> tuple[Scanner, ...]:
    """The scanners of ``centers`` (all for None), in table order."""
    if not centers:
        return SCANNERS
    known = sorted({s.center for s in SCANNERS})
    unknown = [c for c in centers if c not in known]
    if unknown:
        raise ConfigError(
            f"unknown simulated center '{unknown[0]}' (choose from {', '.join(known)})"
        )
    return tuple(s for s in SCANNERS if s.center in set(centers))


def simulate_cmrxrecon2025(
    out_dir: str | Path,
    n_subjects: int = SUBJECTS_PER_SCANNER,
    seed: int = 0,
    *,
    centers: Sequence[str] | None = None,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    size: Sequence[int] = BASE_SIZE,
    n_slices: int = SLICES,
    n_frames: int = FRAMES,
    n_weightings: int = MAPPING_WEIGHTINGS,
    n_coils: int | None = None,
    noise: float = NOISE,
    lax: bool = True,
    undersampled: bool = False,
    accelerations: Sequence[int] = CMRXRECON25_ACCELERATIONS,
    n_validation: int = 1,
    progress: Progress = None,
) -> list[Path]:
    """Write ``n_subjects`` patients per scanner of ``centers`` in the 2025
    training layout ``MultiCoil/{Modality}/TrainingSet/FullSample/{Center}/{Vendor}/
    P001/{name}.mat`` (key ``kspace``, MATLAB v7.3, (nx, ny, nc, nz, nt) complex64
    or (nx, ny, nc, nz) for BlackBlood/T1w/T2w). ``n_coils`` overrides every
    scanner's coil count.

    ``undersampled``: also the official masks of the training files
    (``TrainingSet/Mask_TaskAll/.../{name}_mask_{P}{R}.mat``, every pattern of
    :data:`PATTERNS` and R of ``accelerations``) and the validation layout of
    ``n_validation`` further patients per scanner (``TaskR1/MultiCoil/{Modality}/
    ValidationSet/UnderSample_TaskR1/.../{name}_kus_{P}{R}.mat``, key ``kus``, one
    pattern and R per file, fixed by its name, beside ``Mask_TaskR1/.../{name}_mask_{P}{R}.mat``;
    no ``_info.csv``: its content is not documented). Masks: the 2025 generators of
    :mod:`fmrecon.physics.masks`. Returns the paths written; ``progress(path)`` after each."""
    _check_size(size, "cmrxrecon2025")
    _rng(seed)
    n_subjects = _check_positive(n_subjects, "subjects")
    scan = {
        "base_size": size,
        "n_slices": _check_positive(n_slices, "slices"),
        "n_frames": _check_positive(n_frames, "frames"),
        "n_weightings": _check_positive(n_weightings, "mapping weightings"),
        "n_coils": None if n_coils is None else _check_positive(n_coils, "coils"),
        "noise": noise,
    }
    _check_modalities(modalities, noise)
    scanners = pick_scanners(centers)
    accelerations = tuple(_check_positive(r, "acceleration", 2) for r in accelerations)
    n_validation = _check_positive(n_validation, "validation patients", 0)
    written: list[Path] = []

    def emit(path: Path, arrays: dict, compression=None) -> None:
        write_mat73(path, arrays, compression=compression)
        written.append(path)
        if progress is not None:
            progress(path)

    for scanner in scanners:
        last = n_subjects + (n_validation if undersampled else 0)
        for p in range(1, last + 1):
            for modality in modalities:
                for name in FILES[modality]:
                    if name == "cine_lax" and not lax:
                        continue
                    sim = simulate_scan(scanner, p, name, seed, **scan)
                    # HDF5 order (T, Z, C, ky, kx) = MATLAB (kx, ky, coil, slice, time) reversed
                    k = np.ascontiguousarray(np.swapaxes(sim["kspace"], -1, -2))
                    if modality in MODALITIES_4D:
                        k = k[0]  # (nx, ny, nc, nz): no time axis
                    if p > n_subjects:  # a validation patient
                        _write_validation(
                            emit, k, out_dir, modality, scanner, p, name, accelerations
                        )
                        continue
                    path = training_path(out_dir, modality, scanner, p, name)
                    emit(path, {"kspace": _matlab_view(k)})
                    if undersampled:
                        _write_training_masks(emit, k, path, modality, accelerations)
    return written


def _check_modalities(modalities: Sequence[str], noise: float) -> None:
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    bad = [m for m in modalities if m not in MODALITIES]
    if bad:
        raise ConfigError(
            f"unknown simulated modality '{bad[0]}' (choose from {', '.join(MODALITIES)})"
        )


def scanner_table(scanners: Sequence[Scanner] = SCANNERS) -> list[dict]:
    """The scanners as records (for simulation.json)."""
    return [{**asdict(s), "field_strength": s.field} for s in scanners]
