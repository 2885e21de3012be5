"""``fmrecon bench``: speed and peak memory of the models (fp32 / bf16 autocast,
with / without activation checkpointing) and the performance goals of issue 5,
as a table and, with ``--json``, a machine-readable file.

JSON layout (``schema`` "fmrecon-bench/1"): ``settings`` (what ran), ``machine``
(CPU, cores, memory, bf16 support, versions, matmul calibration at start and
end), ``rows`` (one per model, size, precision and checkpointing: ``infer_s``,
``train_s`` medians with all ``*_times``, ``infer_mem_mb`` / ``train_mem_mb``
peak above the built model, ``*_peak_mb`` absolute, ``mem_base_mb``,
``mem_method``, parameter counts), ``goals`` (``id``, ``goal``, ``figure``,
``target``, ``met``, ``unit``, ``note``, ``detail``), ``memory_estimate``
(goal 7's table), ``extras`` (raw goal measurements) and ``errors``.
"""

from __future__ import annotations

import argparse

HELP = "benchmark speed and memory of the models and report the performance goals"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fmrecon.perf.bench import GOALS, MODELS, PRECISIONS

    p.add_argument(
        "--quick",
        action="store_true",
        help="small images (64x48; goal 1 at 128x96), 1 repeat after 1 warm-up, E2E-VarNet "
        "and FM-VarNet with 3 cascades: the same report in about 3 minutes on 2 cores",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument(
        "--models",
        nargs="+",
        metavar="M",
        help=f"registered model names (default: {' '.join(MODELS)})",
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        metavar="HxW",
        help="image sizes, H readout x W phase encode (default 218x180 246x512; the "
        "largest is the cine-like size of goals 4 and 6)",
    )
    p.add_argument("--coils", type=int, default=10, metavar="N", help="coils (default 10)")
    p.add_argument("--repeats", type=int, metavar="N", help="timed repeats (default 3; quick 1)")
    p.add_argument(
        "--warmup",
        type=int,
        metavar="N",
        help="untimed calls before timing (default 1; quick 1)",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        metavar="P",
        help="fp32 and/or bf16 (autocast) (default both)",
    )
    p.add_argument(
        "--goals",
        nargs="+",
        metavar="G",
        help=f"goals to measure: {' '.join(map(str, GOALS))} or none (default all)",
    )
    p.add_argument(
        "--eval-checkpoint",
        metavar="CKPT",
        help="goal 3: evaluate this trained checkpoint in fp32 and bf16 (default: the "
        "FM-VarNet with random weights and damped denoiser heads)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's)")
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="limit per measurement process in seconds (default 3600)",
    )


def _goals(values: list[str] | None) -> tuple[int, ...] | None:
    from fmrecon.errors import ConfigError
    from fmrecon.perf.bench import GOALS

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


def run(args) -> int:
    from fmrecon.perf.bench import BenchConfig, format_report, parse_size, run_bench, write_json

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
    )
    result = run_bench(cfg)
    print(format_report(result))
    if args.json:
        write_json(result, args.json)
        print(f"\nwrote {args.json}")
    return 1 if result["errors"] else 0
