"""``fmrecon simulate``: write synthetic multi-coil data in the real file formats
(CMRxRecon 2023 cine, CMRxRecon 2025 multi-center, fastMRI brain, ISMRMRD raw cine)
plus ``simulation.json`` with the parameters, so the readers, training and
evaluation can run end to end without the real data sets."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fmrecon import __version__
from fmrecon.data import simulate as sim
from fmrecon.data.h5io import atomic_path
from fmrecon.data.simulate import multicenter as sim25
from fmrecon.errors import ConfigError

HELP = (
    "write synthetic multi-coil data (CMRxRecon 2023 cine, CMRxRecon 2025 multi-center, "
    "fastMRI brain, ISMRMRD raw cine)"
)

FORMATS = ("cmrxrecon", "cmrxrecon2025", "fastmri", "ismrmrd", "both", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--format",
        default="both",
        metavar="FMT",
        help="cmrxrecon (cine in MultiCoil/Cine/TrainingSet), cmrxrecon2025 (the 2025 layout: "
        "MultiCoil/{Modality}/TrainingSet/FullSample/{Center}/{Vendor}/P001, several simulated "
        "centers and scanners), fastmri (brain h5 in multicoil_val), ismrmrd (cine as raw "
        "scanner data in ismrmrd/FullSample, "
        "ismrmrd/AccFactorRR with --undersampled), both (cmrxrecon and fastmri, default) "
        "or all",
    )
    parser.add_argument(
        "--subjects",
        type=int,
        metavar="N",
        help=f"cardiac subjects / brain volumes (default {sim.CARDIAC_SUBJECTS} / "
        f"{sim.BRAIN_VOLUMES}); cmrxrecon2025: patients per scanner (default "
        f"{sim25.SUBJECTS_PER_SCANNER})",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    _geometry_arguments(parser)
    _acquisition_arguments(parser)


def _geometry_arguments(parser: argparse.ArgumentParser) -> None:
    """Matrix, slices, frames, coils."""
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="k-space matrix: cardiac (kx, ky; ismrmrd: the image matrix, the readout "
        "is recorded --readout-oversampling x longer), default "
        f"{sim.CARDIAC_SIZE[0]} {sim.CARDIAC_SIZE[1]}; cmrxrecon2025: the base matrix each "
        f"scanner scales (and oversamples), default {sim25.BASE_SIZE[0]} {sim25.BASE_SIZE[1]}; "
        "brain (H incl. 2x readout "
        f"oversampling, W), default {sim.BRAIN_SIZE[0]} {sim.BRAIN_SIZE[1]}",
    )
    parser.add_argument(
        "--slices",
        type=int,
        metavar="Z",
        help=f"short-axis slices / brain slices (default {sim.CARDIAC_SLICES} / "
        f"{sim.BRAIN_SLICES}; cmrxrecon2025 {sim25.SLICES})",
    )
    parser.add_argument(
        "--frames",
        type=int,
        metavar="T",
        help=f"cardiac frames (default {sim.CARDIAC_FRAMES}; cmrxrecon2025 {sim25.FRAMES})",
    )
    parser.add_argument(
        "--coils",
        type=int,
        metavar="C",
        help=f"receive coils (default {sim.CARDIAC_COILS} cardiac / {sim.BRAIN_COILS} brain; "
        "cmrxrecon2025: each scanner's own)",
    )
    parser.add_argument(
        "--centers",
        nargs="+",
        metavar="CENTER",
        help="cmrxrecon2025: the simulated centers to write (default all: "
        + ", ".join(dict.fromkeys(s.center for s in sim25.SCANNERS))
        + ")",
    )
    parser.add_argument(
        "--modalities",
        nargs="+",
        metavar="M",
        help="cmrxrecon2025: modality folders to write, of "
        + ", ".join(sim25.MODALITIES)
        + f" (default {' '.join(sim25.DEFAULT_MODALITIES)})",
    )


def _acquisition_arguments(parser: argparse.ArgumentParser) -> None:
    """Undersampling, oversampling, noise, field of view, views."""
    parser.add_argument(
        "--accelerations",
        type=int,
        nargs="+",
        metavar="R",
        help="CMRxRecon AccFactor folders (official mask files) to write, and the "
        "accelerated ISMRMRD scans of --undersampled (default 4 8 10); cmrxrecon2025 with "
        "--undersampled: the R of the masks (default 8 16 24)",
    )
    parser.add_argument(
        "--undersampled",
        action="store_true",
        help="also write the undersampled k-space (kspace_subRR) beside each mask file, "
        "as in the challenge's AccFactor folders, and (ismrmrd) accelerated scans that "
        "acquire only every R-th line and 24 central lines (inputs for `fmrecon reconstruct`); "
        "cmrxrecon2025: the training masks (TrainingSet/Mask_TaskAll) and one more patient "
        "per scanner in the validation layout (TaskR1/.../UnderSample_TaskR1/..._kus_*.mat "
        "with Mask_TaskR1)",
    )
    parser.add_argument(
        "--readout-oversampling",
        type=int,
        default=2,
        metavar="F",
        help="ismrmrd: readout oversampling recorded (encoded x = F x recon x), 1 = none "
        "(default 2, as Siemens scanners record it)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=sim.NOISE,
        metavar="SIGMA",
        help="k-space noise std relative to the blood / white-matter image magnitude "
        f"(default {sim.NOISE})",
    )
    parser.add_argument(
        "--fov-fraction",
        type=float,
        default=1.0,
        metavar="F",
        help="brain: phase-encode field of view as a fraction of the simulated grid's: "
        "round(F W) lines of the same spacing in resolution, so a head wider than the field "
        "of view wraps around as in real scans (e.g. 0.6); default 1",
    )
    parser.add_argument(
        "--no-lax", action="store_true", help="write cine_sax.mat only (no cine_lax.mat)"
    )


def _pick(value, default):
    return default if value is None else value


def run(args: argparse.Namespace) -> int:
    fmt = str(args.format).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got '{args.format}'")
    if args.subjects is not None and args.subjects < 1:
        raise ConfigError(f"--subjects must be >= 1, got {args.subjects}")
    if args.noise < 0:
        raise ConfigError(f"--noise must be >= 0, got {args.noise}")
    if not 0.0 < args.fov_fraction <= 1.0:
        raise ConfigError(f"--fov-fraction must be in (0, 1], got {args.fov_fraction}")
    for name in ("slices", "frames", "coils"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be >= 1, got {value}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")

    start = time.perf_counter()
    nbytes = 0

    def report(path: Path) -> None:
        nonlocal nbytes
        size = path.stat().st_size
        nbytes += size
        print(f"wrote {path} ({size / 1e6:.1f} MB)", flush=True)

    record: dict = {
        "fmrecon_version": __version__,
        "seed": args.seed,
        "image_scale": sim.IMAGE_SCALE,
        "noise": args.noise,
        "formats": {},
    }
    summary = []
    if fmt in ("cmrxrecon", "both", "all"):
        summary.append(_simulate_cine(args, out, report, record))
    if fmt == "cmrxrecon2025":
        summary.append(_simulate_2025(args, out, report, record))
    if fmt in ("fastmri", "both", "all"):
        summary.append(_simulate_brain(args, out, report, record))

    if fmt in ("ismrmrd", "all"):
        summary.append(_simulate_raw(args, out, report, record))

    meta = out / "simulation.json"
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    elapsed = time.perf_counter() - start
    print(
        f"simulated {' and '.join(summary)}: {nbytes / 1e6:.1f} MB in {elapsed:.1f} s "
        f"under {out} (parameters in {meta.name})"
    )
    return 0


def _simulate_cine(args, out: Path, report, record: dict) -> str:
    """The CMRxRecon 2023 cine files; adds their parameters to ``record``."""
    params = {
        "n_subjects": _pick(args.subjects, sim.CARDIAC_SUBJECTS),
        "size": list(_pick(args.size, sim.CARDIAC_SIZE)),
        "n_slices": _pick(args.slices, sim.CARDIAC_SLICES),
        "n_frames": _pick(args.frames, sim.CARDIAC_FRAMES),
        "n_coils": _pick(args.coils, sim.CARDIAC_COILS),
        "accelerations": list(_pick(args.accelerations, sim.ACCELERATIONS)),
        "lax": not args.no_lax,
        "undersampled": args.undersampled,
    }
    paths = sim.simulate_cmrxrecon(out, seed=args.seed, noise=args.noise, progress=report, **params)
    record["formats"]["cmrxrecon"] = {
        **params,
        "lax_views": sim.LAX_VIEWS if params["lax"] else 0,
        "root": "MultiCoil/Cine/TrainingSet",
        "files": [p.relative_to(out).as_posix() for p in paths],
    }
    return f"{params['n_subjects']} cardiac subjects ({len(paths)} files)"


def _simulate_2025(args, out: Path, report, record: dict) -> str:
    """The CMRxRecon 2025 training layout; adds its parameters to ``record``."""
    scanners = sim25.pick_scanners(args.centers)
    params = {
        "n_subjects": _pick(args.subjects, sim25.SUBJECTS_PER_SCANNER),
        "centers": sorted({s.center for s in scanners}),
        "modalities": list(_pick(args.modalities, sim25.DEFAULT_MODALITIES)),
        "size": list(_pick(args.size, sim25.BASE_SIZE)),
        "n_slices": _pick(args.slices, sim25.SLICES),
        "n_frames": _pick(args.frames, sim25.FRAMES),
        "n_coils": args.coils,
        "lax": not args.no_lax,
        "undersampled": args.undersampled,
        "accelerations": list(_pick(args.accelerations, sim25.CMRXRECON25_ACCELERATIONS)),
    }
    paths = sim25.simulate_cmrxrecon2025(
        out, seed=args.seed, noise=args.noise, progress=report, **params
    )
    record["formats"]["cmrxrecon2025"] = {
        **params,
        "scanners": sim25.scanner_table(scanners),
        "mapping_weightings": sim25.MAPPING_WEIGHTINGS,
        "patterns": list(sim25.PATTERNS) if args.undersampled else [],
        "validation_task": sim25.TASK if args.undersampled else None,
        "root": "MultiCoil",
        "files": [p.relative_to(out).as_posix() for p in paths],
    }
    return (
        f"{params['n_subjects']} patients x {len(scanners)} scanners of "
        f"{len(params['centers'])} centers ({len(paths)} files)"
    )


def _simulate_brain(args, out: Path, report, record: dict) -> str:
    """The fastMRI brain files; adds their parameters to ``record``."""
    params = {
        "n_volumes": _pick(args.subjects, sim.BRAIN_VOLUMES),
        "size": list(_pick(args.size, sim.BRAIN_SIZE)),
        "n_slices": _pick(args.slices, sim.BRAIN_SLICES),
        "n_coils": _pick(args.coils, sim.BRAIN_COILS),
        "fov_fraction": args.fov_fraction,
    }
    paths = sim.simulate_fastmri_brain(
        out, seed=args.seed, noise=args.noise, progress=report, **params
    )
    record["formats"]["fastmri"] = {
        **params,
        "root": "multicoil_val",
        "files": [p.relative_to(out).as_posix() for p in paths],
    }
    return f"{params['n_volumes']} brain volumes ({len(paths)} files)"


def _simulate_raw(args, out: Path, report, record: dict) -> str:
    """The ISMRMRD cine scans; adds their parameters to ``record``."""
    if args.readout_oversampling < 1:
        raise ConfigError(f"--readout-oversampling must be >= 1, got {args.readout_oversampling}")
    params = {
        "n_subjects": _pick(args.subjects, sim.CARDIAC_SUBJECTS),
        "size": list(_pick(args.size, sim.CARDIAC_SIZE)),
        "n_slices": _pick(args.slices, sim.CARDIAC_SLICES),
        "n_frames": _pick(args.frames, sim.CARDIAC_FRAMES),
        "n_coils": _pick(args.coils, sim.CARDIAC_COILS),
        "oversampling": args.readout_oversampling,
        "accelerations": list(_pick(args.accelerations, sim.ACCELERATIONS))
        if args.undersampled
        else [],
    }
    paths = sim.simulate_ismrmrd(out, seed=args.seed, noise=args.noise, progress=report, **params)
    record["formats"]["ismrmrd"] = {
        **params,
        "noise_readouts": sim.NOISE_READOUTS,
        "root": "ismrmrd",
        "files": [p.relative_to(out).as_posix() for p in paths],
    }
    return f"{params['n_subjects']} raw cine scans ({len(paths)} ISMRMRD files)"
