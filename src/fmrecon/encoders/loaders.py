"""Build a :class:`FrozenEncoder` from local weights, offline.

Weight sources (``weights=`` of :func:`build_encoder`):

- ``"default"``: the spec's Hugging Face repo, from the local hub cache only
  (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ~/.cache/huggingface/hub, read at
  call time). ``FMRECON_ALLOW_DOWNLOAD=1`` lets it download missing files.
- ``"hf:org/name"`` (or a bare ``org/name`` that is not an existing path):
  another repo of the same family, through the same cache.
- a path: a Hugging Face model directory (config.json + model.safetensors or
  pytorch_model.bin; a full CLIPModel directory works for CLIP: its
  ``vision_model.*`` weights are taken), a hub cache directory holding the repo,
  or for BiomedCLIP an open_clip checkpoint (``open_clip_pytorch_model.bin``,
  image tower in the timm layout under ``visual.trunk.*``) or a directory with it.
- ``"random"`` (or ``None`` with ``allow_random=True``): random initialisation,
  recorded as ``weight_source="random-init"``, ``pretrained=False``.

Nothing is ever downloaded unless ``FMRECON_ALLOW_DOWNLOAD=1``.
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

ALLOW_DOWNLOAD_ENV = "FMRECON_ALLOW_DOWNLOAD"
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
OPEN_CLIP_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class EncoderWeightsError(ConfigError):
    """Encoder weights are missing, unreadable or do not fit the architecture."""


# ----------------------------------------------------------------------------- hub cache


def hf_hub_cache() -> tuple[Path, str]:
    """The Hugging Face hub cache directory and the variable that chose it,
    resolved now (huggingface_hub reads the variables once at import)."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser(), key
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub", "HF_HOME"
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "huggingface" / "hub", "default"


def _repo_folder(repo_id: str) -> str:
    # hub cache convention: models--{org}--{name}/{refs/main, snapshots/<commit>/}
    return "models--" + repo_id.replace("/", "--")


