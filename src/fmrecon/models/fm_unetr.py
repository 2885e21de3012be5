"""FM-UNETR: the single-shot model of the MIDL 2025 paper (sections 2-3).

zero-filled RSS image (B, H, W)
  -> percentile scaling, 3 channels, resize, mean/std   (fmrecon.encoders.preprocess)
  -> frozen ViT-B; hidden states of several blocks (default 3, 6, 9, 12, the
     UNETR taps) concatenated along the hidden dimension -> LayerNorm -> MLP
     (4D -> D -> D) -> + learnable token positions -> (D, gh, gw) bottleneck
  -> UNETR decoder (Hatamizadeh et al. 2022, in 2-D): the same blocks' states
     upsampled by transposed convs to 2x, 4x, 8x the token grid; at each
     level transposed-conv upsampling, concatenation, residual conv block
  -> lightweight conv stem on the scaled image (three 3x3 conv + BatchNorm +
     ReLU at 16x, 8x, 4x the token grid): its outputs are *added* to the
     decoder's skip features at the same resolutions (the finest is the
     full-resolution skip)
  -> 1x1 head -> resize to H x W -> residual on the scaled zero-filled image
  -> (B, H, W) magnitude, scaled back.

Precomputed features: ``forward(masked_kspace, mask, features=None)`` takes the
tapped blocks' hidden states when a caller already has them, and a
:class:`fmrecon.perf.cache.FeatureCache` attached as ``model.feature_cache``
(``attach_feature_cache``; opt-in, ``model.feature_cache`` in a run config)
is consulted otherwise: the encoder's input is a pure function of the masked
k-space, so with fixed masks its features can be read from disk instead of
recomputed every epoch. Without a cache nothing changes. A fine-tuned encoder
(below) has no fixed features: the cache refuses it and the model never reads one.

Fine-tuning the encoder (ours; the paper keeps it frozen): ``encoder_lora_rank``
r > 0 adds LoRA adapters (``encoder_lora_alpha``, ``encoder_lora_targets``,
default the attention query and value projections) to every block up to the
deepest tap, ``encoder_unfreeze_last`` k trains the last k of them
(:func:`fmrecon.encoders.adapters.adapt_encoder`): r = 8 on query / value of
twelve ViT-B blocks adds 12 x 2 x 8 x (768 + 768) = 294,912 parameters.

Choices the paper leaves open (ours, configurable): the tapped blocks, the
MLP shape, the decoder width ``feature_size=64`` (it reproduces the paper's
20.87M trainable parameters for CLIP), the residual output, and its
zero-initialised head (``zero_init_head``): the untrained model returns the
zero-filled image exactly, whatever the encoder's features, instead of adding
a random image of up to the image's own scale (output/target norm 1.3-2.3 at
initialisation with PyTorch's default head init). The learnable
token positions (N x D) explain the paper's DINOv2 figure: 16x16 tokens at
224 px instead of 14x14 add 60 x 768 = 46k parameters, 20.87M -> 20.92M.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fmrecon.encoders.adapters import DEFAULT_TARGETS, adapt_encoder
from fmrecon.encoders.preprocess import prepare_images
from fmrecon.errors import ConfigError
from fmrecon.models.base import ReconModel
from fmrecon.models.fm_denoiser import tokens_to_map
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c
from fmrecon.utils import resize_bilinear


class ResBlock(nn.Module):
    """Two 3x3 convs with InstanceNorm and LeakyReLU and a residual
    (1x1 projection when widths differ): (B, cin, h, w) -> (B, cout, h, w)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm2d(cout, affine=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm2d(cout, affine=True)
        self.proj = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(y + self.proj(x))


class UpBlock(nn.Module):
    """UNETR decoder level: 2x transposed conv, concat skip, residual block."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False)
        self.block = ResBlock(2 * cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat((self.up(x), skip), dim=1))


class ProjUpBlock(nn.Sequential):
    """UNETR encoder branch: a (D, gh, gw) token map up ``2**ups`` times:
    a transposed conv, then (transposed conv + residual block) per further x2."""

    def __init__(self, dim: int, cout: int, ups: int):
        layers: list[nn.Module] = [nn.ConvTranspose2d(dim, cout, 2, stride=2, bias=False)]
        for _ in range(ups - 1):
            layers += [
                nn.ConvTranspose2d(cout, cout, 2, stride=2, bias=False),
                ResBlock(cout, cout),
            ]
        super().__init__(*layers)


def conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FMUNETR(ReconModel):
    """(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W)) -> (B, H, W).

    ``encoder`` (a :class:`fmrecon.encoders.FrozenEncoder` running at least
    ``max(feature_layers)`` blocks) is owned and registered here;
    ``encoder_*``: its fine-tuning (module docstring; all off by default).
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_layers: Sequence[int] = (3, 6, 9, 12),
        feature_size: int = 64,
        residual: bool = True,
        percentile: float | None = None,
        stats: str = "imagenet",
        zero_init_head: bool = True,
        encoder_lora_rank: int = 0,
        encoder_lora_alpha: float | None = None,
        encoder_lora_targets: Sequence[str] = DEFAULT_TARGETS,
        encoder_unfreeze_last: int = 0,
    ):
        super().__init__()
        if max(feature_layers) > encoder.num_layers:
            raise ValueError(
                f"FM-UNETR taps block {max(feature_layers)}, the encoder runs {encoder.num_layers}"
            )
        if len(feature_layers) != 4:
            raise ConfigError(
                "FM-UNETR: feature_layers needs four blocks (three skips and the bottleneck), "
                f"got {len(feature_layers)}"
            )
        self.encoder = encoder
        self.feature_layers = tuple(feature_layers)
        self.residual = residual
        self.percentile = percentile
        self.stats = stats
        d, fs = encoder.hidden_size, feature_size
        gh, gw = encoder.grid
        n = len(self.feature_layers)
        self.norm = nn.LayerNorm(n * d)
        self.mlp = nn.Sequential(nn.Linear(n * d, d), nn.GELU(), nn.Linear(d, d))
        self.positions = nn.Parameter(torch.zeros(1, gh * gw, d))
        nn.init.trunc_normal_(self.positions, std=0.02)
        # encoder branches of the three shallower taps: 8x, 4x, 2x the grid
        self.branches = nn.ModuleList(
            [ProjUpBlock(d, 2 * fs, 3), ProjUpBlock(d, 4 * fs, 2), ProjUpBlock(d, 8 * fs, 1)]
        )
        self.stem = nn.ModuleList(
            [conv_bn_relu(1, fs, 1), conv_bn_relu(fs, 2 * fs, 2), conv_bn_relu(2 * fs, 4 * fs, 2)]
        )
        self.decoder = nn.ModuleList(
            [
                UpBlock(d, 8 * fs),
                UpBlock(8 * fs, 4 * fs),
                UpBlock(4 * fs, 2 * fs),
                UpBlock(2 * fs, fs),
            ]
        )
        self.head = nn.Conv2d(fs, 1, 1)
        if zero_init_head and residual:  # start at the zero-filled image (module docstring)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        # optional fmrecon.perf.cache.FeatureCache (a plain attribute: never in the state dict)
        self.feature_cache = None
        # last: LoRA's random A draws come after the decoder's, so a seed gives the
        # plain model's decoder (and, B being zero, its outputs)
        adapt_encoder(
            encoder,
            lora_rank=encoder_lora_rank,
            lora_alpha=encoder_lora_alpha,
            lora_targets=encoder_lora_targets,
            unfreeze_last=encoder_unfreeze_last,
        )

    def encode(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """Encoder pixels (B, 3, S, S) -> the tapped blocks' tokens, each (B, N, D)."""
        feats = self.encoder(pixels)
        return [feats[i - 1] for i in self.feature_layers]

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        features: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``features``: optional precomputed :meth:`encode` output for these
        inputs (skips the encoder); else an attached feature cache is consulted."""
        zf = rss(ifft2c(masked_kspace), dim=1)  # (B, H, W)
        h, w = zf.shape[-2:]
        kwargs = {} if self.percentile is None else {"percentile": self.percentile}
        pixels, scale = prepare_images(zf, self.encoder, stats=self.stats, **kwargs)
        s = scale.view(-1, 1, 1, 1)
        if features is not None:
            taps = list(features)
        elif (
            self.feature_cache is not None
            and not masked_kspace.requires_grad
            and getattr(self.encoder, "adaptation", None) is None  # fine-tuned: no fixed features
        ):
            taps = self.feature_cache.features(self, masked_kspace, mask, pixels)
        else:  # no cache, or gradients wanted through the encoder to the k-space
            taps = self.encode(pixels)
        if len(taps) != len(self.feature_layers):
            raise ValueError(f"expected {len(self.feature_layers)} feature maps, got {len(taps)}")
        grid = tuple(self.encoder.grid)
        tokens = self.mlp(self.norm(torch.cat(taps, dim=-1))) + self.positions
        y = tokens_to_map(tokens, grid)
        # the stem sees the scaled image at 16x the token grid (224 px for patch 16)
        size = (16 * grid[0], 16 * grid[1])
        x = resize_bilinear(zf.unsqueeze(1) / s, size)
        stem = []
        for conv in self.stem:
            x = conv(x)
            stem.append(x)  # 16x, 8x, 4x
        skips = [
            branch(tokens_to_map(t, grid))
            for branch, t in zip(self.branches, taps[:3], strict=True)
        ]  # 8x, 4x, 2x
        skips[0] = skips[0] + stem[1]
        skips[1] = skips[1] + stem[2]
        for level, dec in enumerate(self.decoder):
            skip = (skips[2], skips[1], skips[0], stem[0])[level]
            y = dec(y, skip)
        out = resize_bilinear(self.head(y), (h, w))
        if self.residual:
            out = out + zf.unsqueeze(1) / s
        return (out * s)[:, 0]
