"""Named model configurations: ``create_model(name)`` is the one entry point.

Every model built here is a :class:`fmrecon.models.base.ReconModel`, called as
``model(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W) bool) -> (B, H, W)``,
and carries ``model.record`` (a :class:`fmrecon.models.base.BuildRecord`: name,
overrides, encoder weight source) so checkpoints can rebuild it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from fmrecon.errors import ConfigError
from fmrecon.models.base import BuildRecord, ReconModel
from fmrecon.models.classical import EspiritRecon, L1WaveletRecon, SenseRecon
from fmrecon.models.fm_denoiser import FMDenoiser
from fmrecon.models.fm_unetr import FMUNETR
from fmrecon.models.fm_varnet import FMVarNet
from fmrecon.models.unet import UNetRecon
from fmrecon.models.varnet import VarNet
from fmrecon.models.zero_filled import ZeroFilled
from fmrecon.utils import count_parameters


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # zero-filled | sense | cs-wavelet | unet | e2e-varnet | fm-varnet | fm-unetr
    description: str
    encoder: str | None = None  # fmrecon.encoders registry name
    # constructor options holding the encoder blocks the model uses (an int or a
    # sequence of ints, from 1): only blocks up to the deepest are built and run
    layer_options: tuple[str, ...] = ()
    defaults: dict = field(default_factory=dict)
    paper_trainable: float | None = None  # trainable parameters reported by the paper (M)
    paper: str = ""


def _spec(name, family, description, **kw) -> tuple[str, ModelSpec]:
    return name, ModelSpec(name, family, description, **kw)


_FM = {"clip": "clip-vit-b16", "dinov2": "dinov2-vit-b14", "biomedclip": "biomedclip-vit-b16"}
_MIDL = {"clip": 20.87, "dinov2": 20.92, "biomedclip": 20.87}
_NAMES = {"clip": "CLIP ViT-B/16", "dinov2": "DINOv2 ViT-B/14", "biomedclip": "BiomedCLIP ViT-B/16"}
# newer encoders in the papers' two architectures (no paper reports them): each run
# at its own input size and normalised with its own pre-training statistics
_NEW = {"siglip": "siglip-vit-b16", "rad-dino": "rad-dino-vit-b14", "dinov3": "dinov3-vit-b16"}
_NEW_NAMES = {
    "siglip": "SigLIP ViT-B/16 (224 px)",
    "rad-dino": "RAD-DINO ViT-B/14 (chest X-ray DINOv2, 518 px)",
    "dinov3": "DINOv3 ViT-B/16 (224 px)",
}
_VARNET_DEFAULTS = {
    "num_cascades": 12,
    "sens_chans": 8,
    "sens_pools": 4,
    "fuse_layers": 6,
    "skip_layers": (5, 4, 3),
}
_UNETR_DEFAULTS = {"feature_layers": (3, 6, 9, 12), "feature_size": 64}

MODELS: dict[str, ModelSpec] = dict(
    [
        _spec("zero-filled", "zero-filled", "inverse FFT of the masked k-space, RSS over coils"),
        _spec(
            "sense",
            "sense",
            "CG-SENSE (sigpy), ESPIRiT maps from the ACS, Tikhonov lamda 0.01, 20 iterations",
        ),
        _spec(
            "cs-wavelet",
            "cs-wavelet",
            "L1-wavelet compressed sensing (sigpy), ESPIRiT maps from the ACS, lamda 0.005, "
            "50 FISTA iterations",
        ),
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
            layer_options=("fuse_layers", "skip_layers"),
            defaults=dict(_VARNET_DEFAULTS),
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
            layer_options=("feature_layers",),
            defaults=dict(_UNETR_DEFAULTS),
            paper_trainable=_MIDL[key],
            paper="MIDL 2025 Table 1",
        )
        for key, enc in _FM.items()
    ]
    + [
        _spec(
            f"fm-varnet-{key}",
            "fm-varnet",
            f"FM-VarNet with a frozen {_NEW_NAMES[key]} (first 6 blocks, shared), "
            "its own mean/std; not in the papers",
            encoder=enc,
            layer_options=("fuse_layers", "skip_layers"),
            defaults={**_VARNET_DEFAULTS, "stats": "encoder"},
        )
        for key, enc in _NEW.items()
    ]
    + [
        _spec(
            f"fm-unetr-{key}",
            "fm-unetr",
            f"FM-UNETR with a frozen {_NEW_NAMES[key]}, its own mean/std; not in the papers",
            encoder=enc,
            layer_options=("feature_layers",),
            defaults={**_UNETR_DEFAULTS, "stats": "encoder"},
        )
        for key, enc in _NEW.items()
    ]
)


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}' (available: {', '.join(MODELS)})")
    return MODELS[name]


def _is_block(b) -> bool:
    return isinstance(b, int) and not isinstance(b, bool) and b >= 1


def _encoder_layers(spec: ModelSpec, kwargs: dict) -> int:
    """The deepest encoder block the model's options use (blocks count from 1)."""
    deepest = 0
    for key in spec.layer_options:
        value = kwargs.get(key)
        blocks = list(value) if isinstance(value, (list, tuple)) else [value]
        if not blocks or not all(_is_block(b) for b in blocks):
            raise ConfigError(
                f"model '{spec.name}': bad option {key}={value!r} (encoder block numbers, from 1)"
            )
        deepest = max(deepest, *blocks)
    return deepest


