"""``fmrecon export``: write a trained model as a folder in the Hugging Face
hub's conventions (``model.safetensors``, ``config.json``, a model card
``README.md``), loadable with ``fmrecon.load_model(DIR)`` or, once uploaded
(``--push ORG/NAME``), ``fmrecon.load_model("hf:ORG/NAME")``; evaluate and
reconstruct take either as their checkpoint. Layout:
:func:`fmrecon.models.io.save_pretrained`; card: :mod:`fmrecon.models.card`."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmrecon import __version__
from fmrecon.errors import ConfigError

HELP = (
    "export a trained model as a hub-style folder (model.safetensors, config.json, model "
    "card); --push uploads it to the Hugging Face hub"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="fmrecon checkpoint (.ckpt), fastMRI VarNet state dict, exported folder or "
        "hf:ORG/NAME",
    )
    p.add_argument("out", type=Path, metavar="DIR", help="folder to write (created)")
    p.add_argument(
        "--model",
        metavar="NAME",
        help="model name; must match the checkpoint's (e2e-varnet for a fastMRI VarNet state dict)",
    )
    p.add_argument(
        "--metrics",
        type=Path,
        metavar="EVAL",
        help="an `fmrecon evaluate` output folder (or its summary.md): its table goes into "
        "the model card",
    )
    p.add_argument(
        "--encoder",
        choices=("auto", "weights", "reference"),
        default="auto",
        help="how a frozen foundation-model encoder is kept: reference = its hub source and "
        "SHA-256 (fetched and checked on load; not redistributed), weights = inside "
        "model.safetensors; auto = reference for pretrained encoders from the hub, weights "
        "for random-init or local ones (default: %(default)s)",
    )
    p.add_argument(
        "--push",
        metavar="ORG/NAME",
        help="upload the folder to this Hugging Face model repo (created if missing; needs "
        "`hf auth login`)",
    )
    p.add_argument("--private", action="store_true", help="with --push: a private repo")


def _metrics_table(path: Path | None) -> str | None:
    if path is None:
        return None
    md = path / "summary.md" if path.is_dir() else path
    if not md.is_file():
        raise ConfigError(f"--metrics {path}: no summary.md (give an `fmrecon evaluate` folder)")
    return md.read_text()


def _run_config(source: str) -> dict | None:
    """The training run's config stored in a Lightning checkpoint, if any."""
    from fmrecon.models.io import read_checkpoint

    if not Path(source).is_file():
        return None
    hyper = read_checkpoint(source).get("hyper_parameters") or {}
    run_config = hyper.get("run_config") if isinstance(hyper, dict) else None
    return run_config if isinstance(run_config, dict) else None


def run(args) -> int:
    from fmrecon.models.card import model_card
    from fmrecon.models.hub import push_to_hub
    from fmrecon.models.io import export_encoder_storage, load_model, save_pretrained
    from fmrecon.utils import count_parameters

    metrics = _metrics_table(args.metrics)
    model = load_model(args.checkpoint, model_name=args.model)
    storage = export_encoder_storage(model, args.encoder)
    record = model.record
    card = model_card(
        record,
        storage=storage,
        parameters=(count_parameters(model), count_parameters(model, trainable_only=True)),
        load_as=f"hf:{args.push}" if args.push else str(args.out),
        run_config=_run_config(args.checkpoint),
        metrics=metrics,
        source=Path(str(args.checkpoint)).name,
        version=__version__,
    )
    out = save_pretrained(
        model,
        args.out,
        encoder=storage,
        card=card,
        fmrecon_version=__version__,
        exported_from=Path(str(args.checkpoint)).name,  # no local path on the hub
    )
    size = (out / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {out}: model.safetensors ({size:.1f} MiB), config.json, README.md")
    if record.encoder_weights is not None:
        kept = (
            "by reference (fetched and checked on load)" if storage == "reference" else "as weights"
        )
        flag = " RANDOM-INIT" if record.random_encoder else ""
        print(f"encoder{flag} {record.encoder_weights}: kept {kept}")
    if args.push:
        url = push_to_hub(out, args.push, private=args.private)
        print(f"pushed to https://huggingface.co/{args.push} ({url})")
    return 0
