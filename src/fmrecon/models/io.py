"""Load a trained model from a checkpoint file, whatever wrote it.

- fmrecon training checkpoints (Lightning ``.ckpt``) and ``save_model`` files:
  the model's build record (``BuildRecord.as_dict()``) is stored under
  ``checkpoint["fmrecon"]["model_spec"]`` and its weights under ``state_dict``
  with the prefix ``model.``; frozen encoder weights are included, so a
  checkpoint is self-contained. FM-VarNet checkpoints of the earlier layout
  (``model.varnet.*``) load too (``FMVarNet`` renames their keys).
- fastMRI's published VarNet state dicts (``--model e2e-varnet``), plain or
  Lightning-prefixed (``varnet.``).

Lean checkpoints (``encoder="reference"`` / ``model.checkpoint_encoder:
reference``): a pretrained frozen encoder is not stored, only where its
weights came from and their SHA-256 (``checkpoint["fmrecon"]
["encoder_reference"]``). Loading rebuilds the encoder from that source and
refuses weights whose hash differs. For FM-UNETR the frozen ViT-B is ~80% of
a checkpoint (0.43 GB -> 0.08 GB); for FM-VarNet ~40%.

A fine-tuned encoder (``encoder_lora_rank`` / ``encoder_unfreeze_last``,
:mod:`fmrecon.encoders.adapters`) is split the same way: its trained tensors
(the LoRA adapters under ``model.encoder.blocks.{i}.{path}.lora_A|B.default.weight``,
or the unfrozen blocks) are stored like the decoder's, and only its frozen
base is referenced; the hash is that of the base alone (:func:`encoder_digest`),
so a LoRA model references the same hash as the plain encoder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fmrecon.errors import ConfigError
from fmrecon.models.base import BuildRecord, ReconModel, build_record
from fmrecon.models.registry import create_model, get_spec

CHECKPOINT_KEY = "fmrecon"
STATE_PREFIX = "model."
ENCODER_REFERENCE = "encoder_reference"
ENCODER_STORAGE = ("weights", "reference")  # how a checkpoint keeps a frozen encoder


def frozen_encoder(model: nn.Module):
    """The model's frozen foundation-model encoder, or None."""
    from fmrecon.encoders.frozen import FrozenEncoder

    enc = getattr(model, "encoder", None)
    return enc if isinstance(enc, FrozenEncoder) else None


def encoder_keys(model: nn.Module) -> set[str]:
    """The model's state-dict keys that hold its encoder's frozen tensors
    (under every path that reaches the shared encoder): what a lean checkpoint
    leaves out. A fine-tuned encoder's adapters and unfrozen blocks are not
    among them (they are trained, so stored)."""
    from fmrecon.encoders.adapters import is_trained_key

    enc = frozen_encoder(model)
    if enc is None:
        return set()
    ids = {id(t) for k, t in enc.state_dict(keep_vars=True).items() if not is_trained_key(enc, k)}
    return {k for k, t in model.state_dict(keep_vars=True).items() if id(t) in ids}


def encoder_digest(encoder: nn.Module) -> str:
    """SHA-256 of an encoder's frozen base weights (the state digest of the
    plain encoder; adapters and unfrozen blocks left out): what a lean
    checkpoint's reference records and loading checks."""
    from fmrecon.encoders.adapters import base_digest

    return base_digest(encoder)


def encoder_reference(model: nn.Module) -> dict:
    """Where the model's frozen encoder weights came from and their SHA-256
    (:func:`encoder_digest`), for a checkpoint that does not store them. A
    random-init encoder has no source to reload from: ConfigError."""
    enc = frozen_encoder(model)
    if enc is None:
        raise ConfigError("model has no frozen encoder to store by reference")
    if not enc.pretrained:
        raise ConfigError(
            "a random-init encoder cannot be stored by reference (nothing to reload it "
            "from): use model.checkpoint_encoder: weights"
        )
    return {"name": enc.name, "weight_source": enc.weight_source, "sha256": encoder_digest(enc)}


def _reference_weights(ref: Mapping) -> str:
    """The ``encoder_weights`` argument that reloads a referenced encoder."""
    src = str(ref.get("weight_source") or "")
    for prefix in ("dir:", "open_clip:"):
        if src.startswith(prefix):
            return src[len(prefix) :]
    return src  # "hf:org/name" is understood as it is


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


def checkpoint_record(ckpt: Mapping, path: str | os.PathLike = "") -> BuildRecord | None:
    """The build record stored in an fmrecon checkpoint (``["fmrecon"]["model_spec"]``),
    None for other checkpoints; ConfigError naming ``path`` for a malformed one."""
    meta = ckpt.get(CHECKPOINT_KEY)
    if not (isinstance(meta, Mapping) and "model_spec" in meta):
        return None
    try:
        return BuildRecord.from_dict(dict(meta["model_spec"]))
    except (ConfigError, TypeError, ValueError) as err:  # unknown fields, not a dict
        raise ConfigError(f"checkpoint {path}: bad model_spec ({err})") from None


