"""Frozen vision foundation-model encoders used as priors: the papers' CLIP
ViT-B/16, DINOv2 ViT-B/14 and BiomedCLIP ViT-B/16, and SigLIP ViT-B/16,
RAD-DINO ViT-B/14 and DINOv3 ViT-B/16, built with transformers.

- :mod:`registry`: names -> architecture, weight source, input size, stats
- :mod:`hub`: the Hugging Face cache, fetching on first use, HF_HUB_OFFLINE
- :mod:`loaders`: :func:`build_encoder` (hub cache / HF dirs / open_clip files)
- :mod:`openclip`: BiomedCLIP's open_clip (timm) trunk -> transformers ViT names
- :mod:`frozen`: :class:`FrozenEncoder`, per-block patch tokens, always frozen
- :mod:`preprocess`: :func:`prepare_images` (magnitude, percentile, 3ch, resize, mean/std)

Importing this package does not import transformers (only building does).
"""

from __future__ import annotations

from fmrecon.encoders.frozen import FrozenEncoder
from fmrecon.encoders.hub import (
    OFFLINE_VARS,
    EncoderWeightsError,
    download_command,
    hf_hub_cache,
    offline_setting,
)
from fmrecon.encoders.loaders import build_encoder
from fmrecon.encoders.openclip import read_state_dict, timm_vit_to_hf
from fmrecon.encoders.preprocess import DEFAULT_PERCENTILE, prepare_images
from fmrecon.encoders.registry import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    RAD_DINO_MEAN,
    RAD_DINO_STD,
    SIGLIP_MEAN,
    SIGLIP_STD,
    TINY_OVERRIDES,
    EncoderSpec,
    available_encoders,
    get_spec,
    make_config,
    model_class,
)

__all__ = [
    "DEFAULT_PERCENTILE",
    "ENCODERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OFFLINE_VARS",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "RAD_DINO_MEAN",
    "RAD_DINO_STD",
    "SIGLIP_MEAN",
    "SIGLIP_STD",
    "TINY_OVERRIDES",
    "EncoderSpec",
    "EncoderWeightsError",
    "FrozenEncoder",
    "available_encoders",
    "build_encoder",
    "download_command",
    "get_spec",
    "hf_hub_cache",
    "make_config",
    "model_class",
    "offline_setting",
    "prepare_images",
    "read_state_dict",
    "timm_vit_to_hf",
]
