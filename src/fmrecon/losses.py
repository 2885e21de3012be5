"""Differentiable SSIM and the SSIM training loss (torch, CPU or GPU).

Convention (fastMRI ``SSIMLoss``, matching skimage ``structural_similarity`` defaults):
7x7 uniform window, k1 = 0.01, k2 = 0.03, covariances normalised by NP / (NP - 1)
with NP = 49 (sample covariance), statistics over the valid region only (no
padding), data range given per example (typically the target's max).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _as_bchw(x: torch.Tensor, name: str) -> torch.Tensor:
    """(B, H, W) or (B, 1, H, W) -> (B, 1, H, W)."""
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] == 1:
        return x
    raise ValueError(f"{name} must be (B, H, W) or (B, 1, H, W), got shape {tuple(x.shape)}")


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: torch.Tensor | float,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Per-example SSIM, shape (B,).

    ``pred``, ``target``: real (B, H, W) or (B, 1, H, W) with H, W >= ``win_size``;
    ``data_range``: (B,) tensor (or a scalar for the whole batch). The SSIM map is
    averaged over the valid (unpadded) pixels of each example.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    if pred.is_complex() or target.is_complex():
        raise ValueError("ssim expects real images; take the magnitude first")
    x = _as_bchw(pred, "pred")
    y = _as_bchw(target, "target")
    h, w = x.shape[-2:]
    if h < win_size or w < win_size:
        raise ValueError(
            f"images of size {h}x{w} are smaller than the {win_size}x{win_size} SSIM window"
        )
    b = x.shape[0]
    dr = torch.as_tensor(data_range, dtype=x.dtype, device=x.device)
    if dr.dim() == 0:
        dr = dr.expand(b)
    if dr.shape != (b,):
        raise ValueError(f"data_range must be a scalar or shape ({b},), got {tuple(dr.shape)}")
    dr = dr.view(b, 1, 1)
    c1 = (k1 * dr) ** 2
    c2 = (k2 * dr) ** 2
    n_p = win_size * win_size
    cov_norm = n_p / (n_p - 1)  # sample covariance, as skimage use_sample_covariance=True

    # Variances are shift-invariant: subtract one per-example constant before the
    # second moments to limit float32 cancellation in E[x^2] - E[x]^2.
    shift = y.mean(dim=(-2, -1), keepdim=True).detach()
    xc, yc = x - shift, y - shift
    # One valid (unpadded) uniform filter over the five statistic maps at once.
    stats = torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], dim=1)
    mean = F.avg_pool2d(stats, kernel_size=win_size, stride=1)
    mx, my, mxx, myy, mxy = mean.unbind(dim=1)
    vx = cov_norm * (mxx - mx * mx)
    vy = cov_norm * (myy - my * my)
    vxy = cov_norm * (mxy - mx * my)
    ux, uy = mx + shift[:, 0], my + shift[:, 0]

    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (num / den).mean(dim=(-2, -1))


class SSIMLoss(nn.Module):
    """``1 - mean SSIM`` over the batch (see :func:`ssim` for the convention).

    ``forward(pred, target, data_range)``: (B, H, W) or (B, 1, H, W) real images and a
    (B,) data range per example (e.g. ``target.amax(dim=(-2, -1))``). Returns a scalar.
    """

    def __init__(self, win_size: int = 7, k1: float = 0.01, k2: float = 0.03):
        super().__init__()
        self.win_size = win_size
        self.k1 = k1
        self.k2 = k2

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor | float
    ) -> torch.Tensor:
        s = ssim(pred, target, data_range, win_size=self.win_size, k1=self.k1, k2=self.k2)
        return 1.0 - s.mean()

    def extra_repr(self) -> str:
        return f"win_size={self.win_size}, k1={self.k1}, k2={self.k2}"
