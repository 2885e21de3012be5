"""Image-quality metrics (SSIM, PSNR, NMSE) in the fastMRI and CMRxRecon conventions.

Images are real magnitude arrays; everything is computed in float64.
Internal volume orders: fastMRI ``(S, H, W)`` (slice, rows, cols); CMRxRecon
``(T, Z, H, W)`` (frame/weighting, slice, kx = readout, ky).

fastMRI (``fastmri/evaluate.py``): NMSE and PSNR per volume, SSIM per slice and
averaged, data range = maximum of the target *volume*, both arrays centre-cropped
to ``(W_target, W_target)`` first.

CMRxRecon (official challenge scoring): every 2-D image is divided by its own max,
then SSIM/PSNR with data range 1 and NMSE; ranking uses only the central 2 slices,
the first 3 frames (all weightings for mapping) and a centre crop of
``round(kx/3) x round(ky/2)`` (``run4Ranking.m``).

Scoring conventions (:data:`CONVENTIONS`, :func:`convention_metrics`), each
scoring a file's images (every image of the file, except ``cmrxrecon``):

- ``fastmri``: fastMRI ``evaluate.py`` (crop to ``(W, W)``, volume max, PSNR/NMSE
  per volume, SSIM per image);
- ``cmrxrecon``: the challenge ranking (ranking slices/frames, ranking crop, each
  image divided by its own max, mean over images);
- ``full-volume``: as ``fastmri`` but with no crop: the full field of view, the file
  (all slices and frames) as one volume, data range = the volume's max;
- ``full-per-image``: as ``cmrxrecon`` but every slice and frame over the full field
  of view: each image divided by its own max, mean over images.
- ``cmrxrecon2025``: the CMRxRecon 2025 ranking (``run4Ranking_2025.m``: which
  frames depends on the file name) and the 2025 scorer's per-image metrics
  (percentile normalisation; see the "CMRxRecon 2025" section).

Scoring fingerprint: for one scored unit (a volume where PSNR/NMSE are per volume,
an image where they are per image), ``PSNR + 10 log10(NMSE) = 10 log10(peak^2 /
mean(target^2))`` over the scored region, exactly (the error cancels). It depends
only on the target and the convention, so it tells which convention produced a
table (see :func:`fingerprint_db`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fmrecon.errors import DataError

METRIC_NAMES = ("ssim", "psnr", "nmse")
#: scoring conventions understood by :func:`convention_metrics` (see the module doc)
CONVENTIONS = ("fastmri", "cmrxrecon", "full-volume", "full-per-image", "cmrxrecon2025")
#: one line per convention: what it computes
CONVENTION_HELP = {
    "fastmri": "fastMRI evaluate.py: crop to (W, W), data range = volume max, "
    "PSNR/NMSE per volume, SSIM per image",
    "cmrxrecon": "CMRxRecon ranking: central 2 slices, first 3 frames, crop "
    "round(kx/3) x round(ky/2), each image / its own max, mean over images",
    "full-volume": "every image, full field of view, data range = volume max, "
    "PSNR/NMSE per volume, SSIM per image (fastMRI with no crop)",
    "full-per-image": "every image, full field of view, each image / its own max, "
    "mean over images (CMRxRecon scoring with no reduction)",
    "cmrxrecon2025": "CMRxRecon 2025 ranking (run4Ranking_2025.m): central 2 slices, first 3 "
    "frames (all for mapping and T1rho, one for BlackBlood/T1w/T2w), crop round(kx/3) x "
    "round(ky/2), each image / its 99.5th percentile, data range = the reference's max, "
    "mean over images",
}

# skimage structural_similarity defaults, used by both conventions: 7x7 uniform
# window, K1 = 0.01, K2 = 0.03, sample covariance (N / (N - 1)).
SSIM_WIN_SIZE = 7
#: conventions that score the CMRxRecon ranking region (ESPIRiT crop.m placement)
RANKING_CONVENTIONS = ("cmrxrecon", "cmrxrecon2025")


# ----------------------------------------------------------------------------- helpers


def _as_real(x, name: str = "image") -> np.ndarray:
    """Return ``x`` as a float64 array; complex input is refused (take ``abs`` first)."""
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise DataError(f"{name} is complex; metrics expect real magnitude images (use abs)")
    return arr.astype(np.float64, copy=False)


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name} holds non-finite values (NaN or Inf)")


def _check_ssim_size(shape: tuple[int, ...], name: str) -> None:
    if min(shape[-2:]) < SSIM_WIN_SIZE:
        raise DataError(
            f"{name} images of size {shape[-2]}x{shape[-1]} are smaller than the "
            f"{SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} SSIM window"
        )


def round_half_away(x: float) -> int:
    """MATLAB ``round``: halves go away from zero (Python's ``round`` goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


# ----------------------------------------------------------------------------- fastMRI


def mse(gt, pred) -> float:
    """Mean squared error over all elements."""
    gt, pred = _as_real(gt, "target"), _as_real(pred, "recon")
    return float(np.mean((gt - pred) ** 2))


def nmse(gt, pred) -> float:
    """``||gt - pred||^2 / ||gt||^2`` over the whole array (fastMRI ``nmse``).

    An all-zero ``gt`` gives 0 when ``pred`` is also zero, else ``inf``.
    """
    gt, pred = _as_real(gt, "target"), _as_real(pred, "recon")
    num = float(np.sum((gt - pred) ** 2))
    den = float(np.sum(gt**2))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def psnr(gt, pred, maxval: float | None = None) -> float:
    """PSNR with ``data_range = maxval`` (default ``gt.max()`` of the whole array).

    fastMRI ``psnr``: skimage ``peak_signal_noise_ratio``, i.e.
    ``10 log10(maxval^2 / mse)``; identical inputs give ``inf``.
    """
    gt, pred = _as_real(gt, "target"), _as_real(pred, "recon")
    maxval = float(gt.max()) if maxval is None else float(maxval)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(gt, pred, data_range=maxval))


