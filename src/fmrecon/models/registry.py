"""Named model configurations: ``create_model(name)`` is the one entry point.

Every model built here has the same call signature,
``model(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W) bool) -> (B, H, W)``,
and carries ``model.fmrecon_spec`` (name, overrides, encoder weight source)
so checkpoints can rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from fmrecon.errors import ConfigError
from fmrecon.utils import count_parameters


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # zero-filled | unet | e2e-varnet | fm-varnet | fm-unetr
    description: str
    encoder: str | None = None  # fmrecon.encoders registry name
    # blocks of the encoder the model uses, from its constructor arguments:
    # only those are built and run
    encoder_layers: Callable[[dict], int] | None = None
    defaults: dict = field(default_factory=dict)
    paper_trainable: float | None = None  # trainable parameters reported by the paper (M)
    paper: str = ""


def _spec(name, family, description, **kw) -> tuple[str, ModelSpec]:
    return name, ModelSpec(name, family, description, **kw)


_FM = {"clip": "clip-vit-b16", "dinov2": "dinov2-vit-b14", "biomedclip": "biomedclip-vit-b16"}
_MIDL = {"clip": 20.87, "dinov2": 20.92, "biomedclip": 20.87}
_NAMES = {"clip": "CLIP ViT-B/16", "dinov2": "DINOv2 ViT-B/14", "biomedclip": "BiomedCLIP ViT-B/16"}

MODELS: dict[str, ModelSpec] = dict(
    [
        _spec("zero-filled", "zero-filled", "inverse FFT of the masked k-space, RSS over coils"),
        _spec(
            "unet",
            "unet",
            "image-domain U-Net (fastMRI, 64 chans, 4 pools) on the zero-filled RSS image",
            defaults={"chans": 64, "num_pools": 4},
            paper_trainable=31.04,
            paper="MIDL 2025 Table 1",
        ),
        _spec(
            "e2e-varnet",
            "e2e-varnet",
            "E2E-VarNet: 12 cascades, U-Net 18 chans / 4 pools, sensitivity net 8 / 4",
            defaults={
                "num_cascades": 12,
                "chans": 18,
                "pools": 4,
                "sens_chans": 8,
                "sens_pools": 4,
            },
            paper_trainable=29.9,
            paper="arXiv 2026 Table 1",
        ),
    ]
    + [
        _spec(
            f"fm-varnet-{key}",
            "fm-varnet",
            f"FM-VarNet (CMR-{_NAMES[key].split()[0]}): 12 cascades, frozen {_NAMES[key]} "
            "(first 6 blocks, shared) + UNETR-style decoder per cascade",
            encoder=enc,
            encoder_layers=lambda kw: max(kw["fuse_layers"], *kw["skip_layers"]),
            defaults={
                "num_cascades": 12,
                "sens_chans": 8,
                "sens_pools": 4,
                "fuse_layers": 6,
                "skip_layers": (5, 4, 3),
            },
            paper_trainable=56.0,
            paper="arXiv 2026 Table 1",
        )
        for key, enc in _FM.items()
    ]
    + [
        _spec(
            f"fm-unetr-{key}",
            "fm-unetr",
            f"FM-UNETR: frozen {_NAMES[key]}, multi-level features + MLP, conv stem, UNETR decoder",
            encoder=enc,
            encoder_layers=lambda kw: max(kw["feature_layers"]),
            defaults={"feature_layers": (3, 6, 9, 12), "feature_size": 64},
            paper_trainable=_MIDL[key],
            paper="MIDL 2025 Table 1",
        )
        for key, enc in _FM.items()
    ]
)


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}' (available: {', '.join(MODELS)})")
    return MODELS[name]


def _build_encoder(spec: ModelSpec, kwargs, encoder_weights, allow_random: bool, encoder_config):
    from fmrecon.encoders import build_encoder

    try:
        layers = spec.encoder_layers(kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model '{spec.name}': bad encoder layer options ({err})") from None
    return build_encoder(
        spec.encoder,
        num_layers=layers,
        weights=encoder_weights,
        allow_random=allow_random,
        config_overrides=encoder_config,
    )


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def _builder(family: str):
    def register(fn):
        _BUILDERS[family] = fn
        return fn

    return register


@_builder("zero-filled")
def _zero_filled(spec, encoder, **kw):
    from fmrecon.models.zero_filled import ZeroFilled

    return ZeroFilled(**kw)


@_builder("unet")
def _unet(spec, encoder, **kw):
    from fmrecon.models.unet import UNetRecon

    return UNetRecon(**kw)


@_builder("e2e-varnet")
def _varnet(spec, encoder, **kw):
    from fmrecon.models.varnet import VarNet

    return VarNet(**kw)


@_builder("fm-varnet")
def _fm_varnet(spec, encoder, **kw):
    from fmrecon.models.fm_varnet import FMVarNet

    return FMVarNet(encoder, **kw)


@_builder("fm-unetr")
def _fm_unetr(spec, encoder, **kw):
    from fmrecon.models.fm_unetr import FMUNETR

    return FMUNETR(encoder, **kw)


def create_model(
    name: str,
    *,
    encoder_weights: str | None = "default",
    allow_random_encoder: bool = False,
    encoder_config: dict | None = None,
    **overrides,
) -> nn.Module:
    """Build the named model. ``overrides`` change the constructor arguments
    (e.g. ``num_cascades=4``); ``encoder_weights`` is a path, a Hugging Face
    id, ``"default"`` (the registry's source through the local cache) or
    ``"random"`` (only with ``allow_random_encoder``); ``encoder_config``
    overrides the encoder architecture (tiny encoders for tests)."""
    spec = get_spec(name)
    if spec.encoder is None and (encoder_config or encoder_weights not in ("default", None)):
        raise ConfigError(f"model '{name}' has no foundation-model encoder")
    kwargs = {**spec.defaults, **overrides}
    encoder = None
    if spec.encoder is not None:
        encoder = _build_encoder(
            spec, kwargs, encoder_weights, allow_random_encoder, encoder_config
        )
    try:
        model = _BUILDERS[spec.family](spec, encoder, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model '{name}': bad option ({err})") from None
    model.fmrecon_spec = {
        "name": name,
        "overrides": {k: v for k, v in overrides.items()},
        "encoder_config": dict(encoder_config or {}),
        "encoder_weights": getattr(encoder, "weight_source", None),
        "encoder_pretrained": getattr(encoder, "pretrained", None),
    }
    return model


def describe(name: str, **overrides) -> dict:
    """Parameter counts of the named model at full size, built on the meta
    device (no memory, no weights needed)."""
    spec = get_spec(name)
    with torch.device("meta"):
        model = create_model(
            name,
            encoder_weights="random" if spec.encoder else "default",
            allow_random_encoder=True,
            **overrides,
        )
    return {
        "name": name,
        "family": spec.family,
        "encoder": spec.encoder,
        "description": spec.description,
        "total_params": count_parameters(model),
        "trainable_params": count_parameters(model, trainable_only=True),
        "paper_trainable_params": (
            int(round(spec.paper_trainable * 1e6)) if spec.paper_trainable else None
        ),
        "paper": spec.paper,
    }
