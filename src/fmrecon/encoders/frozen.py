"""The frozen ViT encoder wrapper: runs the patch embedding and the first N
transformer blocks of a transformers model and returns every block's patch
tokens. Built by :func:`fmrecon.encoders.build_encoder`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fmrecon.utils import count_parameters


def transformer_blocks(model: nn.Module, family: str) -> nn.ModuleList:
    """The list of transformer blocks of a transformers vision model
    (CLIPVisionModel: ``encoder.layers``; Dinov2Model: ``encoder.layer``;
    ViTModel: ``layers`` in transformers 5, ``encoder.layer`` before)."""
    if family == "clip":
        return model.encoder.layers
    if family == "dinov2":
        return model.encoder.layer
    if hasattr(model, "layers"):
        return model.layers
    return model.encoder.layer


class FrozenEncoder(nn.Module):
    """A frozen ViT returning the patch tokens after blocks 1..``num_layers``.

    ``forward(pixel_values (B, 3, S, S)) -> list`` of ``num_layers`` tensors
    (B, gh*gw, hidden), index 0 = block 1, CLS token removed. S should be
    ``image_size`` (see :func:`fmrecon.encoders.prepare_images`); other sizes
    work through position-embedding interpolation but change the token grid.

    Parameters never require grad, and the module stays in eval mode whatever
    ``train()`` is asked (no dropout / drop-path), while gradients still flow to
    the input pixels. One instance may be shared by many modules (e.g. the 12
    cascades of the FM-VarNet). Only the embeddings (+ CLIP's ``pre_layrnorm``)
    and the first ``num_layers`` blocks are kept: final / post layer norms are
    not used when features come from intermediate blocks, so they are dropped.

    Attributes: ``name``, ``family``, ``hidden_size``, ``patch_size``,
    ``image_size`` (= S), ``grid`` (gh, gw), ``num_layers``, ``weight_source``
    ("hf:<repo>", "dir:<path>", "open_clip:<file>", "random-init"),
    ``weight_path`` (resolved file/dir or None), ``pretrained``, ``mean``/``std``
    (the model's own pre-training statistics, tuples), ``config`` (transformers).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        family: str,
        input_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        weight_source: str,
        pretrained: bool,
        weight_path: str | None = None,
        num_layers: int | None = None,
    ):
        super().__init__()
        config = model.config
        blocks = list(transformer_blocks(model, family))
        num_layers = len(blocks) if num_layers is None else int(num_layers)
        if not 1 <= num_layers <= len(blocks):
            raise ValueError(f"num_layers {num_layers} not in 1..{len(blocks)}")
        self.embeddings = model.embeddings
        # HF CLIP applies ``pre_layrnorm`` to the embeddings before block 1
        self.pre_norm = model.pre_layrnorm if family == "clip" else nn.Identity()
        self.blocks = nn.ModuleList(blocks[:num_layers])
        self.config = config
        self.name = name
        self.family = family
        self.hidden_size = int(config.hidden_size)
        self.patch_size = int(config.patch_size)
        self.image_size = int(input_size)
        g = self.image_size // self.patch_size
        self.grid = (g, g)
        self.num_layers = num_layers
        self.num_prefix_tokens = 1  # CLS (no register tokens in these models)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.weight_source = weight_source
        self.weight_path = weight_path
        self.pretrained = bool(pretrained)
        self.requires_grad_(False)
        super().train(False)
        # under bf16/fp16 autocast, cast the blocks' weights once per weight update
        # instead of at every call (see low_precision_weights); False: per call
        self.cast_weights_once = True
        self._low_cache = None

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Always eval: the encoder is frozen, whatever the parent module asks."""
        return super().train(False)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> tokens (B, 1 + gh*gw, hidden) entering block 1."""
        # like HF's ViTModel.forward: feed the patch embedding in the weights' dtype
        pixel_values = pixel_values.to(next(self.embeddings.parameters()).dtype)
        if self.family == "dinov2":
            # HF Dinov2 interpolates its 518-px position embeddings (bicubic) to the input grid
            x = self.embeddings(pixel_values)
        else:
            x = self.embeddings(pixel_values, interpolate_pos_encoding=True)
        return self.pre_norm(x)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) -> [block 1, ..., block num_layers] tokens, each (B, gh*gw, hidden)."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected pixel values (B, 3, S, S), got {tuple(pixel_values.shape)}")
        x = self.embed(pixel_values)
        low = self.low_precision_weights(x.device)
        features = []
        for i, block in enumerate(self.blocks):
            if low is None:
                out = block(x, None)  # no attention mask: all tokens attend to all
            else:
                out = torch.func.functional_call(block, low[i], (x, None), strict=False)
            x = out[0] if isinstance(out, tuple) else out
            features.append(x[:, self.num_prefix_tokens :])
        return features

    def low_precision_weights(self, device: torch.device) -> list[dict] | None:
        """Under bf16/fp16 autocast: the blocks' Linear weights cast once, or None.

        Autocast caches its casts only for leaf tensors that require grad, so the
        frozen weights would be cast anew at every call: twelve cascades made
        twelve bf16 copies of the encoder (~86 MB each for six ViT-B blocks)
        per step, all kept for the backward pass. Cast once instead and reuse the
        copy while the fp32 weights are unchanged (the same rounding, so the same
        outputs). LayerNorms keep their fp32 parameters, as under autocast."""
        on = (
            self.cast_weights_once
            and torch.amp.is_autocast_available(device.type)  # not on the meta device
            and torch.is_autocast_enabled(device.type)
        )
        dtype = torch.get_autocast_dtype(device.type) if on else None
        if dtype not in (torch.bfloat16, torch.float16):
            self._low_cache = None  # full precision again: free the copy
            return None
        linears = [
            (i, f"{name}.{pname}", p)
            for i, block in enumerate(self.blocks)
            for name, mod in block.named_modules()
            if isinstance(mod, nn.Linear)
            for pname, p in mod.named_parameters(recurse=False)
        ]
        # changes when weights are replaced, moved or updated in place (load_state_dict)
        key = (dtype, device, tuple((p.data_ptr(), p._version) for _, _, p in linears))
        cached = self._low_cache
        if cached is None or cached[0] != key:
            with torch.no_grad():
                per_block: list[dict] = [{} for _ in self.blocks]
                for i, name, p in linears:
                    per_block[i][name] = p.detach().to(dtype)
            self._low_cache = cached = (key, per_block)
        return cached[1]

    def info(self) -> dict[str, Any]:
        """What logs and result files should record about this encoder."""
        return {
            "name": self.name,
            "family": self.family,
            "num_layers": self.num_layers,
            "image_size": self.image_size,
            "grid": list(self.grid),
            "hidden_size": self.hidden_size,
            "weight_source": self.weight_source,
            "pretrained": self.pretrained,
            "params": count_parameters(self),
        }

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, num_layers={self.num_layers}, image_size={self.image_size}, "
            f"weight_source={self.weight_source!r}"
        )
