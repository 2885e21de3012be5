"""Load a trained model from a checkpoint file, whatever wrote it.

- fmrecon training checkpoints (Lightning ``.ckpt``): the model's registry
  spec is stored under ``checkpoint["fmrecon"]["model_spec"]`` and its weights
  under ``state_dict`` with the prefix ``model.``; frozen encoder weights are
  included, so a checkpoint is self-contained.
- fastMRI's published VarNet state dicts (``--model e2e-varnet``), plain or
  Lightning-prefixed (``varnet.``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fmrecon.errors import ConfigError
from fmrecon.models.registry import create_model, get_spec

CHECKPOINT_KEY = "fmrecon"
STATE_PREFIX = "model."


def read_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load`` with ``weights_only=True`` and one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, pickle of arbitrary objects, not torch at all
        raise ConfigError(f"checkpoint {path}: cannot be read ({err})") from None
    if not isinstance(obj, Mapping):
        raise ConfigError(f"checkpoint {path}: holds a {type(obj).__name__}, not a checkpoint")
    return dict(obj)


def checkpoint_spec(ckpt: Mapping) -> dict | None:
    """The fmrecon model spec stored in a checkpoint, or None."""
    meta = ckpt.get(CHECKPOINT_KEY)
    return dict(meta["model_spec"]) if isinstance(meta, Mapping) and "model_spec" in meta else None


def build_from_spec(spec: Mapping) -> nn.Module:
    """Rebuild the architecture a spec describes. Encoder weights come from the
    checkpoint afterwards, so the encoder is built without loading any."""
    encoder_args = {}
    if get_spec(spec["name"]).encoder is not None:
        encoder_args = {
            "encoder_weights": "random",
            "allow_random_encoder": True,
            "encoder_config": spec.get("encoder_config") or None,
        }
    model = create_model(spec["name"], **encoder_args, **dict(spec.get("overrides") or {}))
    model.fmrecon_spec = dict(spec)
    return model


def load_model(
    path: str | os.PathLike, model_name: str | None = None, map_location="cpu"
) -> nn.Module:
    """The model stored in ``path``, in eval mode.

    ``model_name`` is optional for fmrecon checkpoints (if given it must match)
    and required for fastMRI state dicts (``"e2e-varnet"``; their size --
    cascades, channels, pools -- is read off the weights).
    """
    ckpt = read_checkpoint(path)
    spec = checkpoint_spec(ckpt)
    if spec is None:
        if model_name == "e2e-varnet":
            from fmrecon.models.varnet import fastmri_varnet_config, load_fastmri_state_dict

            state = ckpt.get("state_dict", ckpt)
            size = fastmri_varnet_config(state if isinstance(state, Mapping) else {})
            model = create_model("e2e-varnet", **size)
            load_fastmri_state_dict(model, ckpt)
            model.fmrecon_spec.update(checkpoint=str(path), source="fastmri")
            return model.to(map_location).eval()
        hint = " (fastMRI VarNet state dicts load with --model e2e-varnet)"
        raise ConfigError(f"checkpoint {path}: not an fmrecon checkpoint{hint}")
    if model_name is not None and model_name != spec["name"]:
        raise ConfigError(f"checkpoint {path} holds model '{spec['name']}', not '{model_name}'")
    model = build_from_spec(spec)
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise ConfigError(f"checkpoint {path}: no state_dict")
    state = {k[len(STATE_PREFIX) :]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = str(err).split("size mismatch for ", 1)[-1].split("\n")[0][:200]
        raise ConfigError(
            f"checkpoint {path}: weights do not fit '{spec['name']}' ({first})"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        what = (result.missing_keys[:3], result.unexpected_keys[:3])
        raise ConfigError(
            f"checkpoint {path}: weights do not fit '{spec['name']}' "
            f"(missing {what[0]}, unexpected {what[1]})"
        )
    model.fmrecon_spec["checkpoint"] = str(path)
    return model.to(map_location).eval()


def save_model(model: nn.Module, path: str | os.PathLike, **extra) -> Path:
    """Write ``model`` as a minimal fmrecon checkpoint (its spec and weights,
    the same layout training writes), atomically. ``extra`` entries are stored
    beside them (e.g. training metadata)."""
    from fmrecon.data.h5io import atomic_path

    spec = getattr(model, "fmrecon_spec", None)
    if not spec:
        raise ConfigError("model has no fmrecon_spec: build it with create_model()")
    ckpt = {
        CHECKPOINT_KEY: {"model_spec": dict(spec), **extra},
        "state_dict": {STATE_PREFIX + k: v for k, v in model.state_dict().items()},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path
