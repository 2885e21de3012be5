"""``fmrecon models``: the registered models with their parameter counts;
``--set KEY=VALUE`` counts them with model options (e.g. the encoder
fine-tuning ``encoder_lora_rank=8`` or ``encoder_unfreeze_last=2``: only the
models taking those options are listed, with the change against their
defaults); ``--memory HxW [MODEL ...]`` gives the estimated peak GPU memory of
the models named (default FM-VarNet and E2E-VarNet) at that size for every
option (:mod:`fmrecon.models.memory`)."""

from __future__ import annotations

import argparse
import json

from fmrecon.commands import parse_model_options

HELP = "list the registered models with total and trainable parameter counts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="MODEL", help="only these models (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument(
        "--memory",
        nargs="+",
        metavar="HxW",
        help="estimate peak GPU memory (batch 1) at these sizes for fp32/bf16, checkpointing "
        "on/off, training/inference, of the models named (before or after the sizes; default "
        "fm-varnet-clip and e2e-varnet; measured on a one-cascade CPU probe: a few seconds "
        "per row)",
    )
    p.add_argument("--coils", type=int, default=10, help="coil count for --memory (default 10)")
    p.add_argument(
        "--ddp",
        action="store_true",
        help="--memory: training per GPU of a multi-GPU (DDP) run: adds DDP's gradient buckets "
        "(4 bytes per trainable parameter); NCCL's own buffers are not modelled",
    )
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="model options to count with, as in a config's model.options (e.g. "
        "encoder_lora_rank=8, encoder_unfreeze_last=2); lists only the models taking them; "
        "with --memory: the options of every model estimated",
    )


def _m(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}M"


def _memory(args) -> int:
    import sys

    from fmrecon.models.memory import format_table, memory_table, parse_size
    from fmrecon.models.registry import MODELS, get_spec

    # `--memory 64x48 e2e-varnet`: argparse gives the model name to --memory too;
    # a registered name is a model, anything else must be a size, checked before any
    # measurement
    names = [get_spec(n).name for n in getattr(args, "names", None) or []]
    names += [text for text in args.memory if text in MODELS]
    sizes = [parse_size(text) for text in args.memory if text not in MODELS]
    if not sizes:
        from fmrecon.errors import ConfigError

        raise ConfigError("--memory needs at least one size HxW (e.g. 218x180)")
    models = tuple(dict.fromkeys(names)) or ("fm-varnet-clip", "e2e-varnet")
    print(f"measuring {', '.join(models)} at {len(sizes)} size(s) on the CPU ...", file=sys.stderr)
    options = parse_model_options(getattr(args, "set", None) or [])  # --set counts here too
    rows = memory_table(
        sizes=sizes, coils=args.coils, models=models, ddp=args.ddp, model_options=options or None
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(rows))
    print(
        "\nGB = estimated peak on the card at batch 1 (Adam for training), including ~0.6 GB "
        "of CUDA context and workspaces; activ. = held for backward, trans. = temporaries. "
        + (
            "Training rows per GPU of a DDP run: + DDP's gradient buckets (4 bytes per "
            "trainable parameter), NCCL buffers not included. "
            if args.ddp
            else ""
        )
        + "Method and accuracy: fmrecon.models.memory."
    )
    return 0


def _rows(options: dict, only: list[str]) -> list[dict]:
    """describe() of the models ``only`` (if empty: every model taking ``options``)
    with ``options`` applied; with options, ``trainable_change`` is the change to
    the model's defaults."""
    from fmrecon.errors import ConfigError
    from fmrecon.models.registry import MODELS, describe, get_spec, model_options

    # models named: each must take the options (create_model says which it does not)
    names = [get_spec(n).name for n in only] or [
        n for n, spec in MODELS.items() if set(options) <= set(model_options(spec.family))
    ]
    if not names:
        raise ConfigError(f"no registered model takes the option(s) {', '.join(options)}")
    rows = []
    for name in names:
        row = describe(name, **options)
        if options:
            row["options"] = dict(options)
            row["trainable_change"] = row["trainable_params"] - describe(name)["trainable_params"]
        rows.append(row)
    return rows


def run(args) -> int:
    if getattr(args, "memory", None):
        return _memory(args)

    options = parse_model_options(getattr(args, "set", None) or [])
    rows = _rows(options, list(getattr(args, "names", None) or []))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("model", "trainable", "total", "paper (trainable)", "description")
    if options:
        head = ("model", "trainable", "change", "total", "paper (trainable)", "description")
    table = [
        (
            r["name"],
            _m(r["trainable_params"]),
            *([f"+{r['trainable_change']:,}"] if options else []),
            _m(r["total_params"]),
            f"{_m(r['paper_trainable_params'])} {r['paper']}".strip() if r["paper"] else "-",
            r["description"],
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in [head, *table]) for i in range(len(head) - 1)]
    for row in [head, *table]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]))
    if not options:
        print(
            "\nCounts are for the full-size architectures; encoders are frozen (trainable "
            "excludes them) and only the blocks a model uses are built."
        )
        return 0
    given = ", ".join(f"{k}={v}" for k, v in options.items())
    print(
        f"\nCounts are for the full-size architectures with {given}; only the blocks a model "
        "uses are built. Trainable includes what the options train (encoder adapters, unfrozen "
        "blocks); change = trainable parameters added to the model's defaults."
    )
    return 0
