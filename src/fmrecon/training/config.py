"""Run configuration: YAML files plus ``key=value`` overrides, validated.

A config is a nested mapping whose keys and defaults are :data:`DEFAULTS`;
an unknown key is an error (with the closest valid key), so a typo never
silently falls back to a default. ``model.options`` is free-form: it holds
the constructor options of the chosen model and is checked when the model
is built.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any

import yaml

from fmrecon.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "name": None,  # run name; default: the config file's stem
    "output_dir": "runs",  # the run lives in output_dir/name
    "seed": 0,
    "model": {
        "name": "e2e-varnet",
        "options": {},  # constructor options, e.g. num_cascades: 4, checkpoint_cascades: true
        "encoder_weights": "default",  # HF cache, a path, or "random"
        "allow_random_encoder": False,  # let a missing encoder fall back to random weights
        "encoder_config": {},  # encoder architecture overrides (tiny encoders)
        # FM-UNETR only: a folder for the on-disk cache of frozen-encoder features
        # (fmrecon.models.feature_cache); needs fixed masks (data.mask.official: true)
        "feature_cache": None,
        "feature_cache_dtype": "float32",  # float32 (bit-exact) or float16 (half the disk)
        # how checkpoints keep a pretrained frozen encoder: its weights (self-contained)
        # or a reference (weight source + SHA-256; reloaded and checked on load)
        "checkpoint_encoder": "weights",
        # start from existing weights (not a resume: fresh optimiser, epoch 0): an fmrecon
        # checkpoint, a fastMRI VarNet state dict, a folder written by `fmrecon export` or
        # hf:org/name; tensors of the same name are loaded (same shape or an error), the
        # others keep their initialisation; the frozen encoder stays encoder_weights'
        "init_from": None,
    },
    "data": {
        "root": None,
        "split": None,  # split JSON (read if it exists, else written); default: <run>/split.json
        "split_seed": 0,
        "split_fractions": [0.7, 0.1, 0.2],
        # hold out whole groups (CMRxRecon 2025): every file whose center / vendor (the
        # maker: Siemens, UIH, GE, Philips) / scanner (the vendor folder) / field (tesla)
        # is in `test` goes to the test part, none to train/val; the rest is split by
        # split_fractions (e.g. [0.8, 0.2, 0.0]: all of test unseen). A key of its own:
        # data.split names the split file, which records what was held out
        "holdout": {"by": None, "test": []},
        "modalities": None,  # e.g. [cine_sax, cine_lax]
        "mask": {
            "kind": "cmrxrecon-uniform",
            "accelerations": [4],
            "center_fractions": None,
            "num_acs": None,
            "official": False,  # use the challenge's mask files (fixed masks)
        },
        # model input size [H, W] (null: native). Applied to the fully sampled k-space
        # before masking (fmrecon.data.resize.KspaceResize), so the model, the loss and the
        # metrics all see H x W: the target is the RSS of the transformed coil images and
        # masks are generated at width W (the challenge's mask files exist at the native
        # size only: official: true is then an error). MIDL 2025: [224, 224].
        "image_size": None,
        # kspace: keep the central H x W k-space samples (same field of view, lower
        # resolution); crop: centre-crop the coil images (native resolution, smaller FOV)
        "image_resize": "kspace",
        # readout oversampling factor removed first (coil images: keep the central 1/f of
        # the readout rows); CMRxRecon raw k-space keeps 2x (e.g. cine 512 x 246). 1: keep
        "readout_oversampling": 1,
        "batch_size": 1,
        "val_batch_size": 1,
        "num_workers": 2,
    },
    "optim": {
        "name": "adam",  # adam | adamw
        "lr": 1e-3,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
        "lr_step_epochs": 40,  # multiply the lr by lr_gamma every this many epochs (0: never)
        "lr_gamma": 0.1,
    },
    "trainer": {
        "max_epochs": 50,
        "early_stopping_patience": 5,  # epochs without a better val_ssim (0: off)
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "precision": "32-true",  # or bf16-mixed, 16-mixed (PRECISIONS)
        "accumulate_grad_batches": 1,
        "gradient_clip_val": None,
        "limit_train_batches": 1.0,
        "limit_val_batches": 1.0,
        "val_check_interval": 1.0,
        "log_every_n_steps": 10,
        "checkpoint_every_n_steps": 0,  # also write last-step.ckpt every N optimiser steps (0: off)
        "progress_bar": True,
        # validation images (target, reconstruction, error map) logged to TensorBoard at
        # every validation: this many, spread evenly over the validation batches (0: none)
        "log_images": 4,
        # true: torch.use_deterministic_algorithms (an op without a deterministic kernel
        # is an error); "warn": a warning instead. The FM models' bilinear resizes have
        # no deterministic CUDA backward: true is refused for them on a GPU
        "deterministic": False,
        # TF32 for fp32 matmuls and convolutions on Ampere+ GPUs (fmrecon.utils.set_tf32).
        # Off by default: 32-true is then fp32 throughout (PyTorch's defaults mix TF32
        # convolutions with fp32 matmuls) and matches the fp32 evaluation and benchmark.
        # true: faster fp32 training on Ampere+, at ~1e-3 relative error per matmul
        "tf32": False,
        # BatchNorm statistics over all GPUs of a DDP run (Lightning's sync_batchnorm:
        # SyncBatchNorm); FM-UNETR's conv stem is the only model with BatchNorm
        "sync_batchnorm": False,
        # experiment trackers beside the CSV log (always written): tensorboard, wandb,
        # mlflow (one name or a list; [] for the CSV log only). wandb and mlflow are
        # optional extras: pip install 'fmrecon[wandb]' / 'fmrecon[mlflow]'
        "logger": ["tensorboard"],
        # torch.compile (inductor) of the model: false, true, a mode, or {mode: default |
        # reduce-overhead | max-autotune | max-autotune-no-cudagraphs, dynamic: null | true |
        # false}. Compiled region by region in place (fmrecon.utils.compile_model): the
        # state-dict keys and checkpoints are those of the eager model; compiled graphs
        # are cached on disk (TORCHINDUCTOR_CACHE_DIR, default ~/.cache/fmrecon/inductor)
        "compile": False,
    },
}

# where a value may be of several types, the types allowed
_TYPES: dict[str, tuple] = {
    "name": (str, type(None)),
    "model.feature_cache": (str, type(None)),
    "model.init_from": (str, type(None)),
    "data.root": (str, type(None)),
    "data.split": (str, type(None)),
    "data.holdout.by": (str, type(None)),
    "data.modalities": (list, type(None)),
    "data.image_size": (list, int, type(None)),
    "data.mask.center_fractions": (list, type(None)),
    "data.mask.num_acs": (int, type(None)),
    "trainer.devices": (int, str, list),
    "trainer.logger": (str, list),
    "trainer.gradient_clip_val": (int, float, type(None)),
    "trainer.limit_train_batches": (int, float),
    "trainer.limit_val_batches": (int, float),
    "trainer.val_check_interval": (int, float),
    "trainer.precision": (str, int),
    "trainer.deterministic": (bool, str),
    "trainer.compile": (bool, str, dict),
    "optim.lr": (int, float),
    "optim.weight_decay": (int, float),
    "optim.lr_gamma": (int, float),
}
_FREE = ("model.options", "model.encoder_config")
_LEAVES = ("trainer.compile",)  # one value, which may be a mapping
# trainer.precision values that run (Lightning's names and its aliases 32, 16, bf16):
# fp32 or autocast. "-true" casts the weights to bf16/fp16 while the inputs and the
# k-space physics stay fp32/complex64 ("Input type (FloatTensor) and weight type
# (BFloat16)"), and data consistency must stay fp32; 64-true crashes the same way
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
_PRECISION_ALIASES = {32: "32-true", "32": "32-true", 16: "16-mixed", "16": "16-mixed",
                      "bf16": "bf16-mixed"}  # fmt: skip


def _walk(d: dict, prefix: str = ""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in _FREE and key not in _LEAVES:
            yield from _walk(v, key + ".")
        else:
            yield key, v


VALID_KEYS = [k for k, _ in _walk(DEFAULTS)]


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, VALID_KEYS + list(_FREE), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def _merge(base: dict, new: dict, prefix: str = "") -> None:
    for k, v in new.items():
        key = f"{prefix}{k}"
        if key in _FREE:
            if not isinstance(v, dict):
                raise ConfigError(f"config key '{key}' must be a mapping, got {v!r}")
            base[k] = {**base.get(k, {}), **v}
        elif k not in base:
            raise _unknown(key)
        elif isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"config key '{key}' must be a mapping, got {v!r}")
            _merge(base[k], v, key + ".")
        else:
            base[k] = v


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _nest(parts: list[str], value) -> dict:
    out: dict = value
    for p in reversed(parts):
        out = {p: out}
    return out


def _set(cfg: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for p in parents:
        cfg = cfg[p]
    cfg[last] = value


def _check_types(cfg: dict) -> None:
    for key, value in list(_walk(cfg)):
        if key in _FREE:
            continue
        default = dict(_walk(DEFAULTS))[key]
        allowed = _TYPES.get(key)
        if allowed is None:
            if default is None:
                continue
            allowed = (type(default),)
            if isinstance(default, float):
                allowed = (int, float)
        if isinstance(value, str) and float in allowed and str not in allowed:
            # YAML 1.1 reads 1e-3 (no dot) as a string: accept it as the number it is
            try:
                value = float(value)
            except ValueError:
                pass
            else:
                _set(cfg, key, value)
        if isinstance(value, bool) and bool not in allowed:
            raise ConfigError(f"config key '{key}' must be {allowed[0].__name__}, got {value!r}")
        if not isinstance(value, allowed):
            names = " or ".join(t.__name__ for t in allowed)
            raise ConfigError(f"config key '{key}' must be {names}, got {value!r}")


LOGGERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # name: package


def logger_names(value) -> list[str]:
    """``trainer.logger`` as a list of names (one name, a list, or a comma-separated string)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def _check_loggers(value) -> None:
    import importlib.util

    for name in logger_names(value):
        if name not in LOGGERS:
            raise ConfigError(
                f"trainer.logger: unknown logger '{name}' (choose from {', '.join(LOGGERS)}; "
                "the CSV log is always written)"
            )
        if importlib.util.find_spec(LOGGERS[name]) is None:
            raise ConfigError(
                f"trainer.logger {name}: the {LOGGERS[name]} package is not installed "
                f"(pip install 'fmrecon[{name}]')"
            )


