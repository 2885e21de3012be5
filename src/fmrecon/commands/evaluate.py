"""``fmrecon evaluate``: score models on a folder of k-space files.

``--model zero-filled sense cs-wavelet`` scores the baselines that need no
training (models without trainable parameters, one row each);
``--checkpoint A B`` scores trained models (fmrecon checkpoints; with
``--model e2e-varnet`` also fastMRI's published VarNet state dicts), all in
one pass over the data and one combined table; ``--model zero-filled sense
--checkpoint A B`` puts the baselines first. Figures (one PNG per setting,
rows = models) go to ``OUT/figures``; ``OUT/report.html`` puts the tables,
the per-file metric distributions and the figures on one self-contained page
(:mod:`fmrecon.evaluation.report`). On a terminal a progress bar on stderr
counts the images and files and gives the ETA (none under ``--quiet``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fmrecon.commands import (
    add_model_options_argument,
    add_precision_arguments,
    options_for,
    parse_model_options,
)
from fmrecon.data import split as splits
from fmrecon.data.formats import discover
from fmrecon.data.resize import METHODS, KspaceResize, check_official_masks, parse_image_size
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError
from fmrecon.evaluation.evaluate import (
    CONVENTIONS,
    EvalModel,
    FigurePick,
    Setting,
    evaluate_models,
    scored_items,
    weights_label,
)
from fmrecon.evaluation.report import REPORT_NAME, write_report
from fmrecon.evaluation.tables import RANDOM_ENCODER, write_results
from fmrecon.metrics import CONVENTION_HELP
from fmrecon.physics.masks import MASK_KINDS, mask_grid
from fmrecon.utils import (
    compile_cache_dir,
    compile_options,
    compile_seconds,
    resolve_device,
    set_tf32,
)

HELP = "evaluate trained checkpoints and/or baselines (zero-filled, SENSE, CS) on a data folder"

ZERO_FILLED = "zero-filled"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    _data_arguments(p)
    _run_arguments(p)
    _figure_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (shown on a terminal) and no per-file progress lines",
    )
    p.add_argument(
        "--preset",
        type=Path,
        help="YAML of evaluation options (mask, accelerations, center_fractions, convention, "
        "model: baselines, ...), e.g. configs/paper/evaluation/arxiv2026-crossdomain.yaml; "
        "options given on the command line win",
    )


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        nargs="+",
        default=None,
        metavar="NAME",
        help="baselines without trained weights, one row each before the checkpoints "
        "(zero-filled, sense, cs-wavelet), and/or the one registry name every checkpoint "
        "must hold (e2e-varnet also reads fastMRI's VarNet state dicts)",
    )
    p.add_argument(
        "--checkpoint",
        nargs="+",
        type=Path,
        default=None,
        metavar="CKPT",
        help="one or more trained checkpoints, evaluated into one combined table",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        default=None,
        help="row labels of the checkpoints (default: the model's registry name, "
        "made unique with the checkpoint's file name)",
    )
    add_model_options_argument(p)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    """What is evaluated: data, masks, scoring convention, image size."""
    p.add_argument("--data", required=True, type=Path, help="folder (searched recursively) or file")
    p.add_argument(
        "--mask",
        default="cmrxrecon-uniform",
        help=f"mask kind: {', '.join(MASK_KINDS)} (default cmrxrecon-uniform)",
    )
    p.add_argument(
        "--accelerations", type=float, nargs="+", default=[4, 8, 10], help="default: 4 8 10"
    )
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
        action=argparse.BooleanOptionalAction,
        default=False,
        help="CMRxRecon: use the challenge's mask files next to the data instead of generating "
        "(--no-official-masks: generate, also over a preset's official_masks: true)",
    )
    p.add_argument(
        "--convention",
        default="fastmri",
        metavar="NAME",
        help="scoring convention (default fastmri): "
        + "; ".join(f"{name} = {text}" for name, text in CONVENTION_HELP.items()),
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="bring each slice to H x W before masking, as training's data.image_size "
        "(MIDL 2025: 224 224); masks are generated at that size (not with --official-masks)",
    )
    p.add_argument(
        "--image-resize",
        choices=METHODS,
        default="kspace",
        help="with --image-size: kspace = central k-space (same FOV, lower resolution), "
        "crop = centre crop of the coil images (default kspace)",
    )
    p.add_argument(
        "--readout-oversampling",
        type=int,
        default=1,
        metavar="F",
        help="remove F x readout oversampling first (CMRxRecon raw k-space: 2); default 1",
    )
    p.add_argument("--split", type=Path, help="split JSON file (from fmrecon or hand-written)")
    p.add_argument("--split-name", default="test", help="part of the split to evaluate")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """How the models run."""
    p.add_argument(
        "--workers", type=int, default=0, help="data loader worker processes (default: 0)"
    )
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="slices of one file reconstructed together (batches never mix files; default: 1)",
    )
    add_precision_arguments(p)


def _figure_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-figures", action="store_true", help="do not write OUT/figures/*.png")
    p.add_argument(
        "--figure-file",
        default=None,
        help="file shown in the figures: its name, or the end of its path "
        "(e.g. P002/cine_sax.mat); default the first file evaluated",
    )
    p.add_argument(
        "--figure-slice", type=int, default=None, help="slice shown (default: the middle one)"
    )
    p.add_argument(
        "--figure-frame", type=int, default=None, help="frame shown (default: the first)"
    )
    p.add_argument(
        "--error-scale", type=float, default=5.0, help="error maps magnified this much (x5)"
    )


# options a preset may set (paths to data, outputs and checkpoints stay on the command line)
PRESETTABLE = (
    "mask", "accelerations", "center_fractions", "num_acs", "official_masks", "convention",
    "split_name", "batch_size", "precision", "error_scale", "image_size", "image_resize",
    "readout_oversampling", "model", "tf32",
)  # fmt: skip


def preset_defaults(parser: argparse.ArgumentParser, args) -> dict:
    """The options of ``--preset`` as defaults of the parse (fmrecon.cli.Parser
    parses again with them): an option given on the command line wins, also
    when it equals the built-in default."""
    return {} if args.preset is None else read_preset(parser, args.preset)


def read_preset(parser: argparse.ArgumentParser, path: Path) -> dict:
    """``{dest: value}`` of a preset YAML file, each value checked as the
    command line's value of that option would be (type, choices, count)."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"--preset {path}: file not found")
    try:
        preset = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"--preset {path}: not valid YAML") from None
    if not isinstance(preset, dict):
        raise ConfigError(f"--preset {path}: the top level must be a mapping of options")
    actions = {a.dest: a for a in parser._actions}
    out = {}
    for key, value in preset.items():
        dest = str(key).replace("-", "_")
        if dest not in PRESETTABLE:
            raise ConfigError(
                f"--preset {path}: unknown option '{key}' (allowed: {', '.join(PRESETTABLE)})"
            )
        try:
            out[dest] = _option_value(actions[dest], value)
        except ValueError as err:
            raise ConfigError(f"--preset {path}: option '{key}' {err}, got {value!r}") from None
    return out


