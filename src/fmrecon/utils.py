"""Small helpers shared across the package."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module``; a parameter shared by several
    submodules is counted once (``Module.parameters()`` de-duplicates). Works on
    the meta device, so full-size architectures can be counted without memory."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
