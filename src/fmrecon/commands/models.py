"""``fmrecon models``: the registered models with their parameter counts;
``--memory HxW`` adds the estimated peak GPU memory of FM-VarNet and
E2E-VarNet at that size for every option (:mod:`fmrecon.models.memory`)."""

from __future__ import annotations

import argparse
import json

HELP = "list the registered models with total and trainable parameter counts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument(
        "--memory",
        nargs="+",
        metavar="HxW",
        help="estimate peak GPU memory (batch 1) of fm-varnet-clip and e2e-varnet at these "
        "sizes for fp32/bf16, checkpointing on/off, training/inference (measured on a "
        "one-cascade CPU probe: a few seconds per row)",
    )
    p.add_argument("--coils", type=int, default=10, help="coil count for --memory (default 10)")


def _m(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}M"


def _memory(args) -> int:
    import sys

    from fmrecon.models.memory import format_table, memory_table, parse_size

    sizes = [parse_size(text) for text in args.memory]
    print(f"measuring {12 * len(sizes)} settings on the CPU ...", file=sys.stderr)
    rows = memory_table(sizes=sizes, coils=args.coils)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(rows))
    print(
        "\nGB = estimated peak on the card at batch 1 (Adam for training), including ~0.6 GB "
        "of CUDA context and workspaces; activ. = held for backward, trans. = temporaries. "
        "Method and accuracy: fmrecon.models.memory."
    )
    return 0


def run(args) -> int:
    from fmrecon.models.registry import MODELS, describe

    if getattr(args, "memory", None):
        return _memory(args)

    rows = [describe(name) for name in MODELS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("model", "trainable", "total", "paper (trainable)", "description")
    table = [
        (
            r["name"],
            _m(r["trainable_params"]),
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
    print(
        "\nCounts are for the full-size architectures; encoders are frozen (trainable "
        "excludes them) and only the blocks a model uses are built."
    )
    return 0