def _option_value(action: argparse.Action, value):
    """``value`` (from YAML) as the command line would give it to ``action``;
    ValueError saying what the option takes."""
    if value is None:
        if action.default is not None:
            raise ValueError("needs a value")
        return None
    if action.nargs == 0:  # a switch (--official-masks / --no-official-masks)
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if action.nargs is None:
        return _one_value(action, value)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(action.nargs, int) and len(items) != action.nargs:
        raise ValueError(f"must be a list of {action.nargs} values")
    if not items:
        raise ValueError("must be a non-empty list")
    return [_one_value(action, v) for v in items]


def _one_value(action: argparse.Action, value):
    """One value through the option's type and choices, as argparse converts
    the command line's text (YAML's true/false are refused: no option here is
    a yes/no value)."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a name, not true/false")
    if not isinstance(value, (str, int, float)):
        raise ValueError("must be a single value")
    kind = action.type or str
    try:
        converted = kind(str(value))
    except (TypeError, ValueError):
        raise ValueError(f"must be {getattr(kind, '__name__', kind)}") from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
    return converted


def option_name(args, dest: str) -> str:
    """How a message names an option: its flag, or the preset key it came from."""
    if dest in (getattr(args, "from_preset", None) or ()):
        return f"--preset {args.preset}: {dest}"
    return "--" + dest.replace("_", "-")


def build_settings(args) -> list[Setting]:
    grid = mask_grid(
        args.mask,
        args.accelerations,
        args.center_fractions,
        args.num_acs,
        option_name(args, "center_fractions"),
    )
    return [
        Setting(args.mask, acc, cf, func, official_masks=args.official_masks)
        for acc, cf, func in grid
    ]


def split_models(names) -> tuple[list[str], str | None]:
    """``--model`` names -> (baselines: models without trainable parameters, one
    row each; the one trained model name the checkpoints must hold, or None)."""
    from fmrecon.models.registry import get_spec, needs_training

    baselines: list[str] = []
    trained: list[str] = []
    for name in names or []:
        get_spec(name)  # "unknown model 'x' (available: ...)"
        (trained if needs_training(name) else baselines).append(name)
    dup = sorted({n for n in baselines if baselines.count(n) > 1})
    if dup:
        raise ConfigError(f"--model: {', '.join(dup)} given more than once")
    if len(trained) > 1:
        raise ConfigError(
            f"--model: one trained model name at most (the checkpoints' model), "
            f"got {', '.join(trained)}"
        )
    return baselines, (trained[0] if trained else None)


def _check_model_args(args) -> None:
    """Fail fast on a bad --model / --checkpoint / --labels combination or --convention."""
    if args.convention not in CONVENTIONS:  # from the command line or a preset
        raise ConfigError(
            f"{option_name(args, 'convention')}: unknown convention '{args.convention}' "
            f"(choose from {', '.join(CONVENTIONS)})"
        )

    if not args.model and not args.checkpoint:
        raise ConfigError(
            "give --checkpoint CKPT [CKPT ...] and/or --model zero-filled / sense / cs-wavelet"
        )
    _, trained = split_models(args.model)
    if trained is not None and not args.checkpoint:
        raise ConfigError(
            f"--model {trained} needs --checkpoint (trained weights); only models without "
            "trainable parameters (zero-filled, sense, cs-wavelet) run without one"
        )
    if args.labels is not None:
        if not args.checkpoint:
            raise ConfigError("--labels names checkpoints: give --checkpoint too")
        if len(args.labels) != len(args.checkpoint):
            raise ConfigError(
                f"--labels has {len(args.labels)} names for {len(args.checkpoint)} checkpoints"
            )
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.error_scale <= 0:
        raise ConfigError(f"--error-scale must be > 0, got {args.error_scale}")


def load_checkpoint(path: Path, model_name: str | None, device: torch.device):
    """A model from ``path`` (an fmrecon checkpoint, or with ``model_name ==
    "e2e-varnet"`` a fastMRI VarNet state dict of any size)."""
    from fmrecon.models.io import load_model

    return load_model(path, model_name=model_name, map_location=device)


def build_models(args, device: torch.device, log) -> list[EvalModel]:
    """The rows of the table: the baselines first (in the order given), then the
    checkpoints in the order given, with unique labels."""
    from fmrecon.models.registry import create_model

    baselines, want = split_models(args.model)
    options = options_for(baselines, parse_model_options(getattr(args, "set", None) or []))
    entries: list[EvalModel] = []
    for name in baselines:  # zero-filled: None, the engine's shared zero-filled image
        opts = options[name]
        # a row built with options says so in its label: (lamda=0.02, max_iter=30)
        label = f"{name} ({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else name
        model = None if name == ZERO_FILLED else create_model(name, **opts)
        entries.append(EvalModel(label, model))
    paths = list(args.checkpoint or [])
    loaded = [load_checkpoint(p, want, device) for p in paths]
    names = [m.record.name for m in loaded]
    if args.labels is not None:
        labels = list(args.labels)
    else:
        # registry name; a name held by several checkpoints gets the file stem appended
        labels = [
            f"{n} ({p.stem})" if names.count(n) > 1 or n in baselines else n
            for n, p in zip(names, paths, strict=True)
        ]
        for i, lab in enumerate(labels):  # same stems too: number them
            if labels.count(lab) > 1:
                labels[i] = f"{lab} #{labels[:i].count(lab) + 1}"
    taken = [e.label for e in entries] + labels
    dup = sorted({x for x in taken if taken.count(x) > 1})
    if dup:
        raise ConfigError(f"row labels must be unique: {', '.join(dup)} given more than once")
    for model, label, path in zip(loaded, labels, paths, strict=True):
        weights = weights_label(model)
        entries.append(EvalModel(label, model, weights, str(path)))
        log(f"{label}: {model.record.name} from {path} ({weights})")
        if weights == RANDOM_ENCODER:
            # always shown, even with --quiet: these numbers do not measure the method
            print(
                f"fmrecon evaluate: warning: {label} ({path}) has a random-init encoder "
                "(never pretrained): its numbers do not measure the foundation-model method",
                file=sys.stderr,
            )
    return entries


def pick_figure(args, volumes: list[VolumeInfo]) -> FigurePick:
    """The image the figures show: ``--figure-file`` (default the first file),
    ``--figure-frame`` (default its first scored frame), ``--figure-slice``
    (default the middle one of its scored slices: the centre slice)."""
    if args.figure_file is None:
        info = volumes[0]
    else:
        name = args.figure_file
        match = [v for v in volumes if v.path.name == name or str(v.path).endswith(name)]
        if not match:
            raise ConfigError(f"--figure-file {name}: not among the {len(volumes)} files evaluated")
        info = match[0]
    pairs = scored_items(info, args.convention)
    frames = sorted({t for t, _ in pairs})
    slices = sorted({z for _, z in pairs})
    frame = frames[0] if args.figure_frame is None else args.figure_frame
    slc = slices[len(slices) // 2] if args.figure_slice is None else args.figure_slice
    if not 0 <= slc < info.n_slices:
        raise ConfigError(f"--figure-slice {slc}: {info.path} has slices 0..{info.n_slices - 1}")
    if not 0 <= frame < info.n_frames:
        raise ConfigError(f"--figure-frame {frame}: {info.path} has frames 0..{info.n_frames - 1}")
    return FigurePick(info.path, frame, slc)


def build_resize(args) -> KspaceResize | None:
    """The k-space transform of --image-size / --image-resize / --readout-oversampling."""
    size = parse_image_size(args.image_size, "--image-size")
    resize = KspaceResize(size, args.image_resize, args.readout_oversampling)
    check_official_masks(resize, args.official_masks, "--image-size/--readout-oversampling")
    return resize if resize.active else None


def run(args) -> int:
    _check_model_args(args)
    settings = build_settings(args)
    resize = build_resize(args)
    volumes, skipped = discover(args.data)
    if args.split is not None:
        volumes = splits.select(volumes, splits.load_split(args.split), args.split_name)
    full = [v for v in volumes if v.fully_sampled]
    n_sub = len(volumes) - len(full)
    if not full:
        raise ConfigError(
            f"{args.data}: none of the {len(volumes)} k-space files is fully sampled; "
            "evaluation needs ground truth (kspace_full, fastMRI kspace or fully sampled raw data)"
        )
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    device = resolve_device(args.device)
    set_tf32(args.tf32)
    figure = None if args.no_figures else pick_figure(args, full)
    models = build_models(args, device, log)
    log(
        f"evaluating {len(full)} files ({len(skipped)} mask/other files and "
        f"{n_sub} undersampled files without ground truth skipped)"
    )
    if resize is not None:
        log(
            f"image size: {resize.describe()} before masking; targets are the RSS of the "
            f"transformed coil images; masks: {args.mask} generated at that size"
        )
    compiling = compile_seconds()
    rows, captures = evaluate_models(
        models,
        full,
        settings,
        convention=args.convention,
        device=device,
        num_workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        progress=log,
        figure=figure,
        resize=resize,
        show_progress=not args.quiet,
        compile=compile_options(args.compile, "--compile"),
    )
    compiled = compile_seconds() - compiling
    note = f"Convention: {args.convention}; mask: {args.mask}; data: {args.data}"
    if resize is not None:
        note += f"; image size: {resize.describe()} (masks generated at that size)"
    trained = [m for m in models if m.model is not None]
    if trained:
        note += "\n\nModels: " + "; ".join(
            f"{m.label} = {m.checkpoint or 'no training'} ({m.weights})" for m in trained
        )
        tf32 = "on" if args.tf32 else "off"
        note += f". Device {device.type}, precision {args.precision}, TF32 {tf32}"
        if args.compile:  # the compile time apart from the reconstruction times
            note += f", torch.compile {args.compile} ({compiled:.1f} s compiling)"
            log(f"torch.compile ({args.compile}): {compiled:.1f} s compiling, cache in "
                f"{compile_cache_dir()}")  # fmt: skip
        note += "."
        for m in trained:
            if m.weights == RANDOM_ENCODER:
                note += (
                    f"\n\n**Warning**: {m.label} has a random-init encoder (never pretrained); "
                    "its numbers do not measure the foundation-model method."
                )
    summary = write_results(args.out, rows, header_note=note)
    written = f"wrote {args.out / 'metrics.csv'}, summary.json, summary.md"
    paths = []
    if captures:
        from fmrecon.evaluation.figures import write_figures

        # rows = the models; zero-filled has its own column, so it gets a row only when alone
        shown = trained or models
        labels = {
            m.label: m.label + (" (random-init encoder)" if m.weights == RANDOM_ENCODER else "")
            for m in shown
        }
        paths = write_figures(args.out / "figures", captures, labels, args.error_scale)
        written += f", figures/ ({len(paths)} PNG)"
    write_report(args.out, rows, summary, note, paths)
    written += f", {REPORT_NAME}"
    print((args.out / "summary.md").read_text(), end="")
    print(written)
    return 0
