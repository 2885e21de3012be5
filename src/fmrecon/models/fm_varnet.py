"""FM-VarNet (arXiv 2026, section 3.2): E2E-VarNet whose every cascade's
regularizer is the foundation-model denoiser (``fm_denoiser.FMDenoiser``).

A :class:`fmrecon.models.varnet.VarNet` (same cascades, learned sensitivity
model and RSS output; state-dict keys ``sens_net.*``, ``cascades.N.*``); the
frozen encoder is registered once, as ``encoder`` (keys ``encoder.*``), and
shared by all cascades (twelve cascades, one copy of its weights).

Fine-tuning the encoder (ours; the paper keeps it frozen): ``encoder_lora_rank``
r > 0 adds LoRA adapters (``encoder_lora_alpha``, ``encoder_lora_targets``,
default the attention query and value projections) to every block the model
uses, ``encoder_unfreeze_last`` k trains the last k of them
(:func:`fmrecon.encoders.adapters.adapt_encoder`). The encoder is still the
one instance all cascades call, so the adapter is shared too: r = 8 on
query / value of six ViT-B blocks adds 6 x 2 x 8 x (768 + 768) = 147,456
trainable parameters, whatever the number of cascades.

Checkpoints written before FMVarNet was a VarNet subclass hold the VarNet
under ``varnet.`` (``varnet.cascades.N.*``); :meth:`FMVarNet._load_from_state_dict`
maps them to today's keys whatever loads them (``load_state_dict``,
``fmrecon.models.io.load_model``, a Lightning resume through the training
module's ``model.`` prefix).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from fmrecon.encoders.adapters import DEFAULT_TARGETS, adapt_encoder
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
    ``chans``, ...); ``encoder_*``: fine-tuning of the shared encoder (module
    docstring; all off by default).
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_cascades: int = 12,
        sens_chans: int = 8,
        sens_pools: int = 4,
        checkpoint_cascades: bool = False,
        encoder_lora_rank: int = 0,
        encoder_lora_alpha: float | None = None,
        encoder_lora_targets: Sequence[str] = DEFAULT_TARGETS,
        encoder_unfreeze_last: int = 0,
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
        # last: LoRA's random A draws come after the cascades', so a seed gives the
        # plain model's cascades (and, B being zero, its outputs)
        adapt_encoder(
            encoder,
            lora_rank=encoder_lora_rank,
            lora_alpha=encoder_lora_alpha,
            lora_targets=encoder_lora_targets,
            unfreeze_last=encoder_unfreeze_last,
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # runs before the submodules read their keys: they see the new names
        migrate_wrapped_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def compile_regions(self) -> list[tuple[str, nn.Module]]:
        """The sensitivity network and each cascade's denoiser (encoder and
        decoder); the denoisers share their code, so dynamo compiles one graph
        for all cascades. Not the whole cascade (VarNet's regions): its k-space
        input differs between cascade 0 (the measured k-space: no gradient, not
        an inference tensor) and the rest, which made dynamo compile every
        cascade graph twice, in inference and in training. The denoiser's input
        is computed inside the model in every cascade; the data consistency and
        SENSE steps around it (~3% of FM-VarNet's time) run eagerly."""
        return [("sens_net", self.sens_net)] + [
            (f"cascades.{i}.model", c.model) for i, c in enumerate(self.cascades)
        ]
