"""The foundation-model denoiser of the FM-VarNet (arXiv 2026, section 3.1).

complex image (B, 1, H, W)
  -> magnitude, percentile scaling, 3 channels, resize to the encoder size,
     ImageNet mean/std                      (fmrecon.encoders.preprocess)
  -> frozen ViT, first six blocks            (shared by all cascades; optionally
                                             fine-tuned: LoRA / last blocks, fm_varnet)
  -> fusion: LayerNorm per layer, softmax-normalised learnable weights
  -> fused tokens reshaped to a (D, gh, gw) map, 1x1 projection
  -> UNETR-style decoder: per stage bilinear x2 upsampling, depthwise-separable
     conv (3x3 depthwise + 1x1 pointwise) + InstanceNorm + ReLU, concat with a
     skip from encoder layer 5 / 4 / 3 (reshaped, bilinear-resized, 1x1 conv;
     run as conv then resize, the same function at a fraction of the cost),
     3x3 conv + InstanceNorm + ReLU
  -> final stage at the original size H x W with the input-level skip (the
     complex image through a shallow conv), 1x1 head -> 2 channels (re, im)
  -> complex image (B, 1, H, W), scaled back.

Choices the paper leaves open (ours, configurable): the decoder widths
``(512, 376, 192, 96, 48)`` (bottleneck, three stages, final stage) reproduce
the paper's ~56M trainable parameters for 12 cascades; the final stage runs
at the input's own size (the image is never resampled on the skip path), so
the head's output needs no resize; the output is the regularizer term
itself, as E2E-VarNet's (the cascade subtracts it from the k-space).

Initialisation (ours; the paper does not say): the head's weights and bias
start at zero (``zero_init_head=True``), so every cascade starts as pure data
consistency and the untrained FM-VarNet returns the zero-filled image. With
PyTorch's default initialisation the head emits an image of the input's own
magnitude (InstanceNorm + ReLU features of unit scale, times the percentile
scale), each cascade subtracts it and passes a larger image to the next, and
twelve cascades grow the output ~600-fold: the SSIM loss saturates at 1 and the
paper-size model never trains. A zero head makes this independent of the
encoder's features (pretrained or random): the term is exactly 0 whatever the
fused tokens are. The rest of the decoder still learns from the first step on:
the head's gradient is non-zero (its input features are), and once the head
moves, the gradients reach the decoder, the fusion and the input skip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fmrecon.encoders.preprocess import prepare_images
from fmrecon.errors import ConfigError
from fmrecon.utils import resize_bilinear


def _norm_act(chans: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(chans), nn.ReLU(inplace=True)]


class SeparableConvBlock(nn.Sequential):
    """3x3 depthwise + 1x1 pointwise conv, InstanceNorm, ReLU: (B, cin, h, w) -> (B, cout, h, w)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin),
            nn.Conv2d(cin, cout, 1),
            *_norm_act(cout),
        )


class ConvBlock(nn.Sequential):
    """3x3 conv, InstanceNorm, ReLU: (B, cin, h, w) -> (B, cout, h, w)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), *_norm_act(cout))


class LayerFusion(nn.Module):
    """Fuse hidden states of several blocks: LayerNorm each, then a convex
    combination with softmax-normalised learnable weights (init: uniform).
    list of L x (B, N, D) -> (B, N, D)."""

    def __init__(self, num_layers: int, dim: int):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_layers))
        self.logits = nn.Parameter(torch.zeros(num_layers))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        w = torch.softmax(self.logits, dim=0)
        return sum(
            w[i] * norm(f) for i, (norm, f) in enumerate(zip(self.norms, feats, strict=True))
        )


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, gh*gw, D) patch tokens -> (B, D, gh, gw) feature map."""
    b, n, d = tokens.shape
    return tokens.transpose(1, 2).reshape(b, d, *grid)


