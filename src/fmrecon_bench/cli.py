"""``fmrecon-bench`` / ``python -m fmrecon_bench``: speed and peak memory of
the models (fp32 / bf16 autocast, with / without activation checkpointing)
and the performance goals, as a table and, with ``--json``, a
machine-readable file.

JSON layout (``schema`` "fmrecon-bench/1"): ``settings`` (what ran), ``machine``
(CPU, cores, memory, bf16 support, versions, matmul calibration at start and
end), ``rows`` (one per model, size, precision and checkpointing: ``infer_s``,
``train_s`` medians with all ``*_times``, ``infer_flop`` / ``infer_gflops_per_s`` /
``infer_matmul_fraction`` (the inference's FLOPs, achieved rate and its fraction
of the matmul rate at the start), ``infer_mem_mb`` / ``train_mem_mb``
peak above the built model, ``*_peak_mb`` absolute, ``mem_base_mb``,
``mem_method``, parameter counts), ``goals`` (``id``, ``goal``, ``figure``,
``target``, ``met``, ``unit``, ``note``, ``detail``), ``memory_estimate``
(goal 7's table), ``extras`` (raw goal measurements) and ``errors``.

Bad input ends with one line ``fmrecon-bench: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from fmrecon.errors import ConfigError, FmreconError
from fmrecon.utils import COMPILE_MODES, compile_options
from fmrecon_bench.config import GOALS, MODELS, PRECISIONS, BenchConfig, parse_size
from fmrecon_bench.report import format_report, write_json
from fmrecon_bench.run import run_bench

PROG = "fmrecon-bench"
HELP = "benchmark speed and memory of the models and report the performance goals"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=HELP)
    p.add_argument(
        "--quick",
        action="store_true",
        help="small images (64x48; goal 1 at 128x96), 1 repeat after 1 warm-up, E2E-VarNet "
        "and FM-VarNet with 3 cascades: the same report in about 3 minutes on 2 cores",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument(
        "--models", nargs="+", metavar="M",
        help=f"registered model names (default: {' '.join(MODELS)})",
    )  # fmt: skip
    p.add_argument(
        "--sizes", nargs="+", metavar="HxW",
        help="image sizes, H readout x W phase encode (default 218x180 246x512; the "
        "largest is the cine-like size of goals 4 and 6)",
    )  # fmt: skip
    p.add_argument("--coils", type=int, default=10, metavar="N", help="coils (default 10)")
    p.add_argument("--repeats", type=int, metavar="N", help="timed repeats (default 3; quick 1)")
    p.add_argument(
        "--warmup", type=int, metavar="N", help="untimed calls before timing (default 1; quick 1)"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--precisions", nargs="+", choices=PRECISIONS, metavar="P",
        help="fp32 and/or bf16 (autocast) (default both)",
    )  # fmt: skip
    p.add_argument(
        "--goals", nargs="+", metavar="G",
        help=f"goals to measure: {' '.join(map(str, GOALS))} or none (default all)",
    )  # fmt: skip
    p.add_argument(
        "--eval-checkpoint", metavar="CKPT",
        help="goal 3: evaluate this trained checkpoint in fp32 and bf16 (default: the "
        "FM-VarNet with random weights after a few fp32 training steps)",
    )  # fmt: skip
    p.add_argument(
        "--tf32", action=argparse.BooleanOptionalAction, default=False,
        help="TF32 for fp32 matmuls and convolutions on Ampere+ GPUs (default off: the fp32 "
        "rows and baselines are fp32)",
    )  # fmt: skip
    p.add_argument(
        "--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES,
        metavar="MODE",
        help="torch.compile every model (fmrecon's option, inductor; MODE default, "
        "reduce-overhead, max-autotune, max-autotune-no-cudagraphs): compiled in the warm-up, "
        "the compile time in its own column; graphs cached in TORCHINDUCTOR_CACHE_DIR",
    )  # fmt: skip
    p.add_argument(
        "--profile", action="store_true",
        help="where the time goes: E2E-VarNet's and FM-VarNet's inference split into "
        "components (sensitivity net, encoder, decoder, preprocess / resize, FFT / SENSE / DC, "
        "output RSS) with time share and GFLOP/s, at the first size",
    )  # fmt: skip
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's)")
    p.add_argument(
        "--timeout", type=float, default=3600.0, metavar="S",
        help="limit per measurement process in seconds (default 3600)",
    )  # fmt: skip
    return p


def _goals(values: list[str] | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    if values == ["none"]:
        return ()
    try:
        goals = tuple(int(v) for v in values)
    except ValueError:
        raise ConfigError(f"--goals: expected numbers from {GOALS} or 'none'") from None
    if bad := [g for g in goals if g not in GOALS]:
        raise ConfigError(f"--goals: unknown goal {bad[0]} (goals are {GOALS})")
    return goals


def run(args: argparse.Namespace) -> int:
    cfg = BenchConfig.create(
        quick=args.quick,
        models=tuple(args.models) if args.models else None,
        sizes=tuple(parse_size(s) for s in args.sizes) if args.sizes else None,
        coils=args.coils,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        precisions=tuple(args.precisions) if args.precisions else None,
        goals=_goals(args.goals),
        threads=args.threads,
        timeout=args.timeout,
        eval_checkpoint=args.eval_checkpoint,
        tf32=args.tf32,
        compile=compile_options(args.compile, "--compile"),
        profile=args.profile,
    )
    result = run_bench(cfg)
    print(format_report(result))
    if args.json:
        write_json(result, args.json)
        print(f"\nwrote {args.json}")
    return 1 if result["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except FmreconError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
