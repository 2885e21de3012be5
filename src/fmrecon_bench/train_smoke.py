"""Training smoke benchmark: does every paper config train at paper size?

For each config of ``configs/paper/`` (both papers, all encoders, x4/x8/x10)
and of ``configs/finetune/`` (the same with the encoder fine-tuned by LoRA)
and ``configs/beyond/`` (SigLIP, RAD-DINO, DINOv3 in both architectures)
this builds the model at the config's (paper) size with random encoder
weights (none can be downloaded on a build machine), simulates a small
CMRxRecon 2023 cine data set at a reduced image size, and takes a few dozen
optimiser steps through the training code itself (``ReconDataModule``,
``ReconModule.training_step`` and ``configure_optimizers``: the config's
optimiser, learning rate, batch size, mask kind and acceleration). It prints,
per config: the output/target norm at initialisation, the SSIM loss of the
first and last steps (means over the first and last quarter), whether every
loss and the weights stayed finite, and whether the loss fell.

    python -m fmrecon_bench.train_smoke                    # every paper config
    python -m fmrecon_bench.train_smoke --configs 'configs/paper/arxiv2026/cmr-clip-*.yaml' \
        --steps 30
    python -m fmrecon_bench.train_smoke --json smoke.json
    python -m fmrecon_bench.train_smoke --json smoke.json --resume   # after an interruption
    python -m fmrecon_bench.train_smoke --configs 'configs/finetune/*/*.yaml' \
        --set model.options.encoder_lora_rank=0 model.options.encoder_unfreeze_last=2

Config globs are looked up in the repository checkout first, then from the
current folder.

What differs from a real run, and why: simulated data (no data sets here),
random encoder weights, and the challenge's official mask files replaced by
the generated mask of the same kind (the simulated files are CMRxRecon 2023
files at a reduced size), and the MIDL configs' 224 x 224 made a square of the
reduced size (without readout-oversampling removal: the simulated cine has
none), and lean checkpoints off (a random encoder has no source to
reference; nothing is saved here anyway). ``--set`` adds config overrides
after these (e.g. the unfreeze variant of the fine-tuning configs). A full
FM-VarNet step costs ~15 s on 2 CPU cores whatever the image size (twelve
ViT-B passes at 224 px), so the whole table takes about an hour there and
minutes on a GPU. Exit code 1 when a config does not train (non-finite, or a
loss that does not fall).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.encoders.adapters import describe_adaptation
from fmrecon.models.io import frozen_encoder
from fmrecon.models.registry import get_spec
from fmrecon.training.config import load_config
from fmrecon.training.data import ReconDataModule
from fmrecon.training.module import ReconModule
from fmrecon.utils import count_parameters

ROOT = Path(__file__).resolve().parents[2]  # the checkout (src/fmrecon_bench/ is in it)
DEFAULT_CONFIGS = (
    "configs/paper/arxiv2026/*.yaml",
    "configs/paper/midl2025/*.yaml",
    "configs/finetune/arxiv2026/*.yaml",
    "configs/finetune/midl2025/*.yaml",
    "configs/beyond/arxiv2026/*.yaml",
    "configs/beyond/midl2025/*.yaml",
)


def simulate(out: Path, size: tuple[int, int], subjects: int, seed: int) -> Path:
    """A small cine data set (short and long axis, 10 coils) in the 2023 layout."""
    simulate_cmrxrecon(out, n_subjects=subjects, seed=seed, size=size, n_slices=3, n_frames=2)
    return out / "MultiCoil"


def overrides_for(cfg_path: Path, data_root: Path, work: Path, size: tuple[int, int]) -> list[str]:
    over = [
        f"data.root={data_root}",
        f"data.split={work / 'split.json'}",
        f"output_dir={work / 'runs'}",
        "data.mask.official=false",
        "data.num_workers=0",
        "model.feature_cache=null",
    ]
    cfg = load_config(cfg_path, require_data=False)
    if get_spec(cfg["model"]["name"]).encoder is not None:
        over += ["model.encoder_weights=random", "model.allow_random_encoder=true"]
        over += ["model.checkpoint_encoder=weights"]  # a random encoder has no reference
    if cfg["data"]["image_size"]:
        # a fixed-size protocol (MIDL 2025's 224 x 224): a square of the reduced size;
        # the simulated cine has no readout oversampling to remove
        side = min(size)
        over += [f"data.image_size=[{side},{side}]", "data.readout_oversampling=1"]
    return over


def run_config(
    cfg_path: Path, data_root: Path, work: Path, size, steps: int, seed: int, extra=()
) -> dict:
    """One config's row; ``extra``: config overrides applied after the smoke's own."""
    cfg = load_config(cfg_path, [*overrides_for(cfg_path, data_root, work, size), *extra])
    torch.manual_seed(seed)
    module = ReconModule(cfg["model"], cfg["optim"], run_config=cfg)
    module.train()
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    data = ReconDataModule(cfg["data"], seed=seed, split_path=work / "split.json")
    data.setup("fit")
    loader = data.train_dataloader()

    def batches():
        epoch = 0
        while True:
            loader.batch_sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    losses: list[float] = []
    ratio = math.nan
    t0 = time.perf_counter()
    for step, batch in zip(range(steps), batches(), strict=False):
        if step == 0:
            with torch.no_grad():
                out = module.engine.predict(batch)
            ratio = float(out.norm() / batch.target.float().norm())
        loss = module.training_step(batch, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    seconds = (time.perf_counter() - t0) / max(1, len(losses))
    enc = frozen_encoder(module.model)
    finite = all(math.isfinite(v) for v in losses) and all(
        bool(torch.isfinite(p).all()) for p in module.model.parameters()
    )
    q = max(1, len(losses) // 4)
    first, last = sum(losses[:q]) / q, sum(losses[-q:]) / q
    return {
        "config": str(cfg_path),
        "model": cfg["model"]["name"],
        "trainable_params": count_parameters(module.model, trainable_only=True),
        "encoder_tuning": describe_adaptation(enc) if enc is not None else None,
        "overrides": list(extra),
        "optimizer": f"{cfg['optim']['name']} lr {cfg['optim']['lr']:g}",
        "batch_size": cfg["data"]["batch_size"],
        "mask": f"{cfg['data']['mask']['kind']} x{cfg['data']['mask']['accelerations'][0]}",
        "steps": len(losses),
        "norm_at_init": ratio,
        "loss_first": first,
        "loss_last": last,
        "losses": losses,
        "finite": finite,
        "falls": finite and last < first,
        "s_per_step": seconds,
    }


def table(rows: list[dict]) -> str:
    head = ("config", "trainable", "batch", "norm@init", "loss first", "loss last", "finite",
            "falls", "s/step")  # fmt: skip
    lines = [
        (
            Path(r["config"]).parent.name + "/" + Path(r["config"]).stem,
            f"{r['trainable_params'] / 1e6:.2f}M",
            str(r["batch_size"]),
            f"{r['norm_at_init']:.3f}",
            f"{r['loss_first']:.4f}",
            f"{r['loss_last']:.4f}",
            "yes" if r["finite"] else "NO",
            "yes" if r["falls"] else "NO",
            f"{r['s_per_step']:.1f}",
        )
        for r in rows
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), metavar="GLOB")
    p.add_argument("--steps", type=int, default=24, help="optimiser steps per config (24)")
    p.add_argument("--size", type=int, nargs=2, default=(128, 96), metavar=("KX", "KY"),
                   help="simulated k-space size (128 96)")  # fmt: skip
    p.add_argument("--subjects", type=int, default=5, help="simulated subjects (5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", metavar="FILE",
                   help="also write the rows as JSON (rewritten after every config)")  # fmt: skip
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for every config, after the smoke's own")  # fmt: skip
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already in --json FILE, run the other configs")  # fmt: skip
    args = p.parse_args(argv)
    if args.resume and not args.json:
        print("--resume needs --json FILE", file=sys.stderr)
        return 2
    # training_step logs through Lightning, which has no Trainer here: nothing to log to
    warnings.filterwarnings("ignore", message=".*self.trainer. reference is not registered")
    if args.threads:
        torch.set_num_threads(args.threads)
    found = (glob.glob(str(ROOT / g)) or glob.glob(g) for g in args.configs)
    paths = sorted({Path(f) for files in found for f in files})
    if not paths:
        print(f"no config matches {args.configs}", file=sys.stderr)
        return 2
    size = (int(args.size[0]), int(args.size[1]))
    rows = []
    if args.resume and Path(args.json).is_file():
        rows = [r for r in json.loads(Path(args.json).read_text()) if Path(r["config"]) in paths]
        done = {Path(r["config"]) for r in rows}
        paths = [q for q in paths if q not in done]
        print(f"{len(rows)} configs already in {args.json}, {len(paths)} to run", flush=True)
    if paths:
        with tempfile.TemporaryDirectory(prefix="fmrecon-smoke-") as tmp:
            work = Path(tmp)
            data_root = simulate(work / "data", size, args.subjects, args.seed)
            print(f"simulated {args.subjects} cine subjects at {size[0]}x{size[1]}, 10 coils; "
                  f"{args.steps} steps per config, random encoder weights", flush=True)  # fmt: skip
            for path in paths:
                row = run_config(path, data_root, work, size, args.steps, args.seed, args.set)
                rows.append(row)
                if args.json:  # after every config: a long run keeps what it has
                    Path(args.json).write_text(json.dumps(rows, indent=1))
                print(f"{path.parent.name}/{path.stem}: norm@init {row['norm_at_init']:.3f}, loss "
                      f"{row['loss_first']:.4f} -> {row['loss_last']:.4f}, finite {row['finite']}, "
                      f"{row['s_per_step']:.1f} s/step", flush=True)  # fmt: skip
    rows.sort(key=lambda r: r["config"])
    print()
    print(table(rows))
    return 0 if all(r["falls"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