def _check_values(cfg: dict, require_data: bool = True) -> None:
    if require_data and not cfg["data"]["root"]:
        raise ConfigError("config key 'data.root' is required (a folder of k-space files)")
    mask = cfg["data"]["mask"]
    if not mask["accelerations"]:
        raise ConfigError("config key 'data.mask.accelerations' needs at least one value")
    if cfg["optim"]["name"] not in ("adam", "adamw"):
        raise ConfigError(f"optim.name must be adam or adamw, got '{cfg['optim']['name']}'")
    if cfg["optim"]["lr"] <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg['optim']['lr']}")
    for key in ("data.batch_size", "data.val_batch_size", "trainer.max_epochs"):
        a, b = key.split(".")
        if cfg[a][b] < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {cfg[a][b]}")
    precision = cfg["trainer"]["precision"]
    if _PRECISION_ALIASES.get(precision, precision) not in PRECISIONS:
        raise ConfigError(
            f"config key 'trainer.precision' must be one of {', '.join(PRECISIONS)} (or 32, "
            f"bf16, 16), got {precision!r}: fmrecon runs fp32 or mixed precision (autocast)"
        )
    _check_deterministic(cfg)
    _check_loggers(cfg["trainer"]["logger"])
    from fmrecon.utils import compile_options

    compile_options(cfg["trainer"]["compile"], "trainer.compile")
    if cfg["data"]["num_workers"] < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {cfg['data']['num_workers']}")
    model = cfg["model"]
    if model["checkpoint_encoder"] not in ("weights", "reference"):
        raise ConfigError(
            f"model.checkpoint_encoder must be 'weights' or 'reference', "
            f"got '{model['checkpoint_encoder']}'"
        )
    if model["feature_cache"]:
        if not mask.get("official"):
            raise ConfigError(
                "model.feature_cache needs fixed masks (data.mask.official: true): masks drawn "
                "per epoch never repeat, so no cached feature would ever be reused"
            )
        if model["feature_cache_dtype"] not in ("float32", "float16"):
            raise ConfigError(
                f"model.feature_cache_dtype must be float32 or float16, "
                f"got '{model['feature_cache_dtype']}'"
            )
    _check_image_size(cfg["data"])
    fr = cfg["data"]["split_fractions"]
    if len(fr) != 3 or abs(sum(fr) - 1) > 1e-6 or min(fr) < 0:
        raise ConfigError(f"data.split_fractions must be 3 numbers summing to 1, got {fr}")
    _check_holdout(cfg["data"]["holdout"])


