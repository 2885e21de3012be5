"""``fmrecon models``: the registered models with their parameter counts."""

from __future__ import annotations

import argparse
import json

HELP = "list the registered models with total and trainable parameter counts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _m(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}M"


def run(args) -> int:
    from fmrecon.models.registry import MODELS, describe

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
