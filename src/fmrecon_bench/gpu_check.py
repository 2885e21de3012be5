"""The GPU check (``scripts/gpu-check.sh``, ``python -m fmrecon_bench.gpu_check``):
everything a CPU cannot show, in one run of at most ~10 minutes on one GPU,
written as one JSON and one text report. It installs nothing.

Steps (each timed, each ``pass`` / ``fail`` / ``info`` / ``skip`` with a note):

- ``environment``: torch, CUDA, cuDNN, the GPUs, inductor's cache folder.
- ``bench``: the benchmark's goals at paper sizes (218x180, 246x512, 10 coils),
  fp32 and bf16, E2E-VarNet and FM-VarNet (goal 5, the CPU feature cache, is
  left out); ``bench_compiled``: the same models compiled through fmrecon's
  option, fp32 at 218x180, the compile time apart, then goal 8 (FM-VarNet and
  E2E-VarNet eager / compiled, paired rounds).
- ``memory``: ``fmrecon models --memory`` (:func:`estimate_peak_memory`) against
  ``torch.cuda.max_memory_allocated`` of a training step and an inference,
  FM-VarNet and E2E-VarNet at 246x512, fp32 and bf16.
- ``train``: the paper's CMR-CLIP x4 FM-VarNet config trained through
  ``fmrecon.training.run.train`` (Lightning) for 200 steps in bf16-mixed on
  simulated cine at paper size; while it runs, a callback records the
  cudnn.benchmark flag, the TF32 flags and the autocast dtype of the model's
  convolutions; ``environment.json`` must record the TF32 policy.
- issue 22's GPU-only items: ``pinned`` (the training loader's batches in
  page-locked memory), ``non_blocking`` (Lightning's batch transfer asks for
  non-blocking copies and the profiler sees pinned host-to-device copies),
  ``fft_dtypes`` (only complex64 reaches the FFT kernels under bf16 autocast,
  forward and backward, every VarNet-type model and FM-UNETR), ``deterministic``
  (``trainer.deterministic: true`` refused for FM models on a GPU in one line, and
  the reason: their bilinear backward errors under deterministic algorithms while
  E2E-VarNet's step runs), ``ddp`` (NCCL DDP on 2 GPUs through ``fmrecon train``,
  when there are 2).

``--device cpu --tiny`` is the dry run the tests make: the same steps with tiny
models at 32 x 32, 2 coils, a few steps, and the compiled bench through dynamo's
``eager`` backend (the option's plumbing, not inductor's code generation, which
takes minutes on a CPU); CUDA-only checks report ``skip`` there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from fmrecon import __version__
from fmrecon.errors import ConfigError
from fmrecon.utils import compile_cache_dir, compile_options, resolve_device

PAPER_SIZES = ((218, 180), (246, 512))
MEMORY_SIZE = (246, 512)
TRAIN_CONFIG = "configs/paper/arxiv2026/cmr-clip-x4.yaml"
TRAIN_STEPS = 200
ROOT = Path(__file__).resolve().parents[2]
# tiny models of the dry run (as the tests' TINY tables)
TINY_OPTIONS = {
    "e2e-varnet": {"num_cascades": 2, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2},
    "fm-varnet-clip": {"num_cascades": 2, "sens_chans": 4, "sens_pools": 2,
                       "chans": [16, 16, 8, 8, 8]},
    "fm-unetr-clip": {"feature_layers": [2, 3, 4, 6], "feature_size": 4},
}  # fmt: skip


class Check:
    """The run: settings, the steps' results, the report files."""

    def __init__(self, device: torch.device, tiny: bool, out: Path):
        self.device, self.tiny, self.out = device, tiny, out
        self.cuda = device.type == "cuda"
        self.steps: list[dict] = []

    def options(self, name: str) -> dict:
        """create_model options of ``name`` in this run (tiny: small layers, tiny encoder)."""
        if not self.tiny:
            return {}
        from fmrecon.encoders import TINY_OVERRIDES

        opts = dict(TINY_OPTIONS.get(name, {}))
        if "fm-" in name:
            opts["encoder_config"] = dict(TINY_OVERRIDES["clip"])
        return opts

    def run(self, name: str, fn: Callable[[Check], dict]) -> dict:
        t0 = time.perf_counter()
        print(f"[gpu-check] {name} ...", file=sys.stderr, flush=True)
        try:
            res = fn(self)
        except Exception as err:  # a failed step is reported, the others still run
            first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
            res = {"status": "fail", "note": f"{type(err).__name__}: {first}",
                   "traceback": traceback.format_exc()}  # fmt: skip
        res = {"step": name, **res, "seconds": round(time.perf_counter() - t0, 1)}
        self.steps.append(res)
        print(f"[gpu-check] {name}: {res['status']} ({res['seconds']} s) {res.get('note', '')}",
              file=sys.stderr, flush=True)  # fmt: skip
        return res


