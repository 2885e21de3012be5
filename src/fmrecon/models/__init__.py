"""Reconstruction models. Every registered model is a
:class:`~fmrecon.models.base.ReconModel`, called as
``model(masked_kspace, mask) -> image``: masked_kspace complex (B, C, H, W),
mask bool (B, 1, H, W), image real magnitude (B, H, W); ``model.record`` (a
:class:`~fmrecon.models.base.BuildRecord`) says how ``create_model`` built it."""

from fmrecon.models.base import BuildRecord, ReconModel, build_record
from fmrecon.models.zero_filled import ZeroFilled

__all__ = ["BuildRecord", "ReconModel", "ZeroFilled", "build_record"]