def _check_holdout(holdout: dict) -> None:
    from fmrecon.data.split import HOLDOUT_BY

    by, test = holdout["by"], holdout["test"]
    if by is None:
        if test:
            raise ConfigError("config key 'data.holdout.test' needs 'data.holdout.by'")
        return
    if by not in HOLDOUT_BY:
        raise ConfigError(
            f"config key 'data.holdout.by' must be one of {', '.join(HOLDOUT_BY)}, got '{by}'"
        )
    if not test:
        raise ConfigError(f"config key 'data.holdout.test' must list the held-out {by} values")


def _check_deterministic(cfg: dict) -> None:
    """``trainer.deterministic``: true, false or Lightning's "warn". True is
    refused where it cannot run: a model with a foundation-model encoder on a
    GPU (its input resize and feature upsampling are bilinear, whose CUDA
    backward has no deterministic kernel in torch: ``upsample_bilinear2d_backward``
    errors under ``torch.use_deterministic_algorithms(True)``). The U-Net's odd-size
    padding has a deterministic backward (fmrecon.models.unet._reflect_pad_end)."""
    t = cfg["trainer"]
    value = t["deterministic"]
    if isinstance(value, str) and value != "warn":
        raise ConfigError(f"config key 'trainer.deterministic' must be true, false or warn, "
                          f"got {value!r}")  # fmt: skip
    if value is not True:
        return
    import torch

    from fmrecon.models.registry import get_spec

    gpu = t["accelerator"] in ("gpu", "cuda") or (
        t["accelerator"] == "auto" and torch.cuda.is_available()  # no CUDA initialisation
    )
    if gpu and get_spec(cfg["model"]["name"]).encoder is not None:
        raise ConfigError(
            f"config key 'trainer.deterministic: true' cannot run model "
            f"'{cfg['model']['name']}' on a GPU: its bilinear resizes have no deterministic "
            "CUDA backward in torch (use trainer.deterministic: warn, or trainer.accelerator: cpu)"
        )