def _skip_without_cuda(check: Check) -> dict | None:
    if not check.cuda:
        return {"status": "skip", "note": "needs CUDA (dry run on the CPU)"}
    return None


# ----------------------------------------------------------------------------- steps


def environment(check: Check) -> dict:
    detail = {
        "fmrecon": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available() else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "nccl": torch.distributed.is_available() and torch.distributed.is_nccl_available(),
        "inductor_cache": str(compile_cache_dir()), "device": str(check.device),
        "tiny": check.tiny,
    }  # fmt: skip
    gpus = ", ".join(detail["gpus"]) or "no GPU"
    return {"status": "info", "note": f"torch {torch.__version__}, {gpus}", "detail": detail}


def _bench(check: Check, compiled: bool) -> dict:
    from fmrecon_bench.config import BenchConfig
    from fmrecon_bench.report import format_report, write_json
    from fmrecon_bench.run import run_bench

    models = ("e2e-varnet", "fm-varnet-clip")
    kw = {"device": check.device.type, "models": models, "coils": 10, "repeats": 3, "warmup": 1,
          "timeout": 900.0}  # fmt: skip
    if compiled:
        # goal 8 after the rows, whose graphs it finds in inductor's cache
        kw.update(sizes=PAPER_SIZES[:1], precisions=("fp32",), goals=(8,),
                  compile=compile_options(True))  # fmt: skip
    else:
        kw.update(sizes=PAPER_SIZES, precisions=("fp32", "bf16"), goals=(1, 2, 3, 4, 6, 7))
    if check.tiny:
        from fmrecon.encoders import TINY_OVERRIDES

        opts = {m: check.options(m) for m in (*models, "fm-unetr-clip")}
        for o in opts.values():
            o.pop("encoder_config", None)
        kw.update(sizes=((32, 32),), coils=2, repeats=1, warmup=0, model_options=opts,
                  encoder="clip-vit-b16-tiny", isolate=False, goals=(4,))  # fmt: skip
        if compiled:  # the option's plumbing through dynamo; inductor takes minutes on a CPU
            kw.update(compile=compile_options({"backend": "eager"}), models=models[:1], goals=(8,))
        assert TINY_OVERRIDES  # the bench builds "clip-vit-b16-tiny" from these
    cfg = BenchConfig(**kw)
    cfg.validate()
    result = run_bench(cfg, log=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    name = "bench_compiled" if compiled else "bench"
    write_json(result, check.out / f"{name}.json")
    (check.out / f"{name}.txt").write_text(format_report(result) + "\n")
    goals = {g["id"]: {k: g.get(k) for k in ("figure", "target", "met", "unit", "note")}
             for g in result["goals"]}  # fmt: skip
    rows = [{k: r.get(k) for k in ("model", "size", "precision", "checkpointing", "infer_s",
                                   "train_s", "train_peak_mb", "compile_s")}
            for r in result["rows"]]  # fmt: skip
    status = "fail" if result["errors"] else "pass"
    note = (f"{len(rows)} rows, goals met {sum(bool(g['met']) for g in goals.values())}/"
            f"{len(goals)}; report {name}.txt") + (f"; errors: {result['errors'][0]}"
                                                  if result["errors"] else "")  # fmt: skip
    return {"status": status, "note": note, "detail": {"goals": goals, "rows": rows,
            "errors": result["errors"]}}  # fmt: skip


def bench(check: Check) -> dict:
    return _bench(check, compiled=False)


def bench_compiled(check: Check) -> dict:
    return _bench(check, compiled=True)


def memory(check: Check) -> dict:
    """The estimate (``fmrecon models --memory``) against the allocator's peak."""
    from fmrecon.models.memory import estimate_peak_memory
    from fmrecon_bench.harness import Runner, build_model, simulated_batches

    size, coils = ((32, 32), 2) if check.tiny else (MEMORY_SIZE, 10)
    rows = []
    for name in ("fm-varnet-clip", "e2e-varnet"):
        opts = check.options(name)
        enc = opts.pop("encoder_config", None)
        for precision in ("32", "bf16"):
            for training in (True, False):
                est = estimate_peak_memory(name, size, coils, precision=precision,
                                           training=training, model_options=opts or None,
                                           encoder_config=enc)  # fmt: skip
                row = {"model": name, "size": f"{size[0]}x{size[1]}", "precision": precision,
                       "training": training, "estimate_gb": round(est["allocated_bytes"] / 1e9, 3),
                       "estimate_card_gb": round(est["bytes"] / 1e9, 3)}  # fmt: skip
                if check.cuda:
                    torch.cuda.empty_cache()
                    net = build_model(name, dict(opts, encoder_config=enc) if enc else opts,
                                      check.device)  # fmt: skip
                    batch = simulated_batches(*size, coils, device=check.device)[0]
                    runner = Runner(net, check.device, label=name)
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    p = "bf16" if precision == "bf16" else "fp32"
                    runner.train(batch, p) if training else runner.infer(batch, p)
                    peak = torch.cuda.max_memory_allocated()
                    row["measured_gb"] = round(peak / 1e9, 3)
                    row["estimate_over_measured"] = round(est["allocated_bytes"] / peak, 3)
                    del net, runner, batch
                rows.append(row)
    if not check.cuda:
        return {"status": "skip", "note": "estimates only (no CUDA to measure against)",
                "detail": rows}  # fmt: skip
    ratios = [r["estimate_over_measured"] for r in rows]
    # the CPU validation of the estimate holds it within 0.85..1.005 of the allocator
    ok = all(0.85 <= r <= 1.10 for r in ratios)
    return {"status": "pass" if ok else "fail", "detail": rows,
            "note": f"estimate / max_memory_allocated {min(ratios):.3f}..{max(ratios):.3f} "
                    "(accepted 0.85..1.10)"}  # fmt: skip


class _Probe:
    """A Lightning callback recording, during training, what only a GPU run can
    show: cudnn.benchmark, the TF32 flags, and the autocast state and output dtype
    of the model's first convolution."""

    def __init__(self):
        import lightning as L

        probe = self
        self.seen: dict = {}

        class Callback(L.Callback):
            def on_train_start(self, trainer, module):
                conv = next(m for m in module.model.modules() if isinstance(m, torch.nn.Conv2d))

                def hook(mod, args, out):
                    if "conv_out_dtype" not in probe.seen:
                        dev = args[0].device.type
                        probe.seen.update(
                            conv_out_dtype=str(out.dtype),
                            autocast=torch.is_autocast_enabled(dev),
                            autocast_dtype=str(torch.get_autocast_dtype(dev)),
                        )

                probe.handle = conv.register_forward_hook(hook)

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if batch_idx == 0:
                    probe.seen.update(
                        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
                        tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
                        tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
                        batch_device=str(batch.kspace.device),
                        kspace_dtype=str(batch.kspace.dtype),
                    )

            def on_train_end(self, trainer, module):
                probe.handle.remove()

        self.callback = Callback()


def _simulated_cine(check: Check, root: Path) -> Path:
    from fmrecon.data.simulate import simulate_cmrxrecon

    # paper size: CMRxRecon 2023 cine k-space is 512 x 246 (readout x phase encode)
    size = (32, 32) if check.tiny else (512, 246)
    simulate_cmrxrecon(root, n_subjects=4, seed=0, size=size, n_slices=3, n_frames=2,
                       n_coils=2 if check.tiny else 10, lax=False)  # fmt: skip
    return root / "MultiCoil"


def _train_overrides(check: Check, data: Path, work: Path, steps: int) -> list[str]:
    per_epoch = min(steps, 10 if steps >= 10 else 2)
    over = [
        f"data.root={data}", f"data.split={work / 'split.json'}", f"output_dir={work / 'runs'}",
        "name=gpu-check", "data.mask.official=false", "data.num_workers=2",
        "model.encoder_weights=random", "model.allow_random_encoder=true",
        "model.checkpoint_encoder=weights", "trainer.precision=bf16-mixed",
        f"trainer.accelerator={'gpu' if check.cuda else 'cpu'}",
        # steps = epochs x batches per epoch (the simulated set has 18 training slices)
        f"trainer.max_epochs={max(1, steps // per_epoch)}",
        f"trainer.limit_train_batches={per_epoch}", "trainer.limit_val_batches=2",
        "trainer.early_stopping_patience=0", "trainer.progress_bar=false",
    ]  # fmt: skip
    if check.tiny:
        opts = dict(check.options("fm-varnet-clip"))
        enc = opts.pop("encoder_config")
        over += [f"model.options={json.dumps(opts)}", f"model.encoder_config={json.dumps(enc)}",
                 "data.num_workers=0"]  # fmt: skip
    return over


def train(check: Check) -> dict:
    """200 steps of the paper's CMR-CLIP x4 FM-VarNet in bf16-mixed through the
    trainer; the probe's records; environment.json's TF32 record."""
    from fmrecon.training.config import load_config
    from fmrecon.training.run import train as run_train

    steps = 4 if check.tiny else TRAIN_STEPS
    work = check.out / "train"
    data = _simulated_cine(check, work / "data")
    cfg = load_config(ROOT / TRAIN_CONFIG, _train_overrides(check, data, work, steps))
    probe = _Probe()
    summary = run_train(cfg, extra_callbacks=(probe.callback,), log=lambda m: None)
    env = json.loads((Path(summary["run_dir"]) / "environment.json").read_text())
    seen = probe.seen
    problems = []
    if summary["global_step"] != steps:
        problems.append(f"{summary['global_step']} steps instead of {steps}")
    if env.get("tf32") is not False or env.get("tf32_flags", {}).get("cuda_matmul"):
        problems.append(f"TF32 record {env.get('tf32')} / {env.get('tf32_flags')}")
    if seen.get("tf32_matmul") or seen.get("tf32_cudnn"):
        problems.append("TF32 on during training although trainer.tf32 is false")
    if check.cuda and seen.get("autocast_dtype") != "torch.bfloat16":
        problems.append(f"autocast dtype {seen.get('autocast_dtype')}")
    if check.cuda and seen.get("conv_out_dtype") != "torch.bfloat16":
        problems.append(f"convolution output {seen.get('conv_out_dtype')} under bf16-mixed")
    detail = {"summary": summary, "probe": seen, "environment_tf32": env.get("tf32"),
              "environment_tf32_flags": env.get("tf32_flags")}  # fmt: skip
    note = (f"{summary['global_step']} steps, best val SSIM {summary['best_val_ssim']}, "
            f"cudnn.benchmark {seen.get('cudnn_benchmark')}, autocast "
            f"{seen.get('autocast_dtype')}, conv output {seen.get('conv_out_dtype')}")  # fmt: skip
    return {"status": "fail" if problems else "pass",
            "note": "; ".join(problems) or note, "detail": detail}  # fmt: skip


def _train_loader(check: Check):
    from fmrecon.training.config import load_config
    from fmrecon.training.data import ReconDataModule

    work = check.out / "loader"
    data = _simulated_cine(check, work / "data") if not (work / "data").exists() else (
        work / "data" / "MultiCoil")  # fmt: skip
    cfg = load_config(ROOT / TRAIN_CONFIG, _train_overrides(check, data, work, 1))
    dm = ReconDataModule(cfg["data"], seed=0, split_path=work / "split.json")
    dm.setup("fit")
    return dm.train_dataloader()


def pinned(check: Check) -> dict:
    """The training loader's batches (``Sample.pin_memory``) in page-locked memory."""
    loader = _train_loader(check)
    batch = next(iter(loader))
    fields = ("kspace", "mask", "target", "max_value", "num_low_frequencies")
    state = {f: bool(getattr(batch, f).is_pinned()) for f in fields}
    if not check.cuda:
        return {"status": "skip", "note": f"loader pin_memory={loader.pin_memory} (no CUDA)",
                "detail": state}  # fmt: skip
    ok = loader.pin_memory and all(state.values())
    return {"status": "pass" if ok else "fail", "detail": state,
            "note": "every tensor of a batch pinned" if ok else f"not pinned: {state}"}  # fmt: skip


def non_blocking(check: Check) -> dict:
    """Lightning's batch transfer: ``non_blocking=True`` on every tensor, and the
    profiler's host-to-device copies coming from pinned memory."""
    if skip := _skip_without_cuda(check):
        return skip
    from lightning.fabric.utilities.apply_func import move_data_to_device
    from torch.profiler import ProfilerActivity, profile

    batch = next(iter(_train_loader(check)))
    flags, real = [], torch.Tensor.to

    def spy(t, *a, **k):
        flags.append(bool(k.get("non_blocking", False)))
        return real(t, *a, **k)

    torch.Tensor.to = spy
    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            moved = move_data_to_device(batch, check.device)
            torch.cuda.synchronize()
    finally:
        torch.Tensor.to = real
    copies = sorted({e.name for e in prof.events() if "Memcpy HtoD" in e.name})
    ok = bool(flags) and all(flags) and copies and all("Pinned" in c for c in copies)
    ok = ok and moved.kspace.device.type == "cuda"
    note = f"{len(flags)} tensors, copies: {', '.join(copies)}"
    return {"status": "pass" if ok else "fail", "note": note,
            "detail": {"non_blocking": flags, "copies": copies}}  # fmt: skip


def fft_dtypes(check: Check) -> dict:
    """What reaches the FFT kernels under bf16 autocast (forward and backward)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from fmrecon_bench.harness import build_model, simulated_batches

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.dtypes: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if "_fft_" in func.__name__:
                self.dtypes.add(str(args[0].dtype))
            return func(*args, **(kwargs or {}))

    size, coils = ((32, 32), 2) if check.tiny else ((218, 180), 10)
    found = {}
    for name in ("e2e-varnet", "fm-varnet-clip", "fm-unetr-clip"):
        opts = check.options(name) or ({"num_cascades": 2} if "varnet" in name else {})
        net = build_model(name, opts, check.device).train()
        batch = simulated_batches(*size, coils, device=check.device)[0]
        seen = Seen()
        with seen, torch.autocast(check.device.type, dtype=torch.bfloat16):
            net(batch.kspace, batch.mask).float().mean().backward()
        found[name] = sorted(seen.dtypes)
        del net
    ok = all(v == ["torch.complex64"] for v in found.values())
    return {"status": "pass" if ok else "fail", "detail": found,
            "note": "; ".join(f"{k}: {', '.join(v)}" for k, v in found.items())}  # fmt: skip


def deterministic(check: Check) -> dict:
    """The one-line refusal at config time, and why it is needed on a GPU."""
    from fmrecon.training.config import load_config
    from fmrecon_bench.harness import Runner, build_model, simulated_batches

    over = ["trainer.accelerator=gpu", "trainer.deterministic=true", "model.name=fm-varnet-clip"]
    try:
        load_config(None, over, require_data=False)
        refusal = None
    except ConfigError as err:
        refusal = str(err)
    detail = {"refusal": refusal}
    ok = refusal is not None and "\n" not in refusal
    if check.cuda:  # E2E-VarNet trains deterministically; the FM models' bilinear backward errors
        size, coils = (218, 180), 10
        prev = torch.are_deterministic_algorithms_enabled()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        try:
            for name in ("e2e-varnet", "fm-varnet-clip"):
                net = build_model(name, {"num_cascades": 2}, check.device)
                batch = simulated_batches(*size, coils, device=check.device)[0]
                try:
                    Runner(net, check.device, label=name).train(batch, "fp32")
                    detail[name] = "ran"
                except Exception as err:  # expected for the FM model
                    detail[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
                del net
        finally:
            torch.use_deterministic_algorithms(prev)
        ok = ok and detail["e2e-varnet"] == "ran"
    return {"status": "pass" if ok else "fail", "detail": detail,
            "note": (refusal or "not refused")[:160]}  # fmt: skip


def ddp(check: Check) -> dict:
    """NCCL DDP on 2 GPUs through ``fmrecon train`` (Lightning launches the ranks)."""
    if skip := _skip_without_cuda(check):
        return skip
    if torch.cuda.device_count() < 2:
        return {"status": "skip", "note": f"{torch.cuda.device_count()} GPU (needs 2)"}
    work = check.out / "ddp"
    data = _simulated_cine(check, work / "data")
    over = _train_overrides(check, data, work, 20) + [
        "trainer.devices=2", "trainer.strategy=ddp", "trainer.precision=bf16-mixed",
        "model.options={num_cascades: 4}", "name=gpu-check-ddp",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "fmrecon.cli", "train", "--config", str(ROOT / TRAIN_CONFIG),
           *over]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    summary_file = work / "runs" / "gpu-check-ddp" / "train_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    ok = proc.returncode == 0 and summary.get("global_step") == 20
    tail = (proc.stderr or "").strip().splitlines()[-2:]
    return {"status": "pass" if ok else "fail", "detail": {"summary": summary, "tail": tail},
            "note": f"exit {proc.returncode}, ranks {summary.get('ranks')}"}  # fmt: skip


STEPS: dict[str, Callable[[Check], dict]] = {
    "environment": environment, "bench": bench, "bench_compiled": bench_compiled,
    "memory": memory, "train": train, "pinned": pinned, "non_blocking": non_blocking,
    "fft_dtypes": fft_dtypes, "deterministic": deterministic, "ddp": ddp,
}  # fmt: skip


def report_text(result: dict) -> str:
    lines = [
        f"fmrecon GPU check: {result['created']}, device {result['device']}"
        f"{' (tiny dry run)' if result['tiny'] else ''}, {result['seconds']:.0f} s",
        "",
    ]
    width = max(len(s["step"]) for s in result["steps"])
    for s in result["steps"]:
        lines.append(f"{s['step'].ljust(width)}  {s['status']:<4}  {s['seconds']:>6.1f} s  "
                     f"{s.get('note', '')}")  # fmt: skip
    counts = {k: sum(s["status"] == k for s in result["steps"]) for k in ("pass", "fail", "skip")}
    lines += ["", ", ".join(f"{v} {k}" for k, v in counts.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("auto", "cpu", "cuda"))
    p.add_argument("--tiny", action="store_true",
                   help="tiny models at 32x32, a few steps (the dry run of the tests)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default gpu-check-YYYYmmdd-HHMMSS)")  # fmt: skip
    p.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS), metavar="STEP",
                   help=f"steps to run (default all: {' '.join(STEPS)})")  # fmt: skip
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ConfigError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2
    out = args.out or Path(f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    check = Check(device, args.tiny, out)
    t0 = time.perf_counter()
    with _quiet():
        for name in args.steps:
            check.run(name, STEPS[name])
    result = {"schema": "fmrecon-gpu-check/1", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "device": str(device), "tiny": args.tiny,
              "seconds": round(time.perf_counter() - t0, 1), "steps": check.steps}  # fmt: skip
    (out / "gpu-check.json").write_text(json.dumps(result, indent=1, default=str))
    text = report_text(result)
    (out / "gpu-check.txt").write_text(text)
    print(text + f"wrote {out / 'gpu-check.json'} and gpu-check.txt")
    return 1 if any(s["status"] == "fail" for s in check.steps) else 0


@contextlib.contextmanager
def _quiet():
    """Lightning's and torch's chatter about tiny runs stays out of the report."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


if __name__ == "__main__":
    sys.exit(main())
