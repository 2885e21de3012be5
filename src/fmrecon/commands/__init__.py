"""One module per CLI verb (see fmrecon.cli)."""

from __future__ import annotations

import argparse

from fmrecon.utils import PRECISIONS


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--tf32``, the same for every verb that runs a model."""
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
