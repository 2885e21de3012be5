"""One module per CLI verb (see fmrecon.cli)."""

from __future__ import annotations

import argparse

from fmrecon.utils import COMPILE_MODES, PRECISIONS


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """``--precision``, ``--tf32`` and ``--compile``, the same for every verb that
    runs a model."""
    p.add_argument(
        "--precision", choices=PRECISIONS, default="32", help="32 = fp32, bf16 = bf16 autocast"
    )
    p.add_argument(
        "--tf32",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="TF32 for fp32 matmuls and convolutions on Ampere+ GPUs (default off: fp32 is "
        "fp32, as the training default trainer.tf32: false)",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=COMPILE_MODES,
        metavar="MODE",
        help="torch.compile the models (inductor; MODE default, reduce-overhead, "
        "max-autotune, max-autotune-no-cudagraphs); the compile time is reported apart, "
        "compiled graphs are cached in TORCHINDUCTOR_CACHE_DIR (~/.cache/fmrecon/inductor)",
    )


def add_model_options_argument(p: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE ...``: options of the models built by name (no checkpoint)."""
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="constructor options of the models given by --model without a checkpoint, e.g. "
        "the classical models' lamda=0.02 max_iter=30 (each option goes to every such model "
        "that takes it; one no model takes is an error)",
    )


def parse_model_options(texts: list[str]) -> dict:
    """``["lamda=0.02", ...]`` -> ``{"lamda": 0.02, ...}`` (YAML values)."""
    from fmrecon.errors import ConfigError
    from fmrecon.training.config import parse_override

    out = {}
    for text in texts:
        parts, value = parse_override(text) if "=" in text else ([], None)
        if len(parts) != 1 or not parts[0]:
            raise ConfigError(f"--set {text}: expected OPTION=VALUE (a model option name)")
        out[parts[0]] = value
    return out


def options_for(names: list[str], options: dict) -> dict[str, dict]:
    """For each model name, the ``options`` its constructor takes; an option that
    none of them takes is a one-line error naming what each takes."""
    from fmrecon.errors import ConfigError
    from fmrecon.models.registry import get_spec, model_options

    takes = {n: model_options(get_spec(n).family) for n in names}
    unused = [k for k in options if not any(k in t for t in takes.values())]
    if unused:
        which = "; ".join(f"{n}: {', '.join(t) or 'none'}" for n, t in takes.items()) or "none"
        raise ConfigError(f"--set {unused[0]}: no model built by name takes it (options: {which})")
    return {n: {k: v for k, v in options.items() if k in takes[n]} for n in names}