class FMDenoiser(nn.Module):
    """Regularizer of one cascade: complex (B, 1, H, W) -> complex (B, 1, H, W).

    ``encoder`` is a :class:`fmrecon.encoders.FrozenEncoder`; it is held by
    reference, not registered as a submodule, so that twelve cascades share
    one copy (the owning model registers it once, and adapts it when it is
    fine-tuned: the cascades then share its adapters too).
    """

    def __init__(
        self,
        encoder: nn.Module,
        fuse_layers: int = 6,
        skip_layers: Sequence[int] = (5, 4, 3),
        chans: Sequence[int] = (512, 376, 192, 96, 48),
        input_skip_chans: int | None = None,
        percentile: float | None = None,
        stats: str = "imagenet",
        zero_init_head: bool = True,
    ):
        super().__init__()
        if fuse_layers > encoder.num_layers or max(skip_layers) > encoder.num_layers:
            raise ValueError(
                f"the denoiser uses encoder layers up to {max(fuse_layers, *skip_layers)}, "
                f"the encoder runs {encoder.num_layers}"
            )
        if len(chans) != len(skip_layers) + 2:
            raise ConfigError(
                f"FM-VarNet denoiser: chans needs {len(skip_layers) + 2} widths "
                f"(bottleneck, one per skip layer, final stage), got {len(chans)}"
            )
        object.__setattr__(self, "_encoder", encoder)  # shared, not a submodule
        self.fuse_layers = fuse_layers
        self.skip_layers = tuple(skip_layers)
        self.percentile = percentile
        self.stats = stats
        dim = encoder.hidden_size
        self.fusion = LayerFusion(fuse_layers, dim)
        self.bottleneck = nn.Conv2d(dim, chans[0], 1)
        self.skips = nn.ModuleList(nn.Conv2d(dim, c, 1) for c in chans[1:-1])
        self.ups = nn.ModuleList(
            SeparableConvBlock(cin, cout) for cin, cout in zip(chans[:-1], chans[1:], strict=False)
        )
        self.merges = nn.ModuleList(ConvBlock(2 * c, c) for c in chans[1:])
        skip_c = input_skip_chans or chans[-1]
        self.input_skip = nn.Sequential(nn.Conv2d(2, skip_c, 3, padding=1), nn.ReLU(inplace=True))
        if skip_c != chans[-1]:
            self.merges[-1] = ConvBlock(chans[-1] + skip_c, chans[-1])
        self.head = nn.Conv2d(chans[-1], 2, 1)
        if zero_init_head:  # start at data consistency (see the module docstring)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def encoder(self) -> nn.Module:
        return self._encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image[:, 0]  # (B, H, W) complex
        h, w = x.shape[-2:]
        kwargs = {} if self.percentile is None else {"percentile": self.percentile}
        pixels, scale = prepare_images(x, self.encoder, stats=self.stats, **kwargs)
        feats = self.encoder(pixels)  # block 1..L, each (B, N, D)
        grid = tuple(self.encoder.grid)
        y = self.bottleneck(tokens_to_map(self.fusion(feats[: self.fuse_layers]), grid))
        # the input-level skip sees the image at its own size, scaled like the encoder input
        s = scale.view(-1, 1, 1)
        # (B, 2, H, W) from the real view (inductor has no code for complex tensors)
        x_in = torch.view_as_real(x).movedim(-1, 1) / s.unsqueeze(1)
        for i, (up, merge) in enumerate(zip(self.ups, self.merges, strict=True)):
            if i < len(self.skip_layers):
                y = up(resize_bilinear(y, (2 * y.shape[-2], 2 * y.shape[-1])))
                z = self.skips[i](tokens_to_map(feats[self.skip_layers[i] - 1], grid))
                # = skips[i](interpolate(token map)) up to rounding: a 1x1 conv and a
                # bilinear resize commute, bias included (each output pixel is a convex
                # combination of input pixels, its weights sum to 1). The projection runs
                # on the gh x gw map and only its c channels are resized, not the D = 768.
                z = resize_bilinear(z, y.shape[-2:])
                y = merge(torch.cat((y, z), dim=1))
            else:  # final stage at the original size, with the input-level skip
                y = up(resize_bilinear(y, (h, w)))
                y = merge(torch.cat((y, self.input_skip(x_in)), dim=1))
        out = self.head(y) * s.unsqueeze(1)
        return torch.view_as_complex(out.movedim(1, -1).contiguous()).unsqueeze(1)
