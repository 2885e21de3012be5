"""The zero-filled baseline: inverse FFT of the masked k-space, RSS over coils."""

from __future__ import annotations

import torch

from fmrecon.models.base import ReconModel
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c


class ZeroFilled(ReconModel):
    """(B, C, H, W) complex masked k-space, (B, 1, H, W) mask -> (B, H, W) RSS image."""

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return rss(ifft2c(masked_kspace), dim=-3)