def _build_encoder(spec: ModelSpec, kwargs, encoder_weights, allow_random: bool, encoder_config):
    from fmrecon.encoders import build_encoder

    return build_encoder(
        spec.encoder,
        num_layers=_encoder_layers(spec, kwargs),
        weights=encoder_weights,
        allow_random=allow_random,
        config_overrides=encoder_config,
    )


# per family: the model class, and the classes its ``**kwargs`` are passed on to
_CLASSES: dict[str, tuple[type[ReconModel], tuple[type, ...]]] = {
    "zero-filled": (ZeroFilled, ()),
    "sense": (SenseRecon, (EspiritRecon,)),
    "cs-wavelet": (L1WaveletRecon, (EspiritRecon,)),
    "unet": (UNetRecon, ()),
    "e2e-varnet": (VarNet, ()),
    "fm-varnet": (FMVarNet, (FMDenoiser,)),
    "fm-unetr": (FMUNETR, ()),
}
# the registry passes the encoder itself; a factory of modules cannot be stored in a checkpoint
_NOT_OPTIONS = {"self", "encoder", "regularizer_factory"}


def model_options(family: str) -> list[str]:
    """The constructor options a family's models accept (keyword names)."""
    cls, passed_on = _CLASSES[family]
    names: list[str] = []
    for c in (cls, *passed_on):
        for p in inspect.signature(c.__init__).parameters.values():
            keyword = p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if keyword and p.name not in _NOT_OPTIONS and p.name not in names:
                names.append(p.name)
    return names


def _check_options(spec: ModelSpec, kwargs: dict) -> None:
    valid = model_options(spec.family)
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        raise ConfigError(
            f"model '{spec.name}': bad option {', '.join(unknown)} "
            f"(valid: {', '.join(valid) if valid else 'none'})"
        )


def create_model(
    name: str,
    *,
    encoder_weights: str | None = "default",
    allow_random_encoder: bool = False,
    encoder_config: dict | None = None,
    **overrides,
) -> ReconModel:
    """Build the named model. ``overrides`` change the constructor arguments
    (e.g. ``num_cascades=4``; unknown names are a ConfigError);
    ``encoder_weights`` is a path, a Hugging Face id, ``"default"`` (the
    registry's source through the local cache) or ``"random"`` (only with
    ``allow_random_encoder``); ``encoder_config`` overrides the encoder
    architecture (tiny encoders for tests). The model's ``record`` says how it
    was built."""
    spec = get_spec(name)
    if spec.encoder is None and (encoder_config or encoder_weights not in ("default", None)):
        raise ConfigError(f"model '{name}' has no foundation-model encoder")
    kwargs = {**spec.defaults, **overrides}
    _check_options(spec, kwargs)
    cls = _CLASSES[spec.family][0]
    if spec.encoder is None:
        model, encoder = cls(**kwargs), None
    else:
        encoder = _build_encoder(
            spec, kwargs, encoder_weights, allow_random_encoder, encoder_config
        )
        model = cls(encoder, **kwargs)
    model.record = BuildRecord(
        name=name,
        overrides=dict(overrides),
        encoder_config=dict(encoder_config or {}),
        encoder_weights=getattr(encoder, "weight_source", None),
        encoder_pretrained=getattr(encoder, "pretrained", None),
    )
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


def needs_training(name: str) -> bool:
    """Whether the named model has trainable parameters (and so needs a
    checkpoint to be evaluated); False for zero-filled, sense and cs-wavelet."""
    return describe(name)["trainable_params"] > 0
