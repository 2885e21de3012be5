"""FM-VarNet (arXiv 2026, section 3.2): E2E-VarNet whose every cascade's
regularizer is the foundation-model denoiser (``fm_denoiser.FMDenoiser``).

The cascades, the learned sensitivity model and the RSS output are those of
``varnet.VarNet``; the frozen encoder is registered once here and shared by
all cascades (twelve cascades, one copy of its weights).
"""

from __future__ import annotations

import torch
from torch import nn

from fmrecon.models.fm_denoiser import FMDenoiser
from fmrecon.models.varnet import VarNet


class FMVarNet(nn.Module):
    """(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W) bool) -> (B, H, W)."""

    def __init__(
        self,
        encoder: nn.Module,
        num_cascades: int = 12,
        sens_chans: int = 8,
        sens_pools: int = 4,
        checkpoint_cascades: bool = False,
        **denoiser_kwargs,
    ):
        super().__init__()
        self.encoder = encoder
        self.varnet = VarNet(
            num_cascades=num_cascades,
            sens_chans=sens_chans,
            sens_pools=sens_pools,
            regularizer_factory=lambda i: FMDenoiser(encoder, **denoiser_kwargs),
            checkpoint_cascades=checkpoint_cascades,
        )

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.varnet(masked_kspace, mask)