def build_from_record(record: BuildRecord, encoder_weights: str = "random") -> ReconModel:
    """Rebuild the architecture a record describes; the model's record is a
    copy of it. Encoder weights normally come from the checkpoint afterwards,
    so the encoder is built without loading any; a lean checkpoint passes its
    encoder's source as ``encoder_weights``."""
    encoder_args = {}
    if get_spec(record.name).encoder is not None:
        encoder_args = {
            "encoder_weights": encoder_weights,
            "allow_random_encoder": encoder_weights == "random",
            "encoder_config": record.encoder_config or None,
        }
    model = create_model(record.name, **encoder_args, **record.overrides)
    model.record = dataclasses.replace(record)
    return model


def _load_fastmri(path, ckpt: Mapping) -> ReconModel:
    """An E2E-VarNet of the size a fastMRI state dict holds, with its weights."""
    from fmrecon.models.varnet import fastmri_varnet_config, load_fastmri_state_dict

    state = ckpt.get("state_dict", ckpt)
    size = fastmri_varnet_config(state if isinstance(state, Mapping) else {})
    model = create_model("e2e-varnet", **size)
    load_fastmri_state_dict(model, ckpt)
    model.record.checkpoint, model.record.source = str(path), "fastmri"
    return model


def load_model(
    path: str | os.PathLike, model_name: str | None = None, map_location="cpu"
) -> ReconModel:
    """The model stored in ``path``, in eval mode.

    ``model_name`` is optional for fmrecon checkpoints (if given it must match)
    and required for fastMRI state dicts (``"e2e-varnet"``; their size --
    cascades, channels, pools -- is read off the weights).
    """
    ckpt = read_checkpoint(path)
    record = checkpoint_record(ckpt, path)
    if record is None:
        if model_name == "e2e-varnet":
            return _load_fastmri(path, ckpt).to(map_location).eval()
        hint = " (fastMRI VarNet state dicts load with --model e2e-varnet)"
        raise ConfigError(f"checkpoint {path}: not an fmrecon checkpoint{hint}")
    name = record.name
    if model_name is not None and model_name != name:
        raise ConfigError(f"checkpoint {path} holds model '{name}', not '{model_name}'")
    ref = ckpt[CHECKPOINT_KEY].get(ENCODER_REFERENCE)
    model = _build_referenced(path, record, ref) if ref else build_from_record(record)
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise ConfigError(f"checkpoint {path}: no state_dict")
    state = {k[len(STATE_PREFIX) :]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    if ref:  # the encoder's tensors are the freshly loaded, hash-checked ones
        current = model.state_dict()
        state.update({k: current[k] for k in encoder_keys(model) if k not in state})
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = str(err).split("size mismatch for ", 1)[-1].split("\n")[0][:200]
        raise ConfigError(f"checkpoint {path}: weights do not fit '{name}' ({first})") from None
    if result.missing_keys or result.unexpected_keys:
        what = (result.missing_keys[:3], result.unexpected_keys[:3])
        raise ConfigError(
            f"checkpoint {path}: weights do not fit '{name}' "
            f"(missing {what[0]}, unexpected {what[1]})"
        )
    model.record.checkpoint = str(path)
    return model.to(map_location).eval()


def _build_referenced(path, record: BuildRecord, ref: Mapping) -> ReconModel:
    """The model of a lean checkpoint, its encoder reloaded from the recorded
    source and checked against the recorded SHA-256."""
    source = _reference_weights(ref)
    try:
        model = build_from_record(record, encoder_weights=source)
    except ConfigError as err:  # missing weights included (EncoderWeightsError)
        # the encoder comes from the recorded source only: no advice to pass a path
        detail = getattr(err, "without_local_copy", str(err))
        raise ConfigError(
            f"checkpoint {path}: its encoder is stored by reference ({ref.get('weight_source')}) "
            f"and could not be loaded: {detail}"
        ) from None
    got = encoder_digest(model.encoder)
    if got != ref.get("sha256"):
        raise ConfigError(
            f"checkpoint {path}: the encoder weights at {ref.get('weight_source')} are not the "
            f"ones it was trained with (sha256 {got[:12]} != {str(ref.get('sha256'))[:12]})"
        )
    return model


def save_model(
    model: nn.Module, path: str | os.PathLike, encoder: str = "weights", **extra
) -> Path:
    """Write ``model`` as a minimal fmrecon checkpoint (its spec and weights,
    the same layout training writes), atomically. ``encoder="reference"``
    leaves a pretrained frozen encoder out (its source and hash are kept).
    ``extra`` entries are stored beside them (e.g. training metadata)."""
    from fmrecon.data.h5io import atomic_path

    record = build_record(model)
    if record is None:
        raise ConfigError("model has no build record: build it with create_model()")
    meta = {"model_spec": record.as_dict(), **extra}
    state = {STATE_PREFIX + k: v for k, v in model.state_dict().items()}
    if encoder == "reference":
        meta[ENCODER_REFERENCE] = encoder_reference(model)
        for k in encoder_keys(model):
            del state[STATE_PREFIX + k]
    elif encoder != "weights":
        raise ConfigError(f"encoder storage must be one of {ENCODER_STORAGE}, got '{encoder}'")
    ckpt = {CHECKPOINT_KEY: meta, "state_dict": state}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path