def _check_image_size(data: dict) -> None:
    from fmrecon.data.resize import METHODS, KspaceResize, check_official_masks, parse_image_size

    size = parse_image_size(data["image_size"], "config key 'data.image_size'")
    data["image_size"] = list(size) if size is not None else None
    if data["image_resize"] not in METHODS:
        raise ConfigError(
            f"config key 'data.image_resize' must be one of {', '.join(METHODS)}, "
            f"got '{data['image_resize']}'"
        )
    factor = data["readout_oversampling"]
    if factor < 1:
        raise ConfigError(f"config key 'data.readout_oversampling' must be >= 1, got {factor}")
    check_official_masks(
        KspaceResize(size, data["image_resize"], factor),
        bool(data["mask"].get("official")),
        "config keys 'data.image_size'/'data.readout_oversampling'",
        "data.mask.official: true",
    )


def load_config(
    path: str | os.PathLike | None, overrides: list[str] = (), require_data: bool = True
) -> dict:
    """Defaults <- the YAML file (if any) <- ``key=value`` overrides; validated.
    Relative paths in the file are taken relative to the working directory.
    ``require_data=False`` (dry runs) accepts a config without ``data.root``."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{where}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        _merge(cfg, loaded)
        if cfg["name"] is None:
            cfg["name"] = path.stem
    for text in overrides:
        parts, value = parse_override(text)
        _merge(cfg, _nest(parts, value))
    if cfg["name"] is None:
        cfg["name"] = cfg["model"]["name"]
    _check_types(cfg)
    _check_values(cfg, require_data)
    return cfg


def run_dir(cfg: dict) -> Path:
    return Path(cfg["output_dir"]) / cfg["name"]


def split_path(cfg: dict) -> Path:
    """The split file: ``data.split`` or the run's own ``split.json`` (the
    split is a pure function of the subjects and the seed, so runs on the same
    data agree either way; pass data.split to share one file explicitly)."""
    return Path(cfg["data"]["split"]) if cfg["data"]["split"] else run_dir(cfg) / "split.json"


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
