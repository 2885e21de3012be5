"""Encoder weights from the Hugging Face hub, the ecosystem's way.

The cache is the hub's own (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else
~/.cache/huggingface/hub, read at call time) in its own layout
(``models--org--name/{refs/<revision>, snapshots/<commit>/}``), so weights
fetched by transformers, ``hf download`` or fmrecon are shared. A repo already
there is used without touching the network; one that is missing is fetched on
first use with ``huggingface_hub.hf_hub_download`` (only the files the encoder
needs), unless ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set, as
transformers does. Missing weights then end with a one-line
:class:`EncoderWeightsError` that names the ``hf download`` command.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fmrecon.encoders.registry import EncoderSpec
from fmrecon.errors import ConfigError, one_line

HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
OPEN_CLIP_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")
# the variables that turn hub downloads off, and the values huggingface_hub reads as true
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


# How a run takes encoder weights from a local copy instead of the hub cache: the last
# advice of the missing-weights error (tests/test_cli_hints.py parses the command).
# Checkpoints (fmrecon evaluate / reconstruct) reload a referenced encoder from its
# recorded source only, so their error leaves this part out (models.io).
LOCAL_WEIGHTS_HINT = (
    "or give a local copy as PATH: `fmrecon train --config CONFIG model.encoder_weights=PATH` "
    "(in Python create_model(..., encoder_weights=PATH))"
)


class EncoderWeightsError(ConfigError):
    """Encoder weights are missing, unreadable or do not fit the architecture.
    ``local_copy``: advice on giving the weights as a local path, appended to
    the message; :attr:`without_local_copy` is the message without it, for
    callers that cannot take a path."""

    def __init__(self, message: str, local_copy: str = ""):
        super().__init__(f"{message}{local_copy}")
        self.without_local_copy = " ".join(str(message).split())


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


def offline_setting() -> str | None:
    """``"VAR=value"`` of the variable that turns downloads off, or None (read now)."""
    for var in OFFLINE_VARS:
        value = os.environ.get(var, "")
        if value.strip().upper() in _TRUE:
            return f"{var}={value}"
    return None


def repo_folder(repo_id: str) -> str:
    """Hub cache folder of a model repo: ``models--{org}--{name}``."""
    return "models--" + repo_id.replace("/", "--")


def snapshots(root: Path, repo_id: str, revision: str = "main") -> list[Path]:
    """Snapshot dirs of ``repo_id`` at ``revision`` under ``root`` (a hub cache,
    or the repo's own ``models--org--name`` folder): the one ``refs/<revision>``
    names (or the commit itself), then, for "main", the others newest first
    (a cache copied without its refs)."""
    for repo_dir in (root / repo_folder(repo_id), root):
        snaps = repo_dir / "snapshots"
        if not snaps.is_dir():
            continue
        found: list[Path] = []
        ref = repo_dir / "refs" / revision
        if ref.is_file():
            found.append(snaps / ref.read_text().strip())
        if _COMMIT.match(revision):
            found.append(snaps / revision)
        elif revision == "main":
            others = [p for p in snaps.iterdir() if p.is_dir()]
            found += sorted(others, key=lambda p: p.stat().st_mtime, reverse=True)
        return [p for p in dict.fromkeys(found) if p.is_dir()]
    return []


def hf_dir_ok(d: Path) -> bool:
    return (d / "config.json").is_file() and any((d / f).is_file() for f in HF_WEIGHT_FILES)


def open_clip_file(d: Path) -> Path | None:
    return next((d / f for f in OPEN_CLIP_FILES if (d / f).is_file()), None)


def find_weights(d: Path, family: str) -> Path | None:
    """``d`` itself if it is a HF model dir, else the open_clip file in it (ViT only)."""
    if hf_dir_ok(d):
        return d
    if family == "vit":
        return open_clip_file(d)
    return None


def wanted(spec: EncoderSpec) -> str:
    hf = "config.json + model.safetensors/pytorch_model.bin"
    return f"{' or '.join(OPEN_CLIP_FILES)} (or {hf})" if spec.family == "vit" else hf


def hub_files(spec: EncoderSpec, repo: str) -> list[str]:
    """The files fetched from ``repo``, in order; the last is the weights file
    (for the spec's own repo its known weights file, else safetensors)."""
    if spec.weights_file and repo == spec.weights_repo:
        return [spec.weights_file]  # open_clip: the one checkpoint file
    weights = spec.hub_weights if repo == spec.weights_repo else "model.safetensors"
    return ["config.json", weights]


def download_command(spec: EncoderSpec, repo: str, revision: str) -> str:
    """The ``hf download`` command (huggingface_hub >= 0.34) that fills the cache."""
    rev = "" if revision == "main" else f" --revision {revision}"
    return f"hf download {repo} {' '.join(hub_files(spec, repo))}{rev}"


def _not_found_errors() -> tuple[type[BaseException], ...]:
    import huggingface_hub.errors as hub_errors

    # huggingface_hub >= 1.0 raises RemoteEntryNotFoundError, not an EntryNotFoundError
    names = ("EntryNotFoundError", "RemoteEntryNotFoundError")
    return tuple(getattr(hub_errors, n) for n in names if hasattr(hub_errors, n))


def fetch(spec: EncoderSpec, repo: str, revision: str, cache: Path) -> None:
    """Download the files the encoder needs into the hub cache ``cache``
    (huggingface_hub's own layout, resumable, locked against concurrent runs).
    A Hugging Face format repo without the expected weights file gets the
    other format (safetensors <-> PyTorch pickle), as transformers would."""
    from huggingface_hub import hf_hub_download

    def get(filename: str) -> str:
        return hf_hub_download(repo, filename, revision=revision, cache_dir=str(cache))

    *first, weights = hub_files(spec, repo)
    for filename in first:
        get(filename)
    try:
        get(weights)
    except _not_found_errors():
        if weights not in ("model.safetensors", "pytorch_model.bin"):
            raise
        get("pytorch_model.bin" if weights == "model.safetensors" else "model.safetensors")


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {one_line(err, 300)}"


def resolve_hub_weights(spec: EncoderSpec, repo: str, name: str, revision: str = "main") -> Path:
    """Local path of ``repo``'s weights (a snapshot dir, or BiomedCLIP's file)
    in the hub cache, fetched first if missing and downloads are allowed;
    :class:`EncoderWeightsError` (one line) otherwise."""
    cache, var = hf_hub_cache()

    def lookup() -> Path | None:
        for snap in snapshots(cache, repo, revision):
            hit = find_weights(snap, spec.family)
            if hit is not None:
                return hit
        return None

    hit = lookup()
    if hit is not None:
        return hit
    offline = offline_setting()
    if offline:
        problem = f"not there, and downloads are off ({offline}; unset it to fetch on first use)"
    else:
        try:
            fetch(spec, repo, revision, cache)
        except Exception as err:  # no network, gated, no such file: one line
            problem = f"not there, and the download failed ({_one_line(err)})"
        else:
            hit = lookup()
            problem = "not there after the download"
    if hit is not None:
        return hit
    where = cache / repo_folder(repo)
    gated = (
        f"; {repo} is gated: accept its licence on its model page and log in (`hf auth login`)"
        if spec.gated and repo == spec.weights_repo
        else ""
    )
    kind = "the .bin file or" if spec.family == "vit" else "a directory with"
    raise EncoderWeightsError(
        f"no weights for encoder '{name}': {_wanted_of(spec, repo)} of {repo}"
        f"{'' if revision == 'main' else '@' + revision} in the Hugging Face cache {where} "
        f"(cache dir from {var}): {problem}{gated}; fetch them with "
        f"`{download_command(spec, repo, revision)}` where the hub is reachable (and copy "
        f"the cache here or point HF_HUB_CACHE/HF_HOME at it)",
        f", {LOCAL_WEIGHTS_HINT}, PATH being {kind} {wanted(spec)}",
    )


def _wanted_of(spec: EncoderSpec, repo: str) -> str:
    return " + ".join(hub_files(spec, repo))
