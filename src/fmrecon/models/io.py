"""Load a trained model from a checkpoint file, whatever wrote it.

- fmrecon training checkpoints (Lightning ``.ckpt``) and ``save_model`` files:
  the model's build record (``BuildRecord.as_dict()``) is stored under
  ``checkpoint["fmrecon"]["model_spec"]`` and its weights under ``state_dict``
  with the prefix ``model.``; frozen encoder weights are included, so a
  checkpoint is self-contained. FM-VarNet checkpoints of the earlier layout
  (``model.varnet.*``) load too (``FMVarNet`` renames their keys).
- fastMRI's published VarNet state dicts (``--model e2e-varnet``), plain or
  Lightning-prefixed (``varnet.``).
- exported folders in the Hugging Face hub's conventions (``fmrecon export``,
  :func:`save_pretrained`): ``model.safetensors`` (no pickle), ``config.json``
  (``model_spec``, as in checkpoints; ``encoder_reference`` when the frozen
  encoder is kept by reference), a model card ``README.md``; and hub ids
  ``hf:org/name[@revision]`` of them, resolved through the hub cache
  (:mod:`fmrecon.models.hub`).

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

from fmrecon.errors import ConfigError, one_line
from fmrecon.models.base import BuildRecord, ReconModel, build_record
from fmrecon.models.hub import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    is_hub_id,
    resolve_hub_model,
)
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
    try:
        load_fastmri_state_dict(model, ckpt)
    except ConfigError as err:  # what does not fit, named after the file
        raise ConfigError(f"checkpoint {path}: {err}") from None
    model.record.checkpoint, model.record.source = str(path), "fastmri"
    return model


def load_model(
    path: str | os.PathLike, model_name: str | None = None, map_location="cpu"
) -> ReconModel:
    """The model stored at ``path``, in eval mode: an fmrecon checkpoint, a
    folder written by :func:`save_pretrained` (``fmrecon export``), the hub
    id ``hf:org/name[@revision]`` of one (:mod:`fmrecon.models.hub`), or a
    fastMRI VarNet state dict (plain or Lightning-prefixed).

    ``model_name`` is optional for fmrecon's own formats (if given it must
    match) and required for fastMRI state dicts (``"e2e-varnet"``; their
    size -- cascades, channels, pools -- is read off the weights).
    """
    if is_hub_id(path):
        label = os.fspath(path)
        return load_pretrained(resolve_hub_model(label), model_name, map_location, label)
    if Path(path).is_dir():
        return load_pretrained(path, model_name, map_location)
    ckpt = read_checkpoint(path)
    record = checkpoint_record(ckpt, path)
    if record is None:
        if model_name == "e2e-varnet":
            return _load_fastmri(path, ckpt).to(map_location).eval()
        hint = " (fastMRI VarNet state dicts load with --model e2e-varnet)"
        raise ConfigError(f"checkpoint {path}: not an fmrecon checkpoint{hint}")
    _check_name(path, record.name, model_name)
    ref = ckpt[CHECKPOINT_KEY].get(ENCODER_REFERENCE)
    model = _build_referenced(path, record, ref) if ref else _build(path, record)
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise ConfigError(f"checkpoint {path}: no state_dict")
    state = {k[len(STATE_PREFIX) :]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    _load_state(model, state, f"checkpoint {path}", bool(ref))
    model.record.checkpoint = str(path)
    return model.to(map_location).eval()


def is_fastmri_varnet(ckpt: Mapping) -> bool:
    """Whether a checkpoint's contents (:func:`read_checkpoint`) are a fastMRI
    VarNet state dict (plain or Lightning-prefixed), recognised by its keys."""
    from fmrecon.models.varnet import fastmri_varnet_config

    state = ckpt.get("state_dict", ckpt)
    return isinstance(state, Mapping) and bool(fastmri_varnet_config(state))


def _check_name(path, name: str, model_name: str | None) -> None:
    try:
        get_spec(name)
    except ConfigError as err:  # unknown model
        raise ConfigError(f"checkpoint {path}: {err}") from None
    if model_name is not None and model_name != name:
        raise ConfigError(f"checkpoint {path} holds model '{name}', not '{model_name}'")


def _build(path, record: BuildRecord) -> ReconModel:
    """The architecture of a stored record whose weights (a frozen encoder's
    included) are loaded next; its encoder says where those came from (so the
    model can be saved again by reference). Problems (an unknown model name,
    bad options) name the file."""
    try:
        model = build_from_record(record)
    except ConfigError as err:
        raise ConfigError(f"checkpoint {path}: {err}") from None
    enc = frozen_encoder(model)
    if enc is not None:  # built empty, its stored weights are the recorded ones
        enc.weight_source = record.encoder_weights
        enc.pretrained = bool(record.encoder_pretrained)
    return model


def _load_state(model: ReconModel, state: dict, where: str, referenced: bool) -> None:
    """Load ``state`` into ``model`` strictly; a lean checkpoint's encoder
    tensors (``referenced``) are the freshly loaded, hash-checked ones."""
    name = model.record.name
    if referenced:
        current = model.state_dict()
        state.update({k: current[k] for k in encoder_keys(model) if k not in state})
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = str(err).split("size mismatch for ", 1)[-1].split("\n")[0][:200]
        raise ConfigError(f"{where}: weights do not fit '{name}' ({first})") from None
    if result.missing_keys or result.unexpected_keys:
        what = (result.missing_keys[:3], result.unexpected_keys[:3])
        raise ConfigError(
            f"{where}: weights do not fit '{name}' (missing {what[0]}, unexpected {what[1]})"
        )


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


# ----------------------------------------------------------------------------- exported folders

EXPORT_FORMAT = 1  # config.json "fmrecon_export": the layout's version
# how an export keeps a frozen encoder: "auto" = by reference when it came from the
# hub (any machine can fetch it again), else its weights
EXPORT_ENCODER = ("auto", "weights", "reference")


def export_encoder_storage(model: nn.Module, encoder: str = "auto") -> str:
    """``"weights"`` or ``"reference"``: how :func:`save_pretrained` keeps the
    model's frozen encoder. ``auto``: a pretrained encoder from the hub
    (``hf:`` source) by reference, so the export neither redistributes it
    (licences, gated repos) nor carries its 0.17-0.34 GB; a random-init
    encoder or one from a local folder (no source another machine can fetch)
    as weights."""
    if encoder not in EXPORT_ENCODER:
        raise ConfigError(f"encoder storage must be one of {EXPORT_ENCODER}, got '{encoder}'")
    enc = frozen_encoder(model)
    if encoder != "auto":
        return encoder if enc is not None else "weights"
    if enc is not None and enc.pretrained and str(enc.weight_source).startswith("hf:"):
        return "reference"
    return "weights"


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike,
    encoder: str = "auto",
    card: str | None = None,
    **extra,
) -> Path:
    """Write ``model`` as a folder in the hub's conventions: ``model.safetensors``
    (the weights, no pickle), ``config.json`` (``model_spec``: the build
    record, enough to rebuild the model by name; ``encoder_reference`` for an
    encoder kept by reference; ``extra`` entries) and, when
    ``card`` is given, ``README.md`` (the model card). Loads with
    :func:`load_model`. Each file is written atomically."""
    import json

    from safetensors.torch import save_file

    from fmrecon.data.h5io import atomic_path

    record = build_record(model)
    if record is None:
        raise ConfigError("model has no build record: build it with create_model()")
    spec = record.as_dict()
    spec.pop("checkpoint", None)
    storage = export_encoder_storage(model, encoder)
    state = dict(model.state_dict())
    config: dict = {"fmrecon_export": EXPORT_FORMAT, "model_spec": spec, **extra}
    if storage == "reference":
        config[ENCODER_REFERENCE] = encoder_reference(model)
        for k in encoder_keys(model):
            del state[k]
    # one contiguous copy each: safetensors refuses tensors that share memory
    tensors = {k: t.detach().to("cpu").contiguous().clone() for k, t in state.items()}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "fmrecon_model": record.name})
    with atomic_path(out / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2, default=str) + "\n")
    if card is not None:
        with atomic_path(out / "README.md") as tmp:
            tmp.write_text(card)
    return out


def read_export_config(directory: str | os.PathLike, label: str | None = None) -> dict:
    """The ``config.json`` of an exported folder, checked; one-line errors."""
    import json

    where = label or str(directory)
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"model {where}: no {CONFIG_FILE} (not a folder written by fmrecon export)"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"model {where}: {CONFIG_FILE} cannot be read ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_spec"), dict):
        raise ConfigError(
            f"model {where}: {CONFIG_FILE} has no model_spec (not written by fmrecon export)"
        )
    return config


def load_pretrained(
    directory: str | os.PathLike,
    model_name: str | None = None,
    map_location="cpu",
    label: str | None = None,
) -> ReconModel:
    """The model of a folder written by :func:`save_pretrained`, in eval mode
    (``label``, e.g. its hub id, names it in errors)."""
    from safetensors.torch import load_file

    where = label or str(directory)
    config = read_export_config(directory, label)
    try:
        record = BuildRecord.from_dict(dict(config["model_spec"]))
    except (ConfigError, TypeError, ValueError) as err:
        raise ConfigError(f"model {where}: bad model_spec ({err})") from None
    _check_name(where, record.name, model_name)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(f"model {where}: no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except Exception as err:  # truncated, not safetensors
        raise ConfigError(
            f"model {where}: {WEIGHTS_FILE} cannot be read ({one_line(err, 200)})"
        ) from None
    ref = config.get(ENCODER_REFERENCE)
    model = _build_referenced(where, record, ref) if ref else _build(where, record)
    _load_state(model, state, f"model {where}", bool(ref))
    model.record.checkpoint = where
    return model.to(map_location).eval()


# ----------------------------------------------------------------------------- initialisation


@dataclasses.dataclass
class InitReport:
    """What :func:`init_weights` did: ``source`` (what it was), ``loaded`` (the
    model's keys given the source's values), ``left`` (the model's keys it
    left as initialised), ``unused`` (the source's keys the model has not),
    ``encoder``: a note on the frozen encoder (empty without one)."""

    source: str
    loaded: list[str]
    left: list[str]
    unused: list[str]
    encoder: str = ""
    parameters: int = 0  # values loaded

    def lines(self) -> list[str]:
        """The report, a few lines for the run's log."""
        out = [
            f"init_from {self.source}: loaded {len(self.loaded)} tensors "
            f"({self.parameters:,} values)",
            "  left initialised: " + (_groups(self.left) or "nothing"),
        ]
        if self.unused:
            out.append("  not used (the new model has no such tensors): " + _groups(self.unused))
        if self.encoder:
            out.append("  " + self.encoder)
        return out


def _groups(keys: list[str], most: int = 8) -> str:
    """``cascades.2.* (15), sens_net.* (14)``: keys summarised by their module
    (the first name, and its number for numbered modules such as cascades)."""
    counts: dict[str, int] = {}
    for k in keys:
        parts = k.split(".")
        n = 2 if len(parts) > 2 and parts[1].isdigit() else 1
        head = ".".join(parts[:n]) + ".*" if len(parts) > n else k
        counts[head] = counts.get(head, 0) + 1
    shown = [f"{h} ({n})" for h, n in list(counts.items())[:most]]
    more = f", ... {len(counts) - most} more" if len(counts) > most else ""
    return ", ".join(shown) + more


def _source_model(source: str | os.PathLike) -> tuple[ReconModel, str]:
    """The model ``source`` holds and what it is: an fmrecon checkpoint, a
    fastMRI VarNet state dict (recognised by its keys), an exported folder or a
    hub id."""
    if is_hub_id(source) or Path(source).is_dir():
        return load_model(source), "exported model"
    ckpt = read_checkpoint(source)
    if checkpoint_record(ckpt, source) is not None:
        return load_model(source), "fmrecon checkpoint"
    if is_fastmri_varnet(ckpt):
        return _load_fastmri(source, ckpt), "fastMRI VarNet state dict"
    raise ConfigError(
        f"init_from {source}: neither an fmrecon checkpoint, a fastMRI VarNet state dict, "
        "nor a folder written by fmrecon export"
    )


def init_weights(model: ReconModel, source: str | os.PathLike) -> InitReport:
    """Load the weights ``source`` holds (:func:`_source_model`) into
    ``model`` by name before training (not a resume: the caller's optimiser
    and epoch start afresh). Every tensor of the model the source also has is
    loaded, of the same shape or a one-line ConfigError naming the key and
    both shapes; the model's frozen encoder is the run's own
    (``model.encoder_weights``), never the source's (a difference is
    reported). Nothing in common is a ConfigError."""
    with torch.random.fork_rng(devices=[]):  # building it draws nothing from the run's RNG
        src, kind = _source_model(source)
    theirs = src.state_dict()
    skip = encoder_keys(model)
    mine = {k: v for k, v in model.state_dict().items() if k not in skip}
    name = build_record(model).name if build_record(model) else type(model).__name__
    for k, v in mine.items():
        if k in theirs and tuple(theirs[k].shape) != tuple(v.shape):
            raise ConfigError(
                f"init_from {source}: {k} has shape {tuple(theirs[k].shape)} there and "
                f"{tuple(v.shape)} in the new '{name}' model"
            )
    loaded = [k for k in mine if k in theirs]
    if not loaded:
        raise ConfigError(
            f"init_from {source} ({kind}, model '{src.record.name}'): none of its tensors "
            f"is in the new '{name}' model"
        )
    model.load_state_dict({k: theirs[k] for k in loaded}, strict=False)
    report = InitReport(
        source=f"{source} ({kind}, model '{src.record.name}')",
        loaded=loaded,
        left=[k for k in mine if k not in theirs],
        unused=[k for k in theirs if k not in mine and k not in encoder_keys(src)],
        parameters=sum(theirs[k].numel() for k in loaded),
    )
    enc, their_enc = frozen_encoder(model), frozen_encoder(src)
    if enc is not None:
        report.encoder = f"frozen encoder: the run's own ({enc.weight_source}), not init_from's"
        if their_enc is not None and encoder_digest(their_enc) != encoder_digest(enc):
            report.encoder += (
                f"; WARNING: init_from's model was trained with other encoder weights "
                f"({their_enc.weight_source})"
            )
    return report
