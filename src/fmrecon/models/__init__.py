"""Reconstruction models. Every model is called as
``model(masked_kspace, mask) -> image``: masked_kspace complex (B, C, H, W),
mask bool (B, 1, H, W), image real magnitude (B, H, W)."""

from fmrecon.models.zero_filled import ZeroFilled

__all__ = ["ZeroFilled"]
