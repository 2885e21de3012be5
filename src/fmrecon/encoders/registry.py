"""Named frozen encoders: architecture, default weight source, input size and
normalisation statistics. Importing this module does not import transformers.

Names: ``clip-vit-b16``, ``dinov2-vit-b14``, ``biomedclip-vit-b16`` (the papers'),
``siglip-vit-b16``, ``rad-dino-vit-b14``, ``dinov3-vit-b16`` (newer ones); appending
``-tiny`` (e.g. ``clip-vit-b16-tiny``) applies the spec's test-size overrides
(:data:`TINY_OVERRIDES` of its family unless it has its own), through the same
build path as the full-size model (tests, smoke runs).

Families (the transformers classes that run an encoder): ``clip``
(CLIPVision*), ``dinov2`` (Dinov2*, also RAD-DINO), ``vit`` (ViT*, BiomedCLIP's
converted timm trunk), ``siglip`` (SiglipVision*), ``dinov3`` (DINOv3ViT*,
transformers >= 4.56).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fmrecon.errors import ConfigError

# torchvision / ImageNet statistics; the FM-VarNet paper (sec. 3.1) normalises
# with these for every encoder.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# OpenAI CLIP pre-training statistics (also in BiomedCLIP's open_clip preprocess config).
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# SigLIP: pixels scaled to [-1, 1] (preprocessor_config.json of google/siglip-base-patch16-224)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
# RAD-DINO: grey-level statistics of its chest X-ray training set, the same on the
# three channels (preprocessor_config.json of microsoft/rad-dino: image_mean 0.5307,
# image_std 0.2583, 518 x 518 crop; the model card's patch tokens are 37 x 37)
RAD_DINO_MEAN = (0.5307, 0.5307, 0.5307)
RAD_DINO_STD = (0.2583, 0.2583, 0.2583)

TINY_SUFFIX = "-tiny"

# ViT-B: hidden 768, 12 blocks, 12 heads, MLP 3072.
_VIT_B = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12)


@dataclass(frozen=True)
class EncoderSpec:
    """One named encoder.

    ``hf_config`` holds the keyword arguments of the transformers config class
    of ``family`` (CLIPVisionConfig, Dinov2Config, ViTConfig) for the full-size
    model; ``input_size`` is the side of the (S, S) images the encoder is run on
    (for DINOv2 it differs from the config's ``image_size`` = 518, the size its
    position embeddings were trained for: they are interpolated 37x37 -> 16x16).
    ``weights_file`` is None for Hugging Face format repos (config.json + weights)
    and the checkpoint file name for open_clip repos; ``hub_weights`` is the
    weights file of a Hugging Face format repo fetched on first use (the other
    format is tried when the repo lacks it); ``revision`` the branch, tag or
    commit fetched; ``gated``: the repo asks users to accept its licence first.
    ``mean``/``std`` are the model's own pre-training statistics (the papers
    use ImageNet's for all); ``tiny``: test-size overrides (None: the family's
    :data:`TINY_OVERRIDES`).
    """

    name: str
    family: str
    hf_config: dict[str, Any]
    weights_repo: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_file: str | None = None
    hub_weights: str = "model.safetensors"
    revision: str = "main"
    gated: bool = False
    tiny: dict[str, Any] | None = None
    description: str = ""

    @property
    def hidden_size(self) -> int:
        return int(self.hf_config["hidden_size"])

    @property
    def patch_size(self) -> int:
        return int(self.hf_config["patch_size"])

    @property
    def num_layers(self) -> int:
        return int(self.hf_config["num_hidden_layers"])

    @property
    def grid(self) -> tuple[int, int]:
        g = self.input_size // self.patch_size
        return (g, g)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patch tokens (CLS, registers): see :func:`prefix_tokens`."""
        return prefix_tokens(self.family, self.hf_config.get("num_register_tokens", 0))


def prefix_tokens(family: str, num_register_tokens: int = 0) -> int:
    """How many tokens precede the patch tokens in a family's hidden states:
    none for SigLIP (no CLS token; its pooling head attends over the patches),
    CLS + registers for DINOv3, CLS for the others."""
    if family == "siglip":
        return 0
    if family == "dinov3":
        return 1 + int(num_register_tokens)
    return 1


# HF Dinov2Config of facebook/dinov2-base (also RAD-DINO's architecture): layer
# scale, LN eps 1e-6, position embeddings for 518 px (37x37 patches)
_DINOV2_B14 = dict(
    **_VIT_B,
    mlp_ratio=4,
    patch_size=14,
    image_size=518,
    hidden_act="gelu",
    layer_norm_eps=1e-6,
    layerscale_value=1.0,
    qkv_bias=True,
    use_swiglu_ffn=False,
)

