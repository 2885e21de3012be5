"""Frozen vision foundation-model encoders (CLIP ViT-B/16, DINOv2 ViT-B/14,
BiomedCLIP ViT-B/16) used as priors, loaded offline from local weights.

- :mod:`registry`: names -> architecture, weight source, input size, stats
- :mod:`loaders`: :func:`build_encoder` (HF dirs / hub cache / open_clip files)
- :mod:`frozen`: :class:`FrozenEncoder`, per-block patch tokens, always frozen
- :mod:`preprocess`: :func:`prepare_images` (magnitude, percentile, 3ch, resize, mean/std)

Importing this package does not import transformers (only building does).
"""

from __future__ import annotations

from fmrecon.encoders.frozen import FrozenEncoder
from fmrecon.encoders.loaders import (
    ALLOW_DOWNLOAD_ENV,
    EncoderWeightsError,
    build_encoder,
    hf_hub_cache,
    read_state_dict,
    timm_vit_to_hf,
)
from fmrecon.encoders.preprocess import DEFAULT_PERCENTILE, prepare_images
from fmrecon.encoders.registry import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    TINY_OVERRIDES,
    EncoderSpec,
    available_encoders,
    get_spec,
    make_config,
    model_class,
)

__all__ = [
    "ALLOW_DOWNLOAD_ENV",
    "DEFAULT_PERCENTILE",
    "ENCODERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "TINY_OVERRIDES",
    "EncoderSpec",
    "EncoderWeightsError",
    "FrozenEncoder",
    "available_encoders",
    "build_encoder",
    "get_spec",
    "hf_hub_cache",
    "make_config",
    "model_class",
    "prepare_images",
    "read_state_dict",
    "timm_vit_to_hf",
]
