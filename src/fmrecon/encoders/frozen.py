"""The frozen ViT encoder wrapper: runs the patch embedding and the first N
transformer blocks of a transformers model and returns every block's patch
tokens. Built by :func:`fmrecon.encoders.build_encoder`."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from fmrecon.encoders.registry import prefix_tokens
from fmrecon.utils import count_parameters


def vision_tower(model: nn.Module) -> nn.Module:
    """The module holding embeddings and blocks: CLIPVisionModel / SiglipVisionModel
    wrap it as ``vision_model`` up to transformers 5.x, later releases hold it flat."""
    return getattr(model, "vision_model", model)


def transformer_blocks(model: nn.Module, family: str) -> nn.ModuleList:
    """The list of transformer blocks of a transformers vision model, whatever
    the release (CLIP / SigLIP: ``encoder.layers``; DINOv2 and ViT before 5.x:
    ``encoder.layer``; ViT in later 5.x: ``layers``; DINOv3: ``layer``, or
    ``model.layer`` in later 5.x)."""
    tower = vision_tower(model)
    if family in ("clip", "siglip"):
        return tower.encoder.layers
    if family == "dinov3":
        return tower.layer if hasattr(tower, "layer") else tower.model.layer
    if hasattr(tower, "layers"):
        return tower.layers
    return tower.encoder.layer


def _block_kwargs(block: nn.Module) -> dict[str, None]:
    """Keyword arguments a block needs besides its input: None for every
    parameter without a default (``attention_mask``, and CLIP's
    ``causal_attention_mask`` before transformers 5): no masking, all tokens
    attend to all."""
    params = list(inspect.signature(block.forward).parameters.values())[1:]
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: None for p in params if p.kind in keyword and p.default is p.empty}


class FrozenEncoder(nn.Module):
    """A frozen ViT returning the patch tokens after blocks 1..``num_layers``.

    ``forward(pixel_values (B, 3, S, S)) -> list`` of ``num_layers`` tensors
    (B, gh*gw, hidden), index 0 = block 1, the ``num_prefix_tokens`` tokens
    before the patches removed (CLS; DINOv3's CLS + register tokens; none for
    SigLIP), so every family gives the same token grid layout. S should be
    ``image_size`` (see :func:`fmrecon.encoders.prepare_images`); other sizes
    work through position-embedding interpolation but change the token grid.

    Parameters never require grad, and the module stays in eval mode whatever
    ``train()`` is asked (no dropout / drop-path), while gradients still flow to
    the input pixels. The one exception is fine-tuning
    (:func:`fmrecon.encoders.adapters.adapt_encoder`, recorded in
    ``adaptation``, None otherwise): LoRA adapters or the last blocks' own
    parameters then require grad; the module still stays in eval mode. One
    instance may be shared by many modules (e.g. the 12 cascades of the
    FM-VarNet). Only the embeddings (+ CLIP's ``pre_layrnorm``,
    DINOv3's rotary position embedding ``rope``) and the first ``num_layers``
    blocks are kept: final / post layer norms and pooling heads are not used
    when features come from intermediate blocks, so they are dropped.

    Attributes: ``name``, ``family``, ``hidden_size``, ``patch_size``,
    ``image_size`` (= S), ``grid`` (gh, gw), ``num_layers``, ``num_prefix_tokens``,
    ``weight_source``
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
        tower = vision_tower(model)
        blocks = list(transformer_blocks(model, family))
        num_layers = len(blocks) if num_layers is None else int(num_layers)
        if not 1 <= num_layers <= len(blocks):
            raise ValueError(f"num_layers {num_layers} not in 1..{len(blocks)}")
        self.embeddings = tower.embeddings
        # HF CLIP applies ``pre_layrnorm`` to the embeddings before block 1
        self.pre_norm = tower.pre_layrnorm if family == "clip" else nn.Identity()
        # DINOv3: RoPE on the patch tokens' queries and keys, computed from the input size
        self.rope = tower.rope_embeddings if family == "dinov3" else None
        if family == "dinov3":  # the mask token is for masked pre-training only
            self.embeddings.mask_token = None
        self.blocks = nn.ModuleList(blocks[:num_layers])
        self._block_kwargs = _block_kwargs(self.blocks[0])
        self.config = config
        self.name = name
        self.family = family
        self.hidden_size = int(config.hidden_size)
        self.patch_size = int(config.patch_size)
        self.image_size = int(input_size)
        g = self.image_size // self.patch_size
        self.grid = (g, g)
        self.num_layers = num_layers
        self.num_prefix_tokens = prefix_tokens(family, getattr(config, "num_register_tokens", 0))
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.weight_source = weight_source
        self.weight_path = weight_path
        self.pretrained = bool(pretrained)
        self.requires_grad_(False)
        super().train(False)
        self.adaptation: dict | None = None  # fine-tuning settings (encoders.adapters)
        # under bf16/fp16 autocast, cast the blocks' weights once per weight update
        # instead of at every call (see low_precision_weights); False: per call
        self.cast_weights_once = True
        self._low_cache = None

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Always eval, whatever the parent module asks: no dropout even when
        adapters or unfrozen blocks are trained (their LayerNorms train too:
        LayerNorm behaves the same in both modes)."""
        return super().train(False)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> tokens (B, num_prefix_tokens + gh*gw, hidden) entering block 1."""
        # like HF's ViTModel.forward: feed the patch embedding in the weights' dtype
        pixel_values = pixel_values.to(next(self.embeddings.parameters()).dtype)
        if self.family in ("dinov2", "dinov3"):
            # HF Dinov2 interpolates its 518-px position embeddings (bicubic) to the input
            # grid by itself; DINOv3 has no position embeddings (RoPE in the blocks)
            x = self.embeddings(pixel_values)
        else:
            x = self.embeddings(pixel_values, interpolate_pos_encoding=True)
        return self.pre_norm(x)

    def block_kwargs(self, pixel_values: torch.Tensor) -> dict[str, Any]:
        """What every block gets besides the tokens: no attention mask, and for
        DINOv3 the rotary (cos, sin) of the patch grid, each (gh*gw, head_dim)."""
        kwargs: dict[str, Any] = dict(self._block_kwargs)
        if self.rope is not None:
            kwargs["position_embeddings"] = self.rope(pixel_values)
        return kwargs

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) -> [block 1, ..., block num_layers] tokens, each (B, gh*gw, hidden)."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected pixel values (B, 3, S, S), got {tuple(pixel_values.shape)}")
        x = self.embed(pixel_values)
        kwargs = self.block_kwargs(pixel_values.to(x.dtype))
        low = self.low_precision_weights(x.device)
        features = []
        for i, block in enumerate(self.blocks):
            if low is None:
                out = block(x, **kwargs)
            else:
                out = torch.func.functional_call(block, low[i], (x,), kwargs, strict=False)
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
        outputs). LayerNorms keep their fp32 parameters, as under autocast.
        Weights that require grad (LoRA adapters, unfrozen blocks) are left to
        autocast: a detached copy would cut their gradient."""
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
            if not p.requires_grad
        ]
        # changes when weights are replaced, moved or updated in place (load_state_dict)
        key = (dtype, device, tuple((p.data_ptr(), p._version) for _, _, p in linears))
        cached = self._low_cache
        # a copy cast under torch.inference_mode is an inference tensor, which autograd
        # cannot save for backward: reuse it only in inference mode (an ordinary copy
        # serves both modes)
        inference = torch.is_inference_mode_enabled()
        if cached is None or cached[0] != key or (cached[2] and not inference):
            with torch.no_grad():
                per_block: list[dict] = [{} for _ in self.blocks]
                for i, name, p in linears:
                    per_block[i][name] = p.detach().to(dtype)
            self._low_cache = cached = (key, per_block, inference)
        return cached[1]

    def info(self) -> dict[str, Any]:
        """What logs and result files should record about this encoder."""
        return {
            "name": self.name,
            "family": self.family,
            "num_layers": self.num_layers,
            "image_size": self.image_size,
            "grid": list(self.grid),
            "num_prefix_tokens": self.num_prefix_tokens,
            "hidden_size": self.hidden_size,
            "weight_source": self.weight_source,
            "pretrained": self.pretrained,
            "params": count_parameters(self),
            "trainable_params": count_parameters(self, trainable_only=True),
            "adaptation": self.adaptation,
        }

    def extra_repr(self) -> str:
        from fmrecon.encoders.adapters import describe_adaptation

        return (
            f"name={self.name!r}, num_layers={self.num_layers}, image_size={self.image_size}, "
            f"weight_source={self.weight_source!r}, {describe_adaptation(self)}"
        )