ENCODERS: dict[str, EncoderSpec] = {
    "clip-vit-b16": EncoderSpec(
        name="clip-vit-b16",
        family="clip",
        # HF CLIPVisionConfig of openai/clip-vit-base-patch16 (QuickGELU, LN eps 1e-5)
        hf_config=dict(
            **_VIT_B,
            intermediate_size=3072,
            patch_size=16,
            image_size=224,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            projection_dim=512,
        ),
        weights_repo="openai/clip-vit-base-patch16",
        hub_weights="pytorch_model.bin",
        input_size=224,
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        description="OpenAI CLIP ViT-B/16 image tower (Hugging Face format)",
    ),
    "dinov2-vit-b14": EncoderSpec(
        name="dinov2-vit-b14",
        family="dinov2",
        hf_config=dict(_DINOV2_B14),  # facebook/dinov2-base
        weights_repo="facebook/dinov2-base",
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        description="Meta DINOv2 ViT-B/14 (Hugging Face format), run at 224 px = 16x16 patches",
    ),
    "biomedclip-vit-b16": EncoderSpec(
        name="biomedclip-vit-b16",
        family="vit",
        # timm vit_base_patch16_224 trunk as a transformers ViTModel: qkv bias,
        # LN eps 1e-6, exact (erf) GELU
        hf_config=dict(
            **_VIT_B,
            intermediate_size=3072,
            patch_size=16,
            image_size=224,
            hidden_act="gelu",
            layer_norm_eps=1e-6,
            qkv_bias=True,
        ),
        weights_repo="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        weights_file="open_clip_pytorch_model.bin",
        input_size=224,
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        description="BiomedCLIP ViT-B/16 image trunk (open_clip checkpoint, timm layout)",
    ),
    "siglip-vit-b16": EncoderSpec(
        name="siglip-vit-b16",
        family="siglip",
        # HF SiglipVisionConfig of google/siglip-base-patch16-224: tanh GELU, LN eps 1e-6,
        # learned 14x14 position embeddings, no CLS token (the pooling head is not used)
        hf_config=dict(
            **_VIT_B,
            intermediate_size=3072,
            patch_size=16,
            image_size=224,
            hidden_act="gelu_pytorch_tanh",
            layer_norm_eps=1e-6,
        ),
        weights_repo="google/siglip-base-patch16-224",
        input_size=224,
        mean=SIGLIP_MEAN,
        std=SIGLIP_STD,
        description="Google SigLIP ViT-B/16 image tower (Hugging Face format)",
    ),
    "rad-dino-vit-b14": EncoderSpec(
        name="rad-dino-vit-b14",
        family="dinov2",
        # a Dinov2Model checkpoint (DINOv2 ViT-B/14 continued on chest X-rays), the
        # facebook/dinov2-base architecture, run at its own 518 px = 37x37 patches
        hf_config=dict(_DINOV2_B14),
        weights_repo="microsoft/rad-dino",
        input_size=518,
        mean=RAD_DINO_MEAN,
        std=RAD_DINO_STD,
        tiny=dict(
            hidden_size=32,
            num_hidden_layers=6,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=56,
            patch_size=14,
        ),  # fmt: skip
        description="Microsoft RAD-DINO ViT-B/14, chest X-ray DINOv2 (Hugging Face format), 518 px",
    ),
    "dinov3-vit-b16": EncoderSpec(
        name="dinov3-vit-b16",
        family="dinov3",
        # HF DINOv3ViTConfig of facebook/dinov3-vitb16-pretrain-lvd1689m: CLS + 4 register
        # tokens, 2-D RoPE (theta 100) instead of position embeddings, layer scale,
        # no key bias, LN eps 1e-5; its image processor: 224 x 224, ImageNet mean/std
        hf_config=dict(
            **_VIT_B,
            intermediate_size=3072,
            patch_size=16,
            image_size=224,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            layerscale_value=1.0,
            num_register_tokens=4,
            rope_theta=100.0,
            query_bias=True,
            key_bias=False,
            value_bias=True,
            proj_bias=True,
            mlp_bias=True,
            use_gated_mlp=False,
        ),
        weights_repo="facebook/dinov3-vitb16-pretrain-lvd1689m",
        gated=True,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        description="Meta DINOv3 ViT-B/16 (Hugging Face format; gated: accept the licence first)",
    ),
}

# Test-size variants (hidden 32, 6 blocks, 2 heads, MLP 64). ``input_size`` is
# not a transformers key: it sets the encoder's input side. The DINOv2 variant
# keeps the full model's mismatch between position-embedding grid (84/14 = 6x6)
# and input grid (56/14 = 4x4), so interpolation is exercised.
_TINY = dict(hidden_size=32, num_hidden_layers=6, num_attention_heads=2, intermediate_size=64)
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "clip": dict(_TINY, image_size=32, patch_size=8),
    "dinov2": dict(_TINY, image_size=84, patch_size=14, input_size=56),
    "vit": dict(_TINY, image_size=32, patch_size=8),
    "siglip": dict(_TINY, image_size=32, patch_size=8),
    "dinov3": dict(_TINY, image_size=32, patch_size=8),
}


