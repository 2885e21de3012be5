"""``fmrecon reconstruct``: reconstruct k-space files with a trained model and
write them in one or more ``--format``: CMRxRecon submissions (``img4ranking``
.mat), fastMRI ``reconstruction`` .h5 files, NIfTI volumes, DICOM series and
PNG previews (layouts: ``fmrecon.inference.reconstruct``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fmrecon.commands import (
    add_model_options_argument,
    add_precision_arguments,
    options_for,
    parse_model_options,
)
from fmrecon.errors import ConfigError
from fmrecon.inference.reconstruct import plan_jobs, reconstruct_files, summary_line
from fmrecon.inference.writers import (
    FORMAT_HELP,
    random_encoder,
    random_encoder_warning,
)
from fmrecon.physics.masks import MASK_KINDS, create_mask
from fmrecon.utils import (
    DEVICES,
    compile_cache_dir,
    compile_options,
    compile_seconds,
    resolve_device,
    set_tf32,
)

HELP = (
    "reconstruct k-space files with a model; write CMRxRecon submissions (.mat), "
    "fastMRI reconstructions (.h5), NIfTI, DICOM and previews"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="k-space files or folders (searched recursively; mask files are skipped)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="CKPT",
        help="fmrecon checkpoint (or fastMRI VarNet state dict with --model e2e-varnet); "
        "not needed (and refused) for models without trained weights",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="model name; must match the checkpoint's. Without --checkpoint: a model "
        "without trainable parameters (zero-filled, sense, cs-wavelet)",
    )
    add_model_options_argument(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument(
        "--mask",
        metavar="KIND",
        help="undersample fully sampled inputs with this mask: "
        f"{', '.join(MASK_KINDS)} (undersampled CMRxRecon files and fastMRI test files "
        "always use their own masks)",
    )
    p.add_argument("--acceleration", type=float, metavar="R", help="acceleration of --mask")
    p.add_argument(
        "--center-fraction",
        type=float,
        metavar="F",
        help="fastMRI masks: fraction of W sampled at the centre (e.g. 0.08)",
    )
    p.add_argument("--num-acs", type=int, metavar="N", help="ACS lines of CMRxRecon masks")
    p.add_argument(
        "--full-volume",
        action="store_true",
        help="CMRxRecon: the submission .mat holds every slice and frame uncropped instead of "
        "the ranking subset (nifti and dicom always hold the whole volume)",
    )
    p.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        action="extend",
        metavar="FMT",
        help="what to write for each input, several at once (--format mat nifti dicom after "
        "the inputs, or --format mat,nifti,dicom); default mat for CMRxRecon input, h5 for "
        "fastMRI input: " + "; ".join(f"{name} = {text}" for name, text in FORMAT_HELP.items()),
    )
    p.add_argument(
        "--png",
        action="store_true",
        help="add a preview PNG of the full field of view (same as adding png)",
    )
    p.add_argument(
        "--png-crop",
        action="store_true",
        help="the preview of CMRxRecon input shows the ranking crop (round(sx/3) x "
        "round(sy/2), what the challenge scores) instead of the full field of view",
    )
    p.add_argument("--batch-size", type=int, default=4, metavar="B", help="slices per batch")
    p.add_argument("--device", choices=DEVICES, default="auto", help="default: auto")
    add_precision_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_mask(args):
    """The mask function for fully sampled inputs, or None."""
    if args.mask is None:
        extra = [
            f"--{name.replace('_', '-')}"
            for name in ("acceleration", "center_fraction", "num_acs")
            if getattr(args, name) is not None
        ]
        if extra:
            raise ConfigError(f"{', '.join(extra)} given without --mask KIND")
        return None
    if args.acceleration is None:
        raise ConfigError(f"--mask {args.mask} needs --acceleration R")
    return create_mask(
        args.mask, args.acceleration, center_fraction=args.center_fraction, num_acs=args.num_acs
    )


def load(args):
    """The model from --checkpoint (and --model), in eval mode on the CPU; a
    model without trainable parameters (zero-filled, sense, cs-wavelet) is built
    by name and takes no checkpoint."""
    if args.checkpoint is None:
        from fmrecon.models.registry import create_model, get_spec, needs_training

        if args.model is not None and not needs_training(get_spec(args.model).name):
            name = get_spec(args.model).name
            options = options_for([name], parse_model_options(getattr(args, "set", None) or []))
            return create_model(name, **options[name])
        raise ConfigError(
            "--checkpoint CKPT is required (only models without trainable parameters run "
            "without: --model zero-filled, sense or cs-wavelet)"
        )
    if getattr(args, "set", None):
        raise ConfigError(
            f"--set {args.set[0]}: options apply to models built by name, not to a checkpoint's"
        )
    from fmrecon.models.io import load_model

    return load_model(args.checkpoint, model_name=args.model, map_location="cpu")


def run(args) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    set_tf32(args.tf32)
    mask_func = build_mask(args)
    # check every input (formats, masks, output paths) before loading the model
    jobs, skipped = plan_jobs(
        args.inputs,
        args.out,
        mask_func,
        args.full_volume,
        formats=args.formats,
        png=args.png,
        preview_crop=args.png_crop,
    )
    model = load(args)
    if random_encoder(model):
        print(f"fmrecon reconstruct: warning: {random_encoder_warning(model)}", file=sys.stderr)
    if not args.quiet:
        print(
            f"reconstructing {len(jobs)} files ({len(skipped)} mask/other files skipped) "
            f"on {device} ({args.precision}, TF32 {'on' if args.tf32 else 'off'})",
            file=sys.stderr,
        )
    start, compiling = time.perf_counter(), compile_seconds()
    written = reconstruct_files(
        model,
        out_dir=args.out,
        jobs=jobs,
        batch_size=args.batch_size,
        device=device,
        precision=args.precision,
        show_progress=not args.quiet,
        report=print,
        compile=compile_options(args.compile, "--compile"),
    )
    if args.compile:  # reported apart from the reconstruction time
        print(f"torch.compile ({args.compile}): {compile_seconds() - compiling:.1f} s compiling "
              f"(included below), cache in {compile_cache_dir()}", file=sys.stderr)  # fmt: skip
    print(summary_line(written, jobs, time.perf_counter() - start) + f" under {args.out}")
    return 0