def _snapshots(root: Path, repo_id: str) -> list[Path]:
    """Snapshot dirs of ``repo_id`` under ``root`` (a hub cache, or the repo's own
    ``models--org--name`` folder): ``refs/main`` first, then newest first."""
    for repo_dir in (root / _repo_folder(repo_id), root):
        snaps = repo_dir / "snapshots"
        if not snaps.is_dir():
            continue
        found: list[Path] = []
        ref = repo_dir / "refs" / "main"
        if ref.is_file():
            found.append(snaps / ref.read_text().strip())
        others = sorted((p for p in snaps.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        found += [p for p in reversed(others) if p not in found]
        return [p for p in found if p.is_dir()]
    return []


def _hf_dir_ok(d: Path) -> bool:
    return (d / "config.json").is_file() and any((d / f).is_file() for f in HF_WEIGHT_FILES)


def _open_clip_file(d: Path) -> Path | None:
    return next((d / f for f in OPEN_CLIP_FILES if (d / f).is_file()), None)


def _find_weights(d: Path, family: str) -> Path | None:
    """``d`` itself if it is a HF model dir, else the open_clip file in it (ViT only)."""
    if _hf_dir_ok(d):
        return d
    if family == "vit":
        return _open_clip_file(d)
    return None


def _wanted(spec: EncoderSpec) -> str:
    hf = "config.json + model.safetensors/pytorch_model.bin"
    return f"{' or '.join(OPEN_CLIP_FILES)} (or {hf})" if spec.family == "vit" else hf


def _download_hint(spec: EncoderSpec, repo: str) -> str:
    files = f" {spec.weights_file}" if spec.weights_file and repo == spec.weights_repo else ""
    kind = "the .bin file or" if spec.family == "vit" else "a directory with"
    return (
        f"on a machine with network run `huggingface-cli download {repo}{files}` and copy "
        f"its hub cache here (or point HF_HUB_CACHE/HF_HOME at it), or pass "
        f"--encoder-weights PATH ({kind} {_wanted(spec)}), "
        f"or set {ALLOW_DOWNLOAD_ENV}=1 where the hub is reachable"
    )


def _download(spec: EncoderSpec, repo: str, cache: Path) -> None:
    """Fetch the files the encoder needs into ``cache`` (only when allowed)."""
    from huggingface_hub import hf_hub_download

    def get(filename: str) -> None:
        hf_hub_download(repo, filename, cache_dir=str(cache))

    if spec.family == "vit" and spec.weights_file and repo == spec.weights_repo:
        get(spec.weights_file)
        return
    get("config.json")
    try:
        get("model.safetensors")
    except Exception:  # repos without safetensors: the PyTorch pickle
        get("pytorch_model.bin")


def resolve_hub_weights(spec: EncoderSpec, repo: str, name: str) -> Path:
    """Local path of ``repo``'s weights in the hub cache (downloading only with
    ``FMRECON_ALLOW_DOWNLOAD=1``); :class:`EncoderWeightsError` otherwise."""
    cache, var = hf_hub_cache()

    def lookup() -> Path | None:
        for snap in _snapshots(cache, repo):
            hit = _find_weights(snap, spec.family)
            if hit is not None:
                return hit
        return None

    hit = lookup()
    allowed = os.environ.get(ALLOW_DOWNLOAD_ENV, "") == "1"
    problem = "not found"
    if hit is None and allowed:
        try:
            _download(spec, repo, cache)
        except Exception as err:  # offline, gated, missing file: say so on one line
            problem = f"not found and download failed ({type(err).__name__}: {err})"
        hit = lookup()
    if hit is None:
        where = cache / _repo_folder(repo)
        raise EncoderWeightsError(
            f"no weights for encoder '{name}': looked for {_wanted(spec)} of {repo} in the "
            f"Hugging Face cache {where} (cache dir from {var}): {problem}; to provide them, "
            + _download_hint(spec, repo)
        )
    return hit


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


def _brief(keys, n: int = 4) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


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
            dtype=torch.float32,
            local_files_only=True,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # reported below, on one line
            **_model_kwargs(spec.family),
        )
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


def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """A checkpoint file as a flat state dict (safetensors or torch pickle, loaded
    with ``weights_only``; a training checkpoint's ``state_dict`` and DDP
    ``module.`` prefixes are unwrapped)."""
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) pickles cannot be memory-mapped
                state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise EncoderWeightsError(f"cannot read checkpoint {file}: {err}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EncoderWeightsError(f"{file} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def timm_vit_to_hf(
    state: dict[str, torch.Tensor], num_layers: int, block_prefix: str = "layers.", where: str = ""
) -> dict[str, torch.Tensor]:
    """Map the first ``num_layers`` blocks of a timm ViT trunk (under
    ``visual.trunk.``, ``trunk.`` or bare) to transformers ViTModel names.

    timm layout: ``patch_embed.proj``, ``cls_token`` (1, 1, D), ``pos_embed``
    (1, 1 + N, D), ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1,
    mlp.fc2}``, ``norm``; ``attn.qkv`` is fused (3D, D): q, k, v in that order.
    Blocks >= num_layers and the final ``norm``/``fc_norm``/``head`` are unused
    and ignored, everything outside the trunk (text tower, ``visual.head``) too;
    other trunk keys are an error (they would change the computation)."""
    prefix = next(
        (p for p in ("visual.trunk.", "trunk.", "") if f"{p}patch_embed.proj.weight" in state),
        None,
    )
    if prefix is None:
        raise EncoderWeightsError(
            f"{where}: no ViT image trunk (looked for visual.trunk.patch_embed.proj.weight)"
        )
    trunk = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    blocks = {int(m.group(1)) for k in trunk if (m := re.match(r"blocks\.(\d+)\.", k))}
    n_blocks = max(blocks) + 1 if blocks else 0
    if n_blocks < num_layers:
        raise EncoderWeightsError(f"{where} has {n_blocks} blocks, {num_layers} were asked for")

    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []

    def take(src: str) -> torch.Tensor | None:
        if src not in trunk:
            missing.append(prefix + src)
            return None
        used.add(src)
        return trunk[src]

    def put(dst: str, src: str) -> None:
        t = take(src)
        if t is not None:
            out[dst] = t

    put("embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight")
    put("embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias")
    put("embeddings.cls_token", "cls_token")
    put("embeddings.position_embeddings", "pos_embed")
    for i in range(num_layers):
        s, d = f"blocks.{i}.", f"{block_prefix}{i}."
        for kind in ("weight", "bias"):
            put(f"{d}layernorm_before.{kind}", f"{s}norm1.{kind}")
            put(f"{d}attention.o_proj.{kind}", f"{s}attn.proj.{kind}")
            put(f"{d}layernorm_after.{kind}", f"{s}norm2.{kind}")
            put(f"{d}mlp.fc1.{kind}", f"{s}mlp.fc1.{kind}")
            put(f"{d}mlp.fc2.{kind}", f"{s}mlp.fc2.{kind}")
            qkv = take(f"{s}attn.qkv.{kind}")
            if qkv is not None:
                if qkv.shape[0] % 3:
                    raise EncoderWeightsError(
                        f"{where}: {prefix}{s}attn.qkv.{kind} of shape {tuple(qkv.shape)} "
                        "is not a fused (3*D, ...) q,k,v tensor"
                    )
                for proj, part in zip(("q", "k", "v"), qkv.chunk(3, dim=0), strict=True):
                    out[f"{d}attention.{proj}_proj.{kind}"] = part
    if missing:
        raise EncoderWeightsError(f"{where} lacks trunk weights: {_brief(missing)}")
    unused = re.compile(r"(norm|fc_norm|head)\.|blocks\.(\d+)\.")
    unexpected = [
        prefix + k
        for k in trunk
        if k not in used
        and not ((m := unused.match(k)) and (m.group(2) is None or int(m.group(2)) >= num_layers))
    ]
    if unexpected:
        raise EncoderWeightsError(f"{where} has unexpected trunk keys: {_brief(unexpected)}")
    return out


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
    block_prefix = "layers." if hasattr(model, "layers") else "encoder.layer."
    mapped = timm_vit_to_hf(state, config.num_hidden_layers, block_prefix, where)
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
            f"(expected {kind} {_wanted(spec)})"
        )
    if path.is_file():
        if path.name in (*HF_WEIGHT_FILES, "config.json") and _hf_dir_ok(path.parent):
            return _load_hf_dir(
                spec, name, path.parent, overrides, num_layers, f"dir:{path.parent}"
            )
        if spec.family == "vit":
            return _load_open_clip(spec, name, path, overrides, num_layers, f"open_clip:{path}")
        raise EncoderWeightsError(
            f"encoder '{name}' needs a Hugging Face model directory ({_wanted(spec)}), "
            f"got the file {path}"
        )
    hit = _find_weights(path, spec.family)
    looked = [str(path)]
    # a hub cache (or HF_HOME, holding hub/) that contains the spec's repo
    snaps = _snapshots(path, spec.weights_repo) or _snapshots(path / "hub", spec.weights_repo)
    for snap in snaps if hit is None else []:
        looked.append(str(snap))
        hit = _find_weights(snap, spec.family)
        if hit is not None:
            break
    if hit is None:
        raise EncoderWeightsError(
            f"encoder weights for '{name}' not found: looked for {_wanted(spec)} in "
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
    (None: all). ``weights``: "default", "hf:org/name", a path, "random" or None
    (see the module docstring). ``allow_random=True`` makes ``weights=None`` mean
    random initialisation and lets "default" fall back to it (with a warning)
    when the cache has no weights. ``config_overrides``: transformers config
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
    repo = None
    if weights == "default":
        repo = spec.weights_repo
    elif weights.startswith("hf:"):
        repo = weights[3:]
    elif _REPO_ID.match(weights) and not Path(weights).expanduser().exists():
        repo = weights
    if repo is None:
        encoder = _load_path(spec, name, Path(weights).expanduser(), overrides, num_layers)
    else:
        try:
            hit = resolve_hub_weights(spec, repo, name)
        except EncoderWeightsError as err:
            if weights == repo:  # a bare org/name: it may have been meant as a path
                raise EncoderWeightsError(
                    f"{err} (no file or directory {weights} either)"
                ) from None
            if not (allow_random and weights == "default"):
                raise
            log.warning(
                "encoder %s: no weights in the cache, RANDOM initialisation (allow_random)", name
            )
            return _build_random(spec, name, overrides, num_layers)
        encoder = _load_found(spec, name, hit, overrides, num_layers, f"hf:{repo}")
    log.info("encoder %s: %d blocks from %s", name, encoder.num_layers, encoder.weight_source)
    return encoder
