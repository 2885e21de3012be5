"""``fmrecon evaluate``: score a model on a folder of k-space files."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from fmrecon.data import split as splits
from fmrecon.data.volumes import discover
from fmrecon.errors import ConfigError
from fmrecon.evaluation.evaluate import CONVENTIONS, Setting, evaluate_volumes, write_results
from fmrecon.physics.masks import MASK_KINDS, create_mask

HELP = "evaluate a reconstruction (zero-filled for now) on a data folder; write metric tables"

# masks whose centre is given as a fraction of W (fastMRI); the others have fixed ACS lines
FRACTION_KINDS = ("equispaced", "equispaced-fraction", "random")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model to evaluate: zero-filled")
    p.add_argument("--data", required=True, type=Path, help="folder (searched recursively) or file")
    p.add_argument(
        "--mask",
        default="cmrxrecon-uniform",
        help=f"mask kind: {', '.join(MASK_KINDS)} (default cmrxrecon-uniform)",
    )
    p.add_argument("--accelerations", type=float, nargs="+", default=[4, 8, 10])
    p.add_argument(
        "--center-fractions",
        type=float,
        nargs="+",
        default=None,
        help="fastMRI masks only: fractions of W sampled at the centre (e.g. 0.04 0.08)",
    )
    p.add_argument("--num-acs", type=int, default=None, help="ACS lines of CMRxRecon masks")
    p.add_argument(
        "--official-masks",
        action="store_true",
        help="CMRxRecon: use the challenge's mask files next to the data instead of generating",
    )
    p.add_argument("--convention", choices=CONVENTIONS, default="fastmri")
    p.add_argument("--split", type=Path, help="split JSON file (from fmrecon or hand-written)")
    p.add_argument("--split-name", default="test", help="part of the split to evaluate")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no per-file progress lines")


def build_settings(args) -> list[Setting]:
    kind = args.mask
    if kind in FRACTION_KINDS:
        if not args.center_fractions:
            raise ConfigError(f"--mask {kind} needs --center-fractions (e.g. 0.08 or 0.04 0.08)")
        fractions = args.center_fractions
    else:
        if args.center_fractions:
            raise ConfigError(
                f"--center-fractions applies to fastMRI masks ({', '.join(FRACTION_KINDS)}), "
                f"not to {kind}; use --num-acs"
            )
        fractions = [None]
    settings = []
    for acc, cf in itertools.product(args.accelerations, fractions):
        mask_func = create_mask(kind, acc, center_fraction=cf, num_acs=args.num_acs)
        settings.append(Setting(kind, acc, cf, mask_func, official_masks=args.official_masks))
    return settings


def run(args) -> int:
    if args.model != "zero-filled":
        raise ConfigError(f"unknown model '{args.model}' (available: zero-filled)")
    from fmrecon.models import ZeroFilled

    settings = build_settings(args)
    volumes, skipped = discover(args.data)
    if args.split is not None:
        volumes = splits.select(volumes, splits.load_split(args.split), args.split_name)
    full = [v for v in volumes if v.fully_sampled]
    n_sub = len(volumes) - len(full)
    if not full:
        raise ConfigError(
            f"{args.data}: none of the {len(volumes)} k-space files is fully sampled; "
            "evaluation needs ground truth (kspace_full or fastMRI kspace)"
        )
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    log(
        f"evaluating {len(full)} files ({len(skipped)} mask/other files and "
        f"{n_sub} undersampled files without ground truth skipped)"
    )
    rows = evaluate_volumes(
        ZeroFilled(),
        args.model,
        full,
        settings,
        convention=args.convention,
        num_workers=args.workers,
        progress=log,
    )
    note = f"Convention: {args.convention}; mask: {args.mask}; data: {args.data}"
    write_results(args.out, rows, header_note=note)
    print((args.out / "summary.md").read_text(), end="")
    print(f"wrote {args.out / 'metrics.csv'}, summary.json, summary.md")
    return 0