def available_encoders() -> list[str]:
    """Registered names (each also accepts the ``-tiny`` suffix)."""
    return list(ENCODERS)


def get_spec(name: str) -> tuple[EncoderSpec, dict[str, Any]]:
    """Spec of ``name`` and the config overrides its suffix implies
    (``-tiny``: the family's :data:`TINY_OVERRIDES`, otherwise none)."""
    base, tiny = (name[: -len(TINY_SUFFIX)], True) if name.endswith(TINY_SUFFIX) else (name, False)
    if base not in ENCODERS:
        raise ConfigError(
            f"unknown encoder '{name}' (available: {', '.join(ENCODERS)}; "
            f"append '{TINY_SUFFIX}' for the test-size variants)"
        )
    spec = ENCODERS[base]
    if not tiny:
        return spec, {}
    return spec, dict(TINY_OVERRIDES[spec.family] if spec.tiny is None else spec.tiny)


# per family: the transformers config and model classes (names looked up on use)
_CLASSES = {
    "clip": ("CLIPVisionConfig", "CLIPVisionModel"),
    "dinov2": ("Dinov2Config", "Dinov2Model"),
    "vit": ("ViTConfig", "ViTModel"),
    "siglip": ("SiglipVisionConfig", "SiglipVisionModel"),
    "dinov3": ("DINOv3ViTConfig", "DINOv3ViTModel"),
}


def _transformers_class(family: str, which: int):
    import transformers

    name = _CLASSES[family][which]
    cls = getattr(transformers, name, None)
    if cls is None:  # DINOv3 arrived in transformers 4.56
        raise ConfigError(
            f"encoder family '{family}' needs transformers.{name}, which transformers "
            f"{transformers.__version__} lacks: pip install -U transformers"
        )
    return cls


def config_class(family: str):
    """The transformers config class of an encoder family (imports transformers)."""
    return _transformers_class(family, 0)


def model_class(family: str):
    """The transformers model class whose embeddings and blocks the encoder uses."""
    return _transformers_class(family, 1)


# config.json ``model_type`` values each family accepts (a full CLIPModel / SiglipModel
# directory is "clip" / "siglip": its vision tower is taken)
MODEL_TYPES = {
    "clip": ("clip", "clip_vision_model"),
    "dinov2": ("dinov2",),
    "vit": ("vit",),
    "siglip": ("siglip", "siglip_vision_model"),
    "dinov3": ("dinov3_vit",),
}


def apply_overrides(config, family: str, overrides: dict[str, Any] | None, where: str) -> None:
    """Set ``overrides`` on a transformers ``config`` in place, refusing keys the
    config class does not know (a typo must not pass silently). For DINOv2,
    ``intermediate_size`` is turned into its ``mlp_ratio``. ``input_size`` must
    have been removed by the caller."""
    if not overrides:
        return
    ov = dict(overrides)
    known = set(type(config)().to_dict()) | set(vars(config))
    if family == "dinov2" and "intermediate_size" in ov:
        hidden = int(ov.get("hidden_size", config.hidden_size))
        inter = int(ov.pop("intermediate_size"))
        if inter % hidden:  # Dinov2Config.mlp_ratio is an int
            raise ConfigError(
                f"{where}: intermediate_size {inter} is not a multiple of hidden_size {hidden}"
            )
        ov["mlp_ratio"] = inter // hidden
    bad = sorted(k for k in ov if k not in known)
    if bad:
        raise ConfigError(f"{where}: unknown encoder config key(s) {', '.join(bad)}")
    for key, value in ov.items():
        try:
            setattr(config, key, value)
        except Exception as err:  # transformers 5 configs validate field types
            raise ConfigError(f"{where}: bad value {value!r} for {key} ({err})") from None


def make_config(spec: EncoderSpec, overrides: dict[str, Any] | None = None):
    """Transformers config of ``spec`` with ``overrides`` applied (no weights)."""
    ov = dict(overrides or {})
    ov.pop("input_size", None)
    config = config_class(spec.family)(**spec.hf_config)
    apply_overrides(config, spec.family, ov, f"encoder '{spec.name}'")
    return config


def resolve_input_size(spec: EncoderSpec, config, overrides: dict[str, Any] | None) -> int:
    """Encoder input side S: ``overrides['input_size']`` if given; the spec's
    input size when the config has the full model's ``image_size``; otherwise
    the config's own ``image_size`` (a non-standard model runs at its native size)."""
    ov = overrides or {}
    if ov.get("input_size") is not None:
        size = int(ov["input_size"])
    elif int(config.image_size) == int(spec.hf_config["image_size"]):
        size = spec.input_size
    else:
        size = int(config.image_size)
    if size <= 0 or size % int(config.patch_size):
        raise ConfigError(
            f"encoder '{spec.name}': input size {size} is not a positive multiple of "
            f"the patch size {config.patch_size}"
        )
    return size