def ssim(gt, pred, maxval: float | None = None) -> float:
    """Mean over slices of skimage SSIM with ``data_range = maxval`` (fastMRI ``ssim``).

    ``gt``, ``pred``: (S, H, W) or a single (H, W) image. ``maxval`` defaults to the
    max of the whole ``gt`` volume, not of each slice.
    """
    gt, pred = _as_real(gt, "target"), _as_real(pred, "recon")
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise DataError(
            f"ssim needs two (S, H, W) arrays of the same shape, got {gt.shape} and {pred.shape}"
        )
    _check_ssim_size(gt.shape, "ssim")
    maxval = float(gt.max()) if maxval is None else float(maxval)
    vals = [
        structural_similarity(g, p, data_range=maxval, win_size=SSIM_WIN_SIZE)
        for g, p in zip(gt, pred, strict=True)
    ]
    return float(np.mean(vals))


def _crop(x, shape: tuple[int, int], matlab: bool):
    """The one crop: last two axes of ``x`` (NumPy array, torch tensor or
    array-like) to ``shape = (h, w)``; start ``(s - c) // 2`` (fastMRI) or,
    with ``matlab``, ``floor(s/2) - floor(c/2)`` (ESPIRiT ``crop.m``)."""
    arr = x if hasattr(x, "shape") and hasattr(x, "__getitem__") else np.asarray(x)
    h, w = int(shape[0]), int(shape[1])
    H, W = int(arr.shape[-2]), int(arr.shape[-1])
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(
            f"cannot {'' if matlab else 'centre-'}crop an image of size {H}x{W} to {h}x{w}"
        )
    r0, c0 = (H // 2 - h // 2, W // 2 - w // 2) if matlab else ((H - h) // 2, (W - w) // 2)
    return arr[..., r0 : r0 + h, c0 : c0 + w]


def center_crop(x, shape: tuple[int, int]) -> np.ndarray:
    """Crop the last two axes of ``x`` (..., H, W) to ``shape = (h, w)``.

    fastMRI ``center_crop``: start ``(H - h) // 2`` (and ``(W - w) // 2``).
    A torch tensor stays a tensor (a view), anything else becomes NumPy.
    """
    return _crop(x, shape, matlab=False)


def fingerprint_db(target, peak: float | None = None) -> float:
    """Scoring fingerprint ``10 log10(peak^2 / mean(target^2))`` of a scored region.

    ``peak`` defaults to ``target.max()``. For one scored unit it equals
    ``PSNR + 10 log10(NMSE)`` whatever the reconstruction (PSNR with data range
    ``peak``); ``inf`` for an all-zero target, ``nan`` for an empty one.
    """
    target = _as_real(target, "target")
    if target.size == 0:
        return math.nan
    peak = float(target.max()) if peak is None else float(peak)
    energy = float(np.mean(target**2))
    if energy == 0.0:
        return math.inf
    if peak == 0.0:
        return -math.inf
    return 10.0 * math.log10(peak**2 / energy)


def _fastmri_metrics(target, recon, crop: bool) -> dict[str, float]:
    """fastMRI metrics of one volume plus its fingerprint; ``crop``: to (W, W)."""
    target, recon = _as_real(target, "target"), _as_real(recon, "recon")
    if target.ndim != 3 or recon.ndim != 3:
        raise DataError(
            f"fastMRI volumes must be (slices, H, W), got target {target.shape} "
            f"and recon {recon.shape}"
        )
    if target.shape[0] != recon.shape[0]:
        raise DataError(
            f"slice counts differ: target has {target.shape[0]}, recon has {recon.shape[0]}"
        )
    _check_finite(target, "target")
    _check_finite(recon, "recon")
    # fastMRI evaluate.py: center_crop(target, (W, W)), then center_crop(recon, (W, W));
    # without ``crop`` the target's whole field of view (a larger recon, e.g. fastMRI
    # k-space images beside the stored 320x320 reconstruction_rss, is cropped to it)
    convention = "fastmri" if crop else "full-volume"
    size = convention_crop_size(convention, target.shape, recon.shape)
    target, recon = center_crop(target, size), center_crop(recon, size)
    maxval = float(target.max())
    if maxval <= 0.0:
        raise DataError("target volume is all zero (or negative); PSNR/SSIM are undefined")
    _check_ssim_size(target.shape, "fastMRI")
    return {
        "ssim": ssim(target, recon, maxval),
        "psnr": psnr(target, recon, maxval),
        "nmse": nmse(target, recon),
        "fingerprint_db": fingerprint_db(target, maxval),
    }


def fastmri_volume_metrics(target, recon) -> dict[str, float]:
    """fastMRI metrics of one volume: ``dict(ssim=, psnr=, nmse=)``.

    ``target``: (S, H, W), ``recon``: (S, H', W'). Both are centre-cropped to
    ``(W, W)`` with ``W = target.shape[-1]`` as ``fastmri/evaluate.py`` does (320x320 on
    the public data); where an array is smaller than that, the crop size is clipped to
    the smaller size so both arrays end up the same shape. Data range = target volume max.
    """
    m = _fastmri_metrics(target, recon, crop=True)
    return {k: m[k] for k in METRIC_NAMES}


# ----------------------------------------------------------------------------- CMRxRecon


def is_mapping_modality(modality: str) -> bool:
    """True for T1map, T2map and any other modality whose name contains "map"."""
    return "map" in modality.lower()


def ranking_indices(nz: int, nt: int, modality: str) -> tuple[list[int], list[int]]:
    """0-based (slice_indices, frame_indices) kept for CMRxRecon ranking.

    ``run4Ranking.m``: slices ``(round(sz/2)-1):round(sz/2)`` (1-based, MATLAB round =
    half away from zero), all slices when ``sz < 3``; frames ``1:3`` (all if fewer),
    all weightings for mapping.
    """
    nz, nt = int(nz), int(nt)
    if nz < 1 or nt < 1:
        raise ValueError(f"need at least one slice and one frame, got nz={nz}, nt={nt}")
    if nz < 3:
        slices = list(range(nz))
    else:
        centre = round_half_away(nz / 2)  # 1-based index of the second kept slice
        slices = [centre - 2, centre - 1]  # 1-based (centre-1, centre) -> 0-based
    frames = list(range(nt)) if is_mapping_modality(modality) else list(range(min(3, nt)))
    return slices, frames


def cmrxrecon_crop(x, shape: tuple[int, int]) -> np.ndarray:
    """Crop the last two axes of ``x`` (..., H, W) to ``shape = (h, w)``.

    ESPIRiT ``crop.m`` used by ``run4Ranking.m``: 1-based indices
    ``floor(s/2)+1+ceil(-c/2) : floor(s/2)+ceil(c/2)``, i.e. 0-based start
    ``floor(s/2) - floor(c/2)``. Differs from fastMRI's ``(s - c) // 2`` by one when
    ``s`` is even and ``c`` is odd.
    """
    return _crop(x, shape, matlab=True)


def convention_crop_size(
    convention: str, target_shape: tuple[int, ...], image_shape: tuple[int, ...]
) -> tuple[int, int]:
    """The (h, w) a convention scores of a target (..., h_t, w_t) and images
    (..., H, W): ``fastmri`` (W_t, W_t) (fastMRI ``evaluate.py``), ``cmrxrecon``
    ``round(H/3) x round(W/2)`` of the k-space matrix (``run4Ranking.m``), the
    full-* conventions the target's whole field of view; always clipped to both
    sizes (a smaller stored target is cropped to the same region)."""
    th, tw = int(target_shape[-2]), int(target_shape[-1])
    ih, iw = int(image_shape[-2]), int(image_shape[-1])
    if convention in RANKING_CONVENTIONS:
        h, w = ranking_crop_size(ih, iw)
    elif convention == "fastmri":
        h = w = tw
    else:
        h, w = th, tw
    return min(h, th, ih), min(w, tw, iw)


def scored_region(x, size: tuple[int, int], convention: str):
    """Crop ``x`` (..., H, W) to ``size`` with the convention's placement:
    ESPIRiT ``crop.m`` for the ranking conventions, fastMRI's centre otherwise."""
    return _crop(x, size, matlab=convention in RANKING_CONVENTIONS)


def ranking_crop_size(H: int, W: int) -> tuple[int, int]:
    """Ranking crop ``(round(kx/3), round(ky/2))`` with MATLAB rounding (``run4Ranking.m``)."""
    return round_half_away(H / 3), round_half_away(W / 2)


def ranking_reduce(volume, modality: str) -> np.ndarray:
    """Reduce a (T, Z, H, W) volume to what CMRxRecon ranks: (T', Z', h, w).

    Keeps :func:`ranking_indices` slices/frames and crops to :func:`ranking_crop_size`
    with :func:`cmrxrecon_crop`.
    """
    arr = np.asarray(volume)
    if arr.ndim != 4:
        raise DataError(f"CMRxRecon volumes must be (T, Z, H, W), got shape {arr.shape}")
    nt, nz, H, W = arr.shape
    slices, frames = ranking_indices(nz, nt, modality)
    arr = arr[frames][:, slices]
    return cmrxrecon_crop(arr, ranking_crop_size(H, W))


def _normalise_by_max(x: np.ndarray) -> np.ndarray:
    # Official scoring divides each 2-D image by its own max; guard an all-zero image.
    m = float(x.max())
    return x / m if m != 0.0 else x


def cmrxrecon_image_metrics(gt, pred) -> dict[str, float]:
    """CMRxRecon metrics of one 2-D (H, W) image pair: ``dict(ssim=, psnr=, nmse=)``.

    Each image is divided by its own max, then skimage SSIM (7x7, data_range 1),
    PSNR (data_range 1) and NMSE, as in the challenge's ``Evaluation.py``.
    """
    gt, pred = _as_real(gt, "target"), _as_real(pred, "recon")
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise DataError(f"need two 2-D images of the same shape, got {gt.shape} and {pred.shape}")
    _check_finite(gt, "target")
    _check_finite(pred, "recon")
    _check_ssim_size(gt.shape, "CMRxRecon")
    gt, pred = _normalise_by_max(gt), _normalise_by_max(pred)
    return {
        "ssim": float(structural_similarity(gt, pred, data_range=1.0, win_size=SSIM_WIN_SIZE)),
        "psnr": psnr(gt, pred, maxval=1.0),
        "nmse": nmse(gt, pred),
    }


def cmrxrecon_volume_metrics(target, recon, modality: str, reduce: bool = True) -> dict[str, float]:
    """CMRxRecon metrics of one file: mean over its 2-D images of the per-image metrics.

    ``target``, ``recon``: (T, Z, H, W) magnitude. With ``reduce`` both are first passed
    through :func:`ranking_reduce` (central slices, first frames, ranking crop). The
    mean over files is left to the caller.
    """
    target, recon = _as_real(target, "target"), _as_real(recon, "recon")
    if target.ndim != 4 or target.shape != recon.shape:
        raise DataError(
            f"CMRxRecon target and recon must both be (T, Z, H, W) of the same shape, "
            f"got {target.shape} and {recon.shape}"
        )
    if target.size == 0:
        raise DataError(f"CMRxRecon volume of shape {target.shape} is empty")
    _check_finite(target, "target")
    _check_finite(recon, "recon")
    if reduce:
        target, recon = ranking_reduce(target, modality), ranking_reduce(recon, modality)
    per_image = [
        cmrxrecon_image_metrics(target[t, z], recon[t, z])
        for t in range(target.shape[0])
        for z in range(target.shape[1])
    ]
    return {k: float(np.mean([m[k] for m in per_image])) for k in METRIC_NAMES}


def _per_image_mean(target: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """Mean over (N, h, w) images of the CMRxRecon per-image metrics and fingerprints
    (each image divided by its own max: peak 1 for the normalised target)."""
    per = [cmrxrecon_image_metrics(t, r) for t, r in zip(target, recon, strict=True)]
    out = {k: float(np.mean([m[k] for m in per])) for k in METRIC_NAMES}
    out["fingerprint_db"] = float(np.mean([fingerprint_db(t) for t in target]))
    return out


# ----------------------------------------------------------------------------- CMRxRecon 2025

# The 2025 ranking reduction is run4Ranking_2025.m (github.com/CmrxRecon/CMRxRecon2025,
# CMRxReconDemo/); the scoring is the organisers' 2025 scorer (github.com/CmrxRecon/
# CMRx-evaluation-snippets, test-2025/Test_Score2025.py + Evaluation.py. The validation
# scorer, CMRxRecon2025-snippets/evaluation-2025/Val_Score2025_v3.py, has the same per-image
# formulas but does not squeeze: it scores an (h, w, 1, T) array with the reconstruction as
# reference and fails on an (h, w) one). Where 2025 differs from 2023 (run4Ranking.m and
# the max-normalised metrics above):
# - frames are chosen from the file name with MATLAB's case-sensitive ``contains``: all
#   frames for T1map/T2map/T2smap/T1mappost and T1rho, one frame for blackblood/T1w/T2w
#   (4-D k-space, no time axis) or a single-frame file, else the first 3;
# - img4ranking keeps MATLAB's dims (trailing singletons dropped): (h, w, S, T), (h, w, 1, T),
#   (h, w, S) or (h, w) for a 4-D file with one slice;
# - each 2-D image, target and reconstruction alike, is divided by its own 99.5th percentile
#   of |x| (numpy's linear interpolation; left as |x| when that is 0), not by its max;
# - SSIM (skimage, 7x7 uniform window) and PSNR take data range = the max of the reference
#   image after that normalisation (>= 1), and NMSE divides by the reference's energy;
# - the reference is the target when the squeezed img4ranking has 2 or 3 dims, but the
#   reconstruction when it has 4 (two slices and several frames): Test_Score2025.py calls
#   calmetric(gt, recon) whose parameters are (pred_recon, gt_recon), and calmetric's 2-D/3-D
#   branches swap the roles back. Reproduced here, so the numbers are the leaderboard's.
# - the leaderboard is a mean over groups ((center, vendor) for task R1, diseases for the
#   others) of per-group adjusted means, not a mean over files (challenge_summary_2025).

#: run4Ranking_2025.m: names of the 4-D modalities (one frame) and of the modalities whose
#: every frame is ranked (detectMap, then T1rho); matched with MATLAB's case-sensitive contains
RANKING25_SINGLE_FRAME = ("blackblood", "T1w", "T2w")
RANKING25_ALL_FRAMES = ("T1map", "T2map", "T2smap", "T1mappost", "T1rho")
#: the 2025 scorer's normalisation percentile (Evaluation.py normalize_percentile)
RANKING25_PERCENTILE = 99.5


def is_single_frame_2025(name: str) -> bool:
    """True for a file ``run4Ranking_2025.m`` reads as 4-D (nx, ny, nc, nz): its
    name contains ``blackblood``, ``T1w`` or ``T2w`` (case-sensitive)."""
    return any(k in str(name) for k in RANKING25_SINGLE_FRAME)


def ranking_indices_2025(
    nz: int, nt: int, name: str, source: str | os.PathLike | None = None
) -> tuple[list[int], list[int]]:
    """0-based (slice_indices, frame_indices) ``run4Ranking_2025.m`` keeps of a file
    named ``name`` (its file name: the official code decides on ``fileInfo.name``;
    ``source``, e.g. the file's path, is what an error names, default ``name``).

    Slices ``round(sz/2)-1 : round(sz/2)`` (1-based, MATLAB round), all when
    ``sz < 3``; frames: one for the 4-D modalities and for ``t == 1``, all for
    mapping and T1rho, else ``1:min(3, t)``. A file named as a 4-D modality
    with ``nt > 1`` is refused: MATLAB would read its time axis as slices.
    """
    nz, nt = int(nz), int(nt)
    if nz < 1 or nt < 1:
        raise ValueError(f"need at least one slice and one frame, got nz={nz}, nt={nt}")
    single = is_single_frame_2025(name)
    if single and nt > 1:
        raise DataError(
            f"{source or name}: named as a 4-D modality ({'/'.join(RANKING25_SINGLE_FRAME)}: "
            f"(nx, ny, nc, nz), no time axis in run4Ranking_2025.m) but has {nt} frames"
        )
    if nz < 3:
        slices = list(range(nz))
    else:
        centre = round_half_away(nz / 2)  # 1-based index of the second kept slice
        slices = [centre - 2, centre - 1]
    if single or nt == 1:
        frames = [0]
    elif any(k in str(name) for k in RANKING25_ALL_FRAMES):
        frames = list(range(nt))
    else:
        frames = list(range(min(3, nt)))
    return slices, frames


def ranking_array_2025(images) -> np.ndarray:
    """The ranked images (T', Z', H, W) (already the kept frames and slices,
    magnitude) as ``img4ranking``: the crop ``round(H/3) x round(W/2)`` (ESPIRiT
    ``crop.m`` placement), ``single``, MATLAB order (h, w, S, T) with MATLAB's
    dims (trailing singleton dims dropped, at least 2). For one slice and one
    frame of a 5-D file the official script assigns no img4ranking (an error);
    we give the (h, w) image, as it does for a 4-D file with one slice."""
    arr = np.abs(np.asarray(images))
    if arr.ndim != 4:
        raise DataError(f"ranked images must be (T, Z, H, W), got shape {arr.shape}")
    arr = cmrxrecon_crop(arr, ranking_crop_size(*arr.shape[-2:])).astype(np.float32)
    out = arr.transpose(2, 3, 1, 0)  # (T, Z, h, w) -> MATLAB (h, w, S, T)
    while out.ndim > 2 and out.shape[-1] == 1:
        out = out[..., 0]
    return np.ascontiguousarray(out)


def img4ranking_2025(volume, name: str) -> np.ndarray:
    """``run4Ranking_2025.m`` of a coil-combined magnitude volume (T, Z, H, W)
    of the file ``name``: the kept slices and frames (:func:`ranking_indices_2025`)
    through :func:`ranking_array_2025`."""
    arr = np.asarray(volume)
    if arr.ndim != 4:
        raise DataError(f"{name}: volumes must be (T, Z, H, W), got shape {arr.shape}")
    slices, frames = ranking_indices_2025(arr.shape[1], arr.shape[0], name)
    return ranking_array_2025(arr[frames][:, slices])


def run4ranking_2025(img, name: str) -> np.ndarray:
    """``run4Ranking_2025(img, filetype)``: complex coil images in MATLAB order,
    (sx, sy, nc, sz, t) or (sx, sy, nc, sz) (a 4-D modality, or one frame), ->
    ``img4ranking`` (root sum of squares over coils, then
    :func:`img4ranking_2025`)."""
    arr = np.asarray(img)
    if arr.ndim == 3:  # MATLAB drops a trailing singleton slice dim
        arr = arr[..., None]
    if arr.ndim not in (4, 5):
        raise DataError(
            f"{name}: run4Ranking_2025 takes (sx, sy, nc, sz[, t]) images, got {arr.shape}"
        )
    sos = np.sqrt(np.sum(np.abs(arr) ** 2, axis=2))  # sos(img, 3): (sx, sy, sz[, t])
    if sos.ndim == 3:
        sos = sos[..., None]
    return img4ranking_2025(sos.transpose(3, 2, 0, 1), name)


def ranking_reference_2025(n_slices: int, n_frames: int) -> str:
    """Which image the 2025 scorer treats as the reference of a file whose
    img4ranking holds ``n_slices`` x ``n_frames`` images: ``"recon"`` when both
    are > 1 (a 4-D squeezed array), else ``"target"`` (see the section note)."""
    return "recon" if n_slices > 1 and n_frames > 1 else "target"


def normalize_percentile_2025(x) -> np.ndarray:
    """|x| / its 99.5th percentile (Evaluation.py ``normalize_percentile``);
    |x| unchanged when the percentile is 0."""
    data = np.abs(np.asarray(x, dtype=np.float64))
    p = float(np.percentile(data, RANKING25_PERCENTILE))
    return data if p == 0.0 else data / p


def cmrxrecon2025_image_metrics(gt, pred, reference: str = "target") -> dict[str, float]:
    """The 2025 scorer's metrics of one 2-D image pair: both images divided by
    their 99.5th percentile, then with ``ref`` = the normalised ``reference``
    (``"target"`` or ``"recon"``) and ``other`` the other one: skimage SSIM (7x7,
    data range ``ref.max()``), PSNR ``10 log10(ref.max()^2 / mse)``, NMSE
    ``||ref - other||^2 / ||ref||^2``, and the image's fingerprint. An all-zero
    reference gives NaN (the official scorer divides by zero there)."""
    if reference not in ("target", "recon"):
        raise ValueError(f"reference must be 'target' or 'recon', got {reference!r}")
    gt, pred = _as_real(gt, "target"), _as_real(pred, "recon")
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise DataError(f"need two 2-D images of the same shape, got {gt.shape} and {pred.shape}")
    _check_finite(gt, "target")
    _check_finite(pred, "recon")
    _check_ssim_size(gt.shape, "CMRxRecon 2025")
    a, b = normalize_percentile_2025(gt), normalize_percentile_2025(pred)
    ref, other = (a, b) if reference == "target" else (b, a)
    dr = float(ref.max())
    if dr == 0.0:
        return {k: math.nan for k in (*METRIC_NAMES, "fingerprint_db")}
    return {
        "ssim": float(structural_similarity(ref, other, data_range=dr, win_size=SSIM_WIN_SIZE)),
        "psnr": psnr(ref, other, maxval=dr),
        "nmse": nmse(ref, other),
        "fingerprint_db": fingerprint_db(ref, dr),
    }


def _cmrxrecon2025_metrics(target: np.ndarray, recon: np.ndarray, reference: str) -> dict:
    per = [cmrxrecon2025_image_metrics(t, r, reference) for t, r in zip(target, recon, strict=True)]
    return {k: float(np.mean([m[k] for m in per])) for k in (*METRIC_NAMES, "fingerprint_db")}


def challenge_summary_2025(
    rows: Sequence[Mapping], by: Sequence[str], expected: Mapping[tuple, int] | None = None
) -> dict:
    """The 2025 scorer's summary of per-file rows (dicts with ``psnr``, ``ssim``,
    ``nmse`` and the ``by`` fields, e.g. ("center", "vendor") for task R1):
    per group, ``PSNR_adj = sum(PSNR) / expected`` (SSIM alike) and
    ``NMSE_adj = mean(NMSE) * (2 - submitted / expected)``, where ``expected``
    is the group's file count in the ground truth (default: the rows
    themselves, when the adjusted means are the plain means), then the mean of
    the groups' values (``Mean_of_all_centers_*``: every group counts once,
    whatever its number of files). Rows with a NaN metric are not counted
    (the scorer keeps records without a comment only).

    Returns ``{"groups": {key: {"n": , "expected": , "psnr": , "ssim": , "nmse": }},
    "mean": {"psnr": , "ssim": , "nmse": }}``.
    """
    grouped: dict[tuple, list[Mapping]] = {}
    for r in rows:
        if all(math.isfinite(float(r[k])) for k in METRIC_NAMES):
            grouped.setdefault(tuple(r[k] for k in by), []).append(r)
    groups = {}
    for key, members in sorted(grouped.items(), key=lambda kv: tuple(map(str, kv[0]))):
        n = len(members)
        total = n if expected is None else int(expected.get(key, 0))
        if total <= 0:
            continue  # the scorer skips groups without ground-truth files
        psnr_ = sum(float(r["psnr"]) for r in members) / total
        ssim_ = sum(float(r["ssim"]) for r in members) / total
        nmse_ = float(np.mean([float(r["nmse"]) for r in members])) * (2 - n / total)
        groups[key] = {"n": n, "expected": total, "psnr": psnr_, "ssim": ssim_, "nmse": nmse_}
    mean = {
        k: float(np.mean([g[k] for g in groups.values()])) if groups else math.nan
        for k in METRIC_NAMES
    }
    return {"groups": groups, "mean": mean}


def convention_metrics(
    target, recon, convention: str, *, grid: tuple[int, int] | None = None
) -> dict[str, float]:
    """Metrics of the scored images of one file in ``convention`` (:data:`CONVENTIONS`).

    ``target``, ``recon``: (N, H, W) stacks of the file's scored images (the caller
    selects the ranking slices/frames for ``cmrxrecon`` and ``cmrxrecon2025``; the
    other conventions score every image). ``grid`` = (frames, slices) the N images
    come from; ``cmrxrecon2025`` needs it to pick the scorer's reference image
    (:func:`ranking_reference_2025`; None = one axis: the target). Returns
    ``dict(ssim=, psnr=, nmse=, fingerprint_db=)``, where ``fingerprint_db`` is the
    exact fingerprint ``10 log10(peak^2/mean(ref^2))`` of the file's scored region
    (``fastmri``, ``full-volume``: the target volume and its max) or the mean of its
    images' fingerprints (``cmrxrecon``, ``full-per-image``: each target image and its
    own max; ``cmrxrecon2025``: each reference image and its max).
    """
    if convention not in CONVENTIONS:
        raise DataError(f"unknown convention '{convention}' (choose from {', '.join(CONVENTIONS)})")
    if convention == "fastmri":
        return _fastmri_metrics(target, recon, crop=True)
    if convention == "full-volume":
        return _fastmri_metrics(target, recon, crop=False)
    target, recon = _as_real(target, "target"), _as_real(recon, "recon")
    if target.ndim != 3 or recon.ndim != 3 or target.shape[0] != recon.shape[0]:
        raise DataError(
            f"{convention}: target and recon must both be (N, H, W) with the same N, "
            f"got {target.shape} and {recon.shape}"
        )
    if target.shape[0] == 0:
        raise DataError(f"{convention}: no images to score")
    size = convention_crop_size(convention, target.shape, recon.shape)
    target = scored_region(target, size, convention)
    recon = scored_region(recon, size, convention)
    if convention == "cmrxrecon2025":
        frames, slices = (target.shape[0], 1) if grid is None else grid
        if frames * slices != target.shape[0]:
            raise DataError(
                f"{convention}: {target.shape[0]} images are not {frames} frames x {slices} slices"
            )
        return _cmrxrecon2025_metrics(target, recon, ranking_reference_2025(slices, frames))
    return _per_image_mean(target, recon)
