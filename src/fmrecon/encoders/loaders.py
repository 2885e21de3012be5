"""Build a :class:`FrozenEncoder` from a named encoder and a weight source.

Weight sources (``weights=`` of :func:`build_encoder`):

- ``"default"``: the spec's Hugging Face repo through the hub cache
  (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ~/.cache/huggingface/hub, read at
  call time), fetched into it on first use unless ``HF_HUB_OFFLINE`` /
  ``TRANSFORMERS_OFFLINE`` is set (:mod:`fmrecon.encoders.hub`).
- ``"hf:org/name"`` (or a bare ``org/name`` that is not an existing path;
  ``@revision`` may follow): another repo of the same family, the same way.
- a path: a Hugging Face model directory (config.json + model.safetensors or
  pytorch_model.bin; a full CLIPModel / SiglipModel directory works: its
  vision tower's weights are taken), a hub cache directory holding the repo,
  or for BiomedCLIP an open_clip checkpoint (``open_clip_pytorch_model.bin``,
  image tower in the timm layout under ``visual.trunk.*``) or a directory with it.
  Paths never touch the network.
- ``"random"`` (or ``None`` with ``allow_random=True``): random initialisation,
  recorded as ``weight_source="random-init"``, ``pretrained=False``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fmrecon.encoders.frozen import FrozenEncoder
from fmrecon.encoders.hub import (
    HF_WEIGHT_FILES,
    EncoderWeightsError,
    find_weights,
    hf_dir_ok,
    resolve_hub_weights,
    snapshots,
    wanted,
)
from fmrecon.encoders.openclip import _brief, read_state_dict, timm_vit_to_hf, vit_layout
from fmrecon.encoders.registry import (
    MODEL_TYPES,
    EncoderSpec,
    apply_overrides,
    config_class,
    get_spec,
    make_config,
    model_class,
    resolve_input_size,
)
from fmrecon.errors import ConfigError

log = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
__all__ = ["EncoderWeightsError", "build_encoder", "read_state_dict", "timm_vit_to_hf"]


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (we report ourselves)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _layers(num_layers: int | None, available: int, where: str) -> int:
    if num_layers is None:
        return int(available)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ConfigError(f"{where}: num_layers must be a positive integer, got {num_layers!r}")
    if num_layers > available:
        raise EncoderWeightsError(f"{where} has {available} blocks, {num_layers} were asked for")
    return num_layers


def _prepare_config(config, spec: EncoderSpec, num_layers: int | None, where: str) -> None:
    config.num_hidden_layers = _layers(num_layers, config.num_hidden_layers, where)
    if spec.family == "dinov2":
        config.use_mask_token = False  # the mask token is for masked pre-training only
    if spec.family == "siglip":
        config.vision_use_head = False  # the attention-pooling head follows the last block


def _model_kwargs(family: str) -> dict[str, Any]:
    return {"add_pooling_layer": False} if family == "vit" else {}


def _wrap(model, spec: EncoderSpec, name: str, input_size: int, source: str, path) -> FrozenEncoder:
    return FrozenEncoder(
        model,
        name=name,
        family=spec.family,
        input_size=input_size,
        mean=spec.mean,
        std=spec.std,
        weight_source=source,
        pretrained=source != "random-init",
        weight_path=None if path is None else str(path),
    )


def _used_names(model: torch.nn.Module, encoder: FrozenEncoder) -> set[str]:
    """Parameter names of ``model`` that ``encoder`` keeps (and therefore needs)."""
    kept = {id(p) for p in encoder.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in kept}


# ----------------------------------------------------------------------------- builders


def _build_random(spec: EncoderSpec, name: str, overrides: dict, num_layers) -> FrozenEncoder:
    config = make_config(spec, overrides)
    input_size = resolve_input_size(spec, config, overrides)
    _prepare_config(config, spec, num_layers, f"encoder '{name}'")
    with _quiet_transformers():
        model = model_class(spec.family)(config, **_model_kwargs(spec.family))
    log.info("encoder %s: random initialisation (no pretrained weights)", name)
    return _wrap(model, spec, name, input_size, "random-init", None)


def _load_hf_dir(
    spec: EncoderSpec, name: str, d: Path, overrides: dict, num_layers, source: str
) -> FrozenEncoder:
    """Load a Hugging Face format directory (via ``from_pretrained``, which also
    maps the hub's legacy key names, e.g. DINOv2 ``attention.attention.query``)."""
    try:
        model_type = json.loads((d / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as err:
        raise EncoderWeightsError(f"cannot read {d / 'config.json'}: {err}") from None
    if model_type not in MODEL_TYPES[spec.family]:
        raise EncoderWeightsError(
            f"{d} holds a '{model_type}' model, encoder '{name}' needs "
            f"{' or '.join(MODEL_TYPES[spec.family])}"
        )
    where = f"checkpoint {d}"
    with _quiet_transformers():
        config = config_class(spec.family).from_pretrained(str(d), local_files_only=True)
    ov = {k: v for k, v in overrides.items() if k != "input_size"}
    apply_overrides(config, spec.family, ov, f"encoder '{name}'")
    input_size = resolve_input_size(spec, config, overrides)
    _prepare_config(config, spec, num_layers, where)
    with _quiet_transformers():
        model, info = model_class(spec.family).from_pretrained(
            str(d),
            config=config,
            local_files_only=True,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # reported below, on one line
            **_model_kwargs(spec.family),
        )
    # fp32 whatever the checkpoint holds (transformers 5 loads it in its own dtype;
    # the from_pretrained keyword for this changed name in 4.56)
    model = model.float()
    encoder = _wrap(model, spec, name, input_size, source, d)
    used = _used_names(model, encoder)
    bad = [f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in info["mismatched_keys"] if k in used]
    if bad:
        raise EncoderWeightsError(
            f"{where} does not fit encoder '{name}' (checkpoint vs model shapes): {_brief(bad)}"
        )
    missing = set(info["missing_keys"]) & used
    if missing:
        raise EncoderWeightsError(f"{where} lacks weights of encoder '{name}': {_brief(missing)}")
    return encoder


def _load_open_clip(
    spec: EncoderSpec, name: str, file: Path, overrides: dict, num_layers, source: str
) -> FrozenEncoder:
    """BiomedCLIP: convert the open_clip image trunk into a transformers ViTModel."""
    where = f"checkpoint {file}"
    config = make_config(spec, overrides)
    input_size = resolve_input_size(spec, config, overrides)
    _prepare_config(config, spec, num_layers, f"encoder '{name}'")
    state = read_state_dict(file)
    with _quiet_transformers():
        model = model_class("vit")(config, add_pooling_layer=False)
    block_prefix, names = vit_layout(model)
    mapped = timm_vit_to_hf(state, config.num_hidden_layers, block_prefix, where, names)
    del state
    target = model.state_dict()
    unknown = sorted(set(mapped) - set(target))
    if unknown:  # a transformers version with other ViT parameter names
        raise EncoderWeightsError(
            f"{where}: transformers ViTModel has no parameters {_brief(unknown)} "
            "(unsupported transformers version?)"
        )
    bad = [
        f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in mapped.items()
        if v.shape != target[k].shape
    ]
    if bad:
        raise EncoderWeightsError(
            f"{where} does not fit encoder '{name}' (checkpoint vs model shapes): {_brief(bad)}"
        )
    model.load_state_dict(mapped, strict=False)
    encoder = _wrap(model, spec, name, input_size, source, file)
    missing = _used_names(model, encoder) - set(mapped)
    if missing:
        raise EncoderWeightsError(f"{where} lacks weights of encoder '{name}': {_brief(missing)}")
    return encoder


def _load_found(
    spec: EncoderSpec, name: str, hit: Path, overrides: dict, num_layers, source: str
) -> FrozenEncoder:
    if hit.is_dir():
        return _load_hf_dir(spec, name, hit, overrides, num_layers, source)
    return _load_open_clip(spec, name, hit, overrides, num_layers, source)


def _load_path(
    spec: EncoderSpec, name: str, path: Path, overrides: dict, num_layers
) -> FrozenEncoder:
    """A user path: HF model dir, a file in one, an open_clip file, or a hub cache."""
    if not path.exists():
        kind = "a file or directory with" if spec.family == "vit" else "a directory with"
        raise EncoderWeightsError(
            f"encoder weights for '{name}' not found: {path} does not exist "
            f"(expected {kind} {wanted(spec)})"
        )
    if path.is_file():
        if path.name in (*HF_WEIGHT_FILES, "config.json") and hf_dir_ok(path.parent):
            return _load_hf_dir(
                spec, name, path.parent, overrides, num_layers, f"dir:{path.parent}"
            )
        if spec.family == "vit":
            return _load_open_clip(spec, name, path, overrides, num_layers, f"open_clip:{path}")
        raise EncoderWeightsError(
            f"encoder '{name}' needs a Hugging Face model directory ({wanted(spec)}), "
            f"got the file {path}"
        )
    hit = find_weights(path, spec.family)
    looked = [str(path)]
    # a hub cache (or HF_HOME, holding hub/) that contains the spec's repo
    snaps = snapshots(path, spec.weights_repo) or snapshots(path / "hub", spec.weights_repo)
    for snap in snaps if hit is None else []:
        looked.append(str(snap))
        hit = find_weights(snap, spec.family)
        if hit is not None:
            break
    if hit is None:
        raise EncoderWeightsError(
            f"encoder weights for '{name}' not found: looked for {wanted(spec)} in "
            f"{', '.join(looked)} (and for a hub cache of {spec.weights_repo} there)"
        )
    source = f"dir:{hit}" if hit.is_dir() else f"open_clip:{hit}"
    return _load_found(spec, name, hit, overrides, num_layers, source)


def build_encoder(
    name: str,
    num_layers: int | None = None,
    weights: str | os.PathLike | None = "default",
    allow_random: bool = False,
    config_overrides: dict[str, Any] | None = None,
) -> FrozenEncoder:
    """Build the frozen encoder ``name`` running its first ``num_layers`` blocks
    (None: all). ``weights``: "default", "hf:org/name[@revision]", a path,
    "random" or None (see the module docstring). ``allow_random=True`` makes
    ``weights=None`` mean random initialisation and lets "default" fall back to
    it (with a warning) when the weights are neither in the cache nor
    downloadable. ``config_overrides``: transformers config
    keys (e.g. hidden_size) plus ``input_size``; the ``-tiny`` name suffix adds
    :data:`~fmrecon.encoders.registry.TINY_OVERRIDES`. Raises ConfigError /
    EncoderWeightsError with a one-line message."""
    spec, overrides = get_spec(name)
    if config_overrides:
        overrides.update(config_overrides)
    if num_layers is not None:
        _layers(num_layers, num_layers, f"encoder '{name}'")  # type check only
    if weights is None:
        if not allow_random:
            raise ConfigError(
                f"encoder '{name}': weights=None means random initialisation; "
                "pass allow_random=True (or weights='random') to confirm"
            )
        return _build_random(spec, name, overrides, num_layers)
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str) or not weights:
        raise ConfigError(f"encoder '{name}': bad weights argument {weights!r}")
    if weights == "random":
        return _build_random(spec, name, overrides, num_layers)
    ident = None
    if weights == "default":
        ident = spec.weights_repo + ("" if spec.revision == "main" else f"@{spec.revision}")
    elif weights.startswith("hf:"):
        ident = weights[3:]
    elif _REPO_ID.match(weights) and not Path(weights).expanduser().exists():
        ident = weights
    if ident is None:
        encoder = _load_path(spec, name, Path(weights).expanduser(), overrides, num_layers)
    else:
        repo, _, revision = ident.partition("@")
        try:
            hit = resolve_hub_weights(spec, repo, name, revision or "main")
        except EncoderWeightsError as err:
            if weights == ident:  # a bare org/name: it may have been meant as a path
                raise EncoderWeightsError(
                    f"{err} (no file or directory {weights} either)"
                ) from None
            if not (allow_random and weights == "default"):
                raise
            log.warning(
                "encoder %s: no pretrained weights (%s), RANDOM initialisation (allow_random)",
                name,
                err,
            )
            return _build_random(spec, name, overrides, num_layers)
        encoder = _load_found(spec, name, hit, overrides, num_layers, f"hf:{ident}")
    log.info("encoder %s: %d blocks from %s", name, encoder.num_layers, encoder.weight_source)
    return encoder
