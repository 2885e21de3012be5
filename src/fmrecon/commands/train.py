"""``fmrecon train``: train a registered model from a YAML config."""

from __future__ import annotations

import argparse
import copy
import os
import sys

HELP = "train a model from a YAML config (one CPU to many GPUs); key=value overrides"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (see configs/); defaults apply to missing keys")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. trainer.max_epochs=10 model.options.num_cascades=4",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue the run from its last.ckpt (or from CKPT)",
    )
    p.add_argument(
        "--init-from",
        metavar="WEIGHTS",
        help="start from these weights (model.init_from; wins over the config): an fmrecon "
        "checkpoint, a fastMRI VarNet state dict, a folder written by `fmrecon export` or "
        "hf:ORG/NAME. Not a resume: fresh optimiser, epoch 0",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve and validate the config, build the model (cached encoder weights, or "
        "random ones: nothing is fetched), print the config and parameter counts; touch no data",
    )


def run(args) -> int:
    from fmrecon.training.config import dump_config, load_config, run_dir

    if isinstance(args.resume, str) and "=" in args.resume and not os.path.exists(args.resume):
        # `--resume key=value`: an override after a bare --resume, not a checkpoint path
        args.overrides.append(args.resume)
        args.resume = True
    cfg = load_config(args.config, args.overrides, require_data=not args.dry_run)
    if args.init_from:  # the command line wins over the config file and its overrides
        cfg["model"]["init_from"] = args.init_from
    if args.dry_run:
        from fmrecon.training.run import build_module, describe_module

        # a laptop need not hold the encoder weights: the model is built from a copy that
        # may fall back to random ones; the config printed is the one the run uses
        build = copy.deepcopy(cfg)
        build["model"]["allow_random_encoder"] = True
        os.environ["HF_HUB_OFFLINE"] = "1"  # cached weights are used, none are fetched
        module = build_module(build)
        print(dump_config(cfg), end="")
        print(f"# run folder: {run_dir(cfg)}")
        if not cfg["data"]["root"]:
            print("# data.root is not set: the real run needs it (data.root=/path/to/MultiCoil)")
        print("# " + describe_module(module).replace("\n", "\n# "))
        model = cfg["model"]
        if model["init_from"]:
            print(f"# model.init_from {model['init_from']}: loaded by the real run, before step 0")
        fell_back = model["encoder_weights"] != "random" and not model["allow_random_encoder"]
        if module.model.record.random_encoder and fell_back:
            print(
                "# the encoder weights are not on this machine: this dry run used random ones; "
                "the real run stops without them (allow_random_encoder is false)"
            )
        return 0
    from fmrecon.training.run import train

    summary = train(cfg, resume=args.resume, log=lambda m: print(m, file=sys.stderr))
    if not summary["is_global_zero"]:
        return 0
    if summary["best_checkpoint"]:
        print(f"best val SSIM {summary['best_val_ssim']:.4f}: {summary['best_checkpoint']}")
    print(f"run folder: {summary['run_dir']}")
    return 0
