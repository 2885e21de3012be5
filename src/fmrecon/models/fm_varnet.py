"""FM-VarNet (arXiv 2026, section 3.2): E2E-VarNet whose every cascade's
regularizer is the foundation-model denoiser (``fm_denoiser.FMDenoiser``).

A :class:`fmrecon.models.varnet.VarNet` (same cascades, learned sensitivity
model and RSS output; state-dict keys ``sens_net.*``, ``cascades.N.*``); the
frozen encoder is registered once, as ``encoder`` (keys ``encoder.*``), and
shared by all cascades (twelve cascades, one copy of its weights).

Checkpoints written before FMVarNet was a VarNet subclass hold the VarNet
under ``varnet.`` (``varnet.cascades.N.*``); :meth:`FMVarNet._load_from_state_dict`
maps them to today's keys whatever loads them (``load_state_dict``,
``fmrecon.models.io.load_model``, a Lightning resume through the training
module's ``model.`` prefix).
"""

from __future__ import annotations

from torch import nn

from fmrecon.models.fm_denoiser import FMDenoiser
from fmrecon.models.varnet import VarNet

OLD_PREFIX = "varnet."  # where the VarNet's keys were before the subclass


def migrate_wrapped_keys(state_dict: dict, prefix: str = "") -> None:
    """Rename, in place, ``{prefix}varnet.X`` to ``{prefix}X`` (the old
    wrapped layout); a key whose new name is already present is left alone
    (and reported as unexpected by a strict load)."""
    old = prefix + OLD_PREFIX
    for key in [k for k in state_dict if k.startswith(old)]:
        new = prefix + key[len(old) :]
        if new not in state_dict:
            state_dict[new] = state_dict.pop(key)


class FMVarNet(VarNet):
    """(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W) bool) -> (B, H, W).

    ``encoder``: a :class:`fmrecon.encoders.FrozenEncoder`; ``denoiser_kwargs``
    go to every cascade's :class:`FMDenoiser` (``fuse_layers``, ``skip_layers``,
    ``chans``, ...).
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_cascades: int = 12,
        sens_chans: int = 8,
        sens_pools: int = 4,
        checkpoint_cascades: bool = False,
        **denoiser_kwargs,
    ):
        super().__init__(
            num_cascades=num_cascades,
            sens_chans=sens_chans,
            sens_pools=sens_pools,
            regularizer_factory=lambda i: FMDenoiser(encoder, **denoiser_kwargs),
            checkpoint_cascades=checkpoint_cascades,
        )
        self.encoder = encoder

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # runs before the submodules read their keys: they see the new names
        migrate_wrapped_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
