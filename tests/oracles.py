"""Independent references for end-to-end tests.

Written from the conventions' definitions with NumPy, scikit-image and the
``fastmri`` package (the reference implementation, installed by
scripts/bootstrap.sh), never with fmrecon's own functions, so an end-to-end
test that compares fmrecon with these fails when fmrecon's pipeline drifts
from the convention (a shared helper cannot make both sides wrong together).

- CMRxRecon ranking (``run4Ranking.m`` and the challenge's evaluation): central
  2 slices (all when fewer than 3), first 3 frames (all weightings for
  mapping), crop ``round(kx/3) x round(ky/2)`` placed as ESPIRiT ``crop.m``,
  then per 2-D image: divide by its own max, skimage SSIM and PSNR with data
  range 1, NMSE; mean over the images.
- fastMRI: masks from ``fastmri.data.subsample`` seeded with
  ``tuple(map(ord, file name))`` (fastMRI's validation transforms), images
  from ``fastmri.models.VarNet`` or fastMRI's own zero-filled operators,
  metrics from ``fastmri.evaluate.evaluate`` over result files.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import fastmri
import fastmri.evaluate
import h5py
import numpy as np
import torch
from fastmri.data import subsample
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

# ----------------------------------------------------------------------------- NumPy physics


def np_ifft2c(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse 2-D FFT over the last two axes."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), norm="ortho"), axes=axes)


def np_zero_filled(kspace: np.ndarray, mask: np.ndarray, coil_axis: int) -> np.ndarray:
    """RSS over coils of the inverse FFT of the masked k-space (..., H, W)."""
    img = np_ifft2c(kspace * mask)
    return np.sqrt(np.sum(np.abs(img) ** 2, axis=coil_axis))


def cmrx_uniform_lines(w: int, r: int, acs: int = 24) -> np.ndarray:
    """(W,) bool CMRxRecon 2023 uniform mask: MATLAB ``mask(:, 1:R:end) = 1``
    plus ``acs`` centred lines (``zpad``: 1-based start ``floor(W/2)+1+ceil(-acs/2)``)."""
    lines = np.zeros(w, dtype=bool)
    lines[0::r] = True
    start = math.floor(w / 2) + 1 + math.ceil(-acs / 2)  # 1-based
    lines[start - 1 : start - 1 + acs] = True
    return lines


# ----------------------------------------------------------------------------- CMRxRecon rule


def matlab_round(x: float) -> int:
    """MATLAB ``round`` of a non-negative number: halves go up."""
    return math.floor(x + 0.5)


def ranking_subset(nz: int, nt: int, modality: str) -> tuple[list[int], list[int]]:
    """0-based (slices, frames) of ``run4Ranking.m``: slices
    ``round(sz/2)-1 : round(sz/2)`` (1-based; all when sz < 3), frames ``1:3``
    (all when fewer; every weighting for T1/T2 mapping)."""
    if nz < 3:
        slices = list(range(nz))
    else:
        c = matlab_round(nz / 2)
        slices = [c - 2, c - 1]
    frames = list(range(nt)) if "map" in modality.lower() else list(range(min(3, nt)))
    return slices, frames


def matlab_crop(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """ESPIRiT ``crop.m`` on the last two axes: 1-based indices
    ``floor(s/2)+1+ceil(-c/2) : floor(s/2)+ceil(c/2)``."""
    out = img
    for axis, c in zip((-2, -1), size, strict=True):
        s = img.shape[axis]
        first = math.floor(s / 2) + 1 + math.ceil(-c / 2)  # 1-based, inclusive
        last = math.floor(s / 2) + math.ceil(c / 2)
        out = np.take(out, np.arange(first - 1, last), axis=axis)
    return out


def cmrx_image_scores(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """One 2-D image pair: each divided by its own max, SSIM (skimage 7x7,
    data range 1), PSNR (data range 1), NMSE."""
    gt = gt.astype(np.float64) / gt.max()
    pred = pred.astype(np.float64) / pred.max()
    return {
        "ssim": float(structural_similarity(gt, pred, data_range=1.0)),
        "psnr": float(peak_signal_noise_ratio(gt, pred, data_range=1.0)),
        "nmse": float(np.sum((gt - pred) ** 2) / np.sum(gt**2)),
    }


def cmrx_ranking_scores(target: np.ndarray, recon: np.ndarray, modality: str) -> dict:
    """Ranking scores of one file: target, recon (T, Z, kx, ky) magnitude ->
    mean over the ranked images of :func:`cmrx_image_scores`, and their count."""
    nt, nz, kx, ky = target.shape
    slices, frames = ranking_subset(nz, nt, modality)
    size = (matlab_round(kx / 3), matlab_round(ky / 2))
    per = [
        cmrx_image_scores(matlab_crop(target[t, z], size), matlab_crop(recon[t, z], size))
        for t in frames
        for z in slices
    ]
    out = {m: float(np.mean([p[m] for p in per])) for m in ("ssim", "psnr", "nmse")}
    out["n_images"] = len(per)
    return out


def submission_reduce(volume: np.ndarray, modality: str) -> np.ndarray:
    """``run4Ranking.m``'s ``img4ranking`` of a (T, Z, kx, ky) volume, in
    MATLAB order (sx, sy, sz, t)."""
    nt, nz, kx, ky = volume.shape
    slices, frames = ranking_subset(nz, nt, modality)
    size = (matlab_round(kx / 3), matlab_round(ky / 2))
    kept = matlab_crop(volume[frames][:, slices], size)
    return kept.transpose(2, 3, 1, 0)


# ----------------------------------------------------------------------------- fastMRI

FASTMRI_MASKS = {
    "random": subsample.RandomMaskFunc,
    "equispaced": subsample.EquiSpacedMaskFunc,
    "equispaced-fraction": subsample.EquispacedMaskFractionFunc,
}


def fastmri_lines(kind: str, acc: float, cf: float, w: int, seed, h: int = 8) -> np.ndarray:
    """(W,) bool: fastMRI's mask for a slice of width ``w`` (k-space shape
    (coils, h, w, 2) as ``apply_mask`` passes it) with ``seed``."""
    func = FASTMRI_MASKS[kind]([cf], [acc])
    mask, _ = func((1, h, w, 2), seed=seed)
    return mask.numpy().reshape(-1).astype(bool)


def fastmri_file_mask(path: Path, kind: str, acc: float, cf: float) -> np.ndarray:
    """(W,) bool: the mask fastMRI's validation transforms give every slice of
    ``path`` (seed ``tuple(map(ord, fname))``)."""
    with h5py.File(path, "r") as f:
        h, w = f["kspace"].shape[-2:]
    return fastmri_lines(kind, acc, cf, w, tuple(map(ord, path.name)), h)


def fastmri_zero_filled(kspace: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """(S, C, H, W) complex k-space, (W,) mask -> (S, H, W): fastMRI's
    ``rss(complex_abs(ifft2c(masked)))``."""
    k = torch.view_as_real(torch.from_numpy(kspace * lines))
    return fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(k)), dim=1).numpy()


@torch.inference_mode()
def fastmri_varnet_recon(net, kspace: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """(S, C, H, W) complex k-space, (W,) mask -> (S, H, W) with a
    ``fastmri.models.VarNet`` (all slices in one batch; the ACS width from the
    mask, as fastMRI's pretrained-inference script calls the model)."""
    k = torch.view_as_real(torch.from_numpy(kspace * lines)).float()
    m = torch.from_numpy(lines).view(1, 1, 1, -1, 1).expand(k.shape[0], 1, 1, -1, 1)
    return net(k, m.bool()).numpy()


def fastmri_varnet_from_fmrecon_checkpoint(path: Path, **sizes):
    """A ``fastmri.models.VarNet`` holding the weights of an fmrecon
    E2E-VarNet checkpoint (read with torch.load: ``state_dict`` under ``model.``)."""
    from fastmri.models import VarNet

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items()}
    net = VarNet(**sizes)
    net.load_state_dict(state)
    return net.eval()


def fastmri_evaluate(target_dir: Path, recons: dict[str, np.ndarray], out_dir: Path) -> dict:
    """fastMRI's ``evaluate.py`` over the files of ``target_dir``: writes each
    reconstruction (S, H, W) as ``out_dir/<name>`` (key ``reconstruction``) and
    runs ``fastmri.evaluate.evaluate``. Returns the means over files and the
    per-file metrics (``METRIC_FUNCS`` on the same crops)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rec in recons.items():
        with h5py.File(out_dir / name, "w") as f:
            f["reconstruction"] = rec
    args = argparse.Namespace(
        target_path=Path(target_dir), predictions_path=out_dir, acquisition=None, acceleration=None
    )
    means = fastmri.evaluate.evaluate(args, "reconstruction_rss").means()
    per_file = {}
    crop = fastmri.data.transforms.center_crop
    for name, rec in recons.items():
        with h5py.File(Path(target_dir) / name, "r") as f:
            target = f["reconstruction_rss"][()]
        w = target.shape[-1]
        t, r = crop(target, (w, w)), crop(rec, (w, w))
        per_file[name] = {
            k.lower(): float(np.squeeze(fn(t, r)))
            for k, fn in fastmri.evaluate.METRIC_FUNCS.items()
        }
    return {"mean": {k.lower(): float(np.squeeze(v)) for k, v in means.items()}, **per_file}
