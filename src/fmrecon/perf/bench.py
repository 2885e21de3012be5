"""``fmrecon bench``: speed and memory of the models, and the goals of issue 5.

Layout of a run (:func:`run_bench`):

- the table: for every model and size, one *timing* process that builds the
  model once and measures every variant (precision x activation checkpointing)
  round-robin, so the variants see the same machine state and their ratios are
  fair; then one fresh *memory* process per variant, which builds the model and
  inputs, measures the first training step's peak (then an inference's), and
  exits. On CPU the peak is the process's resident-set high-water mark (reset
  after building, ``/proc/self/clear_refs``; ``ru_maxrss`` where that is not
  possible) minus the RSS after building; on CUDA ``max_memory_allocated``
  minus the memory allocated after building. Both figures are reported.
- the goals: each measured in its own process in the same run (reference
  fastMRI VarNet, truncated encoder, bf16 evaluation, data loading) or computed
  from the table's rows (bf16 speed, checkpointing memory); goals 5 and 7 come
  from :mod:`fmrecon.perf.cache` and :mod:`fmrecon.perf.memory`.

Inputs are simulated cardiac slices (``fmrecon.data.simulate``) with the
CMRxRecon x4 line mask: realistic values matter on CPU (random-noise k-space
and targets can drive the networks into denormal floats, many times slower).
Figures are medians over ``repeats`` after ``warmup`` untimed calls; every
ratio compares measurements of the same run, and where two things were timed in
the same rounds (alternating order, ABBA) it is the median of the per-round
ratios: on a shared 2-core machine a core can go missing for tens of seconds,
which per-round pairs cancel.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA = "fmrecon-bench/1"
MODELS = ("e2e-varnet", "fm-varnet-clip", "fm-unetr-clip", "unet")
SIZES = ((218, 180), (246, 512))
QUICK_SIZES = ((64, 48),)
# quick: the unrolled networks with 3 of their 12 cascades (an FM-VarNet step is
# ~14 s on 2 cores even at 64x48, its 12 ViT-B passes do not shrink with the image)
QUICK_CASCADES = 3
# quick: goal 1 at the quick start's image size; at 64x48 a step takes ~50 ms
# and per-call overheads and noise, not the implementations, decide the ratio
QUICK_REFERENCE_SIZE = (128, 96)
PRECISIONS = ("fp32", "bf16")
GOALS = (1, 2, 3, 4, 5, 6, 7)
CHECKPOINTED = ("e2e-varnet", "fm-varnet")  # families with per-cascade checkpointing
MIN_SIDE = 32  # the simulator's smallest image side
FASTMRI_HINT = "fastmri not installed: pip install --no-deps fastmri pandas"


@dataclass
class BenchConfig:
    """What to run. ``model_options`` (model name -> create_model options) and
    ``encoder`` exist for tests (tiny models); ``isolate=False`` runs every
    measurement in this process (memory figures then less reliable)."""

    models: tuple[str, ...] = MODELS
    sizes: tuple[tuple[int, int], ...] = SIZES
    coils: int = 10
    repeats: int = 3
    warmup: int = 1
    device: str = "auto"
    precisions: tuple[str, ...] = PRECISIONS
    goals: tuple[int, ...] = GOALS
    quick: bool = False
    threads: int | None = None
    timeout: float | None = 3600.0
    encoder: str = "clip-vit-b16"
    model_options: dict[str, dict] = field(default_factory=dict)
    isolate: bool = True
    interleave: bool | None = None  # None: True for the full bench, False for quick
    eval_checkpoint: str | None = None  # goal 3: a trained model to evaluate
    train_steps: int = 5  # goal 3 without a checkpoint: fp32 steps first (see task_bf16_eval)

    def __post_init__(self) -> None:
        if self.interleave is None:
            self.interleave = not self.quick

    @classmethod
    def create(cls, quick: bool = False, **kw) -> BenchConfig:
        """Defaults of the full or the quick bench; ``None`` values keep them."""
        base = {"sizes": QUICK_SIZES, "repeats": 1, "warmup": 1} if quick else {}
        base.update({k: v for k, v in kw.items() if v is not None})
        cfg = cls(quick=quick, **base)
        cfg.validate()
        if quick:
            from fmrecon.models.registry import get_spec

            for name in (*cfg.models, "e2e-varnet", _fm_varnet(cfg)):  # goals 1, 3 too
                if get_spec(name).family in CHECKPOINTED:
                    cfg.model_options.setdefault(name, {"num_cascades": QUICK_CASCADES})
        return cfg

    def validate(self) -> None:
        from fmrecon.errors import ConfigError
        from fmrecon.models.registry import get_spec

        for name in self.models:
            get_spec(name)  # one-line error for an unknown model
        for h, w in self.sizes:
            if h < MIN_SIDE or w < MIN_SIDE:
                raise ConfigError(f"--sizes: {h}x{w} too small (each side >= {MIN_SIDE})")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise ConfigError(f"unknown precision '{p}' (choose from {', '.join(PRECISIONS)})")
        if self.coils < 1 or self.repeats < 1 or self.warmup < 0:
            raise ConfigError("--coils and --repeats must be >= 1, --warmup >= 0")
        if not self.models and not self.goals:
            raise ConfigError("nothing to run: no models and no goals")


def parse_size(text: str) -> tuple[int, int]:
    """``"218x180"`` -> (218, 180): H (readout) x W (phase encode, the mask axis)."""
    from fmrecon.errors import ConfigError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"bad size '{text}' (expected HxW, e.g. 218x180)") from None
    return h, w


def size_label(size) -> str:
    return f"{size[0]}x{size[1]}"


# ----------------------------------------------------------------------------- machine


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _physical_cores() -> int | None:
    try:
        pairs = set()
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                phys = line.split(":")[1].strip()
            elif line.startswith("core id"):
                core = line.split(":")[1].strip()
                pairs.add((phys, core))
        return len(pairs) or None
    except OSError:
        return None


def bf16_support(device_type: str = "cpu") -> dict:
    """Whether bf16 autocast has native hardware support: CUDA's own check, or
    the CPU flags avx512_bf16 / amx_bf16 (x86) or bf16 (Arm)."""
    import torch

    if device_type == "cuda":
        return {"supported": bool(torch.cuda.is_bf16_supported()), "source": "torch.cuda"}
    flags = sorted(_cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile", "bf16", "sve_bf16"})
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # private API: absent in some builds
        onednn = None
    return {
        "supported": bool(set(flags) & {"avx512_bf16", "amx_bf16", "bf16"}),
        "cpu_flags": flags,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bf16": onednn,
    }


def matmul_gflops(seconds: float = 0.5) -> float:
    """A calibration figure: fp32 GFLOP/s of 1024x1024 matmuls for ``seconds``
    (at the start and the end of a run, to show how the machine's speed moved)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return round(2 * 1024**3 * n / (time.perf_counter() - t0) / 1e9, 1)


def machine_info(device: str = "cpu") -> dict:
    """The machine a run measured: CPU, cores, memory, bf16 support, versions."""
    import torch

    try:
        import fastmri

        fastmri_version = getattr(fastmri, "__version__", "installed")
    except ImportError:
        fastmri_version = None
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    info = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": mem_gb,
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "bf16": bf16_support(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "fastmri": fastmri_version,
    }
    from fmrecon import __version__

    info["fmrecon"] = __version__
    return info


# ----------------------------------------------------------------------------- inputs and steps


def _device(name: str):
    from fmrecon.utils import resolve_device

    return resolve_device(name)


def _setup(threads: int | None, seed: int = 0) -> None:
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)


def simulate_slices(h: int, w: int, coils: int, n: int = 1, seed: int = 0, device="cpu"):
    """``n`` simulated cardiac frames (one slice) of ``coils`` coils, masked
    with the CMRxRecon x4 line mask (24 ACS lines, fewer on narrow images):
    a list of dicts with kspace (1, C, H, W) complex64, mask (1, 1, H, W) bool,
    target (1, H, W) and max_value (1,)."""
    import torch

    from fmrecon.data.simulate import simulate_cardiac_subject
    from fmrecon.physics.coils import rss
    from fmrecon.physics.fft import ifft2c
    from fmrecon.physics.masks import create_mask

    sim = simulate_cardiac_subject(0, seed, size=(h, w), n_slices=1, n_frames=n, n_coils=coils)
    full = torch.from_numpy(sim["kspace"][:, 0])  # (n, C, H, W)
    lines = create_mask("cmrxrecon-uniform", 4, num_acs=min(24, w // 2))((h, w))
    mask = torch.from_numpy(lines)[None, None]  # (1, 1, H, W)
    target = rss(ifft2c(full), dim=1).float()
    out = []
    for i in range(n):
        t = target[i : i + 1]
        out.append(
            {
                "kspace": (full[i : i + 1] * mask).to(device),
                "mask": mask.to(device),
                "target": t.to(device),
                "max_value": t.amax(dim=(-2, -1)).to(device),
            }
        )
    return out


def build_model(name: str, options: dict | None, device):
    """Random weights (the encoder too): timing and memory do not depend on them."""
    from fmrecon.models.registry import create_model, get_spec

    kw = dict(options or {})
    if get_spec(name).encoder is not None:
        kw.setdefault("encoder_weights", "random")
        kw.setdefault("allow_random_encoder", True)
    return create_model(name, **kw).to(device)


def supports_checkpointing(name: str) -> bool:
    from fmrecon.models.registry import get_spec

    return get_spec(name).family in CHECKPOINTED


def set_checkpointing(model, on: bool) -> None:
    """Switch per-cascade activation checkpointing (VarNet-type models)."""
    for m in model.modules():
        if hasattr(m, "checkpoint_cascades"):
            m.checkpoint_cascades = bool(on)


class Stepper:
    """One model with its optimizer and SSIM loss: ``train(x, precision)`` is
    forward + SSIM loss + backward + Adam step; ``infer(x, precision)`` a
    forward under inference mode. Loss in fp32 outside autocast."""

    def __init__(self, model, device):
        import torch

        from fmrecon.losses import SSIMLoss

        self.model, self.device = model, device
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=1e-4) if params else None
        self.loss = SSIMLoss().to(device)

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train(self, x: dict, precision: str) -> None:
        from fmrecon.utils import autocast_context

        self.model.train()
        with autocast_context(self.device, precision):
            out = self.model(x["kspace"], x["mask"])
        loss = self.loss(out.float(), x["target"], x["max_value"])
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sync()

    def infer(self, x: dict, precision: str):
        import torch

        from fmrecon.utils import autocast_context

        self.model.eval()
        with torch.inference_mode(), autocast_context(self.device, precision):
            out = self.model(x["kspace"], x["mask"])
        self.sync()
        return out.float()


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median(xs) -> float | None:
    return statistics.median(xs) if xs else None


def _order(items, r: int) -> list:
    """Round ``r``'s order: reversed every other round (ABBA), so that no
    variant always runs first or right after the same other one."""
    items = list(items)
    return items[::-1] if r % 2 else items


def paired_ratio(a: list[float], b: list[float]) -> float | None:
    """Median over rounds of ``a[i] / b[i]`` when the two were measured in the
    same rounds (adjacent in time, so a slow spell of the machine cancels);
    else the ratio of the medians."""
    if a and b and len(a) == len(b):
        return statistics.median(x / y for x, y in zip(a, b, strict=True))
    return _ratio(_median(a), _median(b))


# ----------------------------------------------------------------------------- memory


def _status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _ru_maxrss_mb() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024**2 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB else


class MemoryProbe:
    """Peak memory of one measurement: ``start()`` then ``stop() -> dict``
    (base_mb, peak_mb, delta_mb = peak - base, method)."""

    def __init__(self, device):
        self.device = device
        self.hwm = False  # high-water mark reset available (Linux)
        self._libc = None
        if device.type == "cpu":
            try:
                self._libc = ctypes.CDLL(None)
                self._libc.malloc_trim  # noqa: B018 (glibc only)
            except (OSError, AttributeError):
                self._libc = None

    def start(self) -> None:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            self.method = "cuda max_memory_allocated"
            return
        if self._libc is not None:
            self._libc.malloc_trim(0)  # hand freed heap pages back: RSS = live memory
        try:  # reset the high-water mark so the build's own peak does not count
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "peak RSS (VmHWM reset after build)"
            self.hwm = True
        except OSError:
            self.method = "ru_maxrss"
            self.hwm = False
        self.base = _status_mb("VmRSS") or _ru_maxrss_mb()

    def stop(self) -> dict:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            hwm = _status_mb("VmHWM") if self.hwm else None
            peak = hwm if hwm is not None else _ru_maxrss_mb()
        return {
            "base_mb": round(self.base, 1),
            "peak_mb": round(peak, 1),
            "delta_mb": round(peak - self.base, 1),
            "method": self.method,
        }


# ----------------------------------------------------------------------------- tasks
# Each task runs in a fresh process (see run_task) and returns a JSON-able dict.


def task_run(model, options, size, coils, variants, memory, repeats, warmup, device, threads):
    """One model at one size. With ``memory`` (one variant, in a fresh process):
    the first training step's peak, then an inference's (ckpt off), which also
    warm the process up. Then ``warmup`` + ``repeats`` rounds, each timing every
    precision's inference and every (precision, checkpointing) training step,
    round-robin so that all variants see the same machine state."""
    from fmrecon.utils import count_parameters

    _setup(threads)
    dev = _device(device)
    net = build_model(model, options, dev)
    x = simulate_slices(*size, coils, device=dev)[0]
    st = Stepper(net, dev)
    trainable = st.opt is not None
    variants = [(p, c) for p, c in variants]
    out = {
        "trainable_params": count_parameters(net, trainable_only=True),
        "total_params": count_parameters(net),
        "threads": _threads(),
        "memory": None,
    }
    if memory:
        (p, c), probe = variants[0], MemoryProbe(dev)
        out["memory"] = {"train": None, "infer": None}
        if c is not None:
            set_checkpointing(net, c)
        if trainable:
            probe.start()
            st.train(x, p)
            out["memory"]["train"] = probe.stop()
        # a second measurement in this process needs the high-water mark reset
        if not c and (dev.type == "cuda" or probe.hwm or not trainable):
            probe.start()
            st.infer(x, p)
            out["memory"]["infer"] = probe.stop()
    # inference does not depend on checkpointing: timed once per precision
    infer = {p: [] for p, c in variants if not c}
    train = {(p, c): [] for p, c in variants} if trainable else {}
    for r in range(warmup + repeats):
        for p, times in _order(infer.items(), r):
            t = _timed(lambda p=p: st.infer(x, p))
            if r >= warmup:
                times.append(t)
        for (p, c), times in _order(train.items(), r):
            if c is not None:
                set_checkpointing(net, c)
            t = _timed(lambda p=p: st.train(x, p))
            if r >= warmup:
                times.append(t)
    out["infer"] = infer
    out["train"] = [{"precision": p, "checkpointing": c, "times": v} for (p, c), v in train.items()]
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def task_reference(size, coils, repeats, warmup, device, threads, options=None):
    """Goal 1: our E2E-VarNet and fastMRI's VarNet with the same weights on
    the same input: output difference, then interleaved timings."""
    try:
        import fastmri.models as fm
    except ImportError:
        return {"available": False, "note": FASTMRI_HINT}
    import torch

    from fmrecon.models.varnet import VarNet

    _setup(threads)
    dev = _device(device)
    kw = {"num_cascades": 12, "chans": 18, "pools": 4, "sens_chans": 8, "sens_pools": 4}
    kw.update({k: v for k, v in (options or {}).items() if k in kw})
    ours = VarNet(**kw).to(dev)
    ref = fm.VarNet(**kw).to(dev)
    ref.load_state_dict(ours.state_dict())
    x = simulate_slices(*size, coils, device=dev)[0]
    # fastMRI's inputs: real k-space (B, C, H, W, 2), mask (B, 1, 1, W, 1)
    xr = dict(x, kspace=torch.view_as_real(x["kspace"]).contiguous())
    xr["mask"] = x["mask"][:, :, :1, :, None]
    ours.eval(), ref.eval()
    with torch.no_grad():
        a, b = ours(x["kspace"], x["mask"]), ref(xr["kspace"], xr["mask"])
    rel = float((a - b).abs().max() / b.abs().max())
    s_ours, s_ref = Stepper(ours, dev), Stepper(ref, dev)
    t = {"infer_ours": [], "infer_ref": [], "train_ours": [], "train_ref": []}
    calls = {
        "infer_ours": lambda: s_ours.infer(x, "fp32"),
        "infer_ref": lambda: s_ref.infer(xr, "fp32"),
        "train_ours": lambda: s_ours.train(x, "fp32"),
        "train_ref": lambda: s_ref.train(xr, "fp32"),
    }
    for r in range(warmup + repeats):
        for key, fn in _order(calls.items(), r):
            dt = _timed(fn)
            if r >= warmup:
                t[key].append(dt)
    return {"available": True, "max_rel_diff": rel, "times": t, "config": kw,
            "threads": _threads()}  # fmt: skip


def task_encoder(encoder, blocks, repeats, warmup, device, threads):
    """Goal 2: the truncated encoder (``blocks``) against the full one, forward
    and forward+backward to the input pixels, at the encoder's input size."""
    import torch

    from fmrecon.encoders import build_encoder
    from fmrecon.models.registry import create_model

    _setup(threads)
    dev = _device(device)
    with torch.device("meta"):  # what the FM-VarNet builds, without memory
        fmv = create_model("fm-varnet-clip", encoder_weights="random", allow_random_encoder=True)
    built = len(fmv.encoder.blocks)
    trunc = build_encoder(encoder, num_layers=blocks, weights="random", allow_random=True).to(dev)
    full = build_encoder(encoder, num_layers=None, weights="random", allow_random=True).to(dev)
    s = trunc.image_size
    x = torch.randn(1, 3, s, s, device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def fwd(enc):
        with torch.no_grad():
            enc(x)
        sync()

    def fwd_bwd(enc, used=None):
        xi = x.clone().requires_grad_(True)
        feats = enc(xi)[:used]
        sum(f.mean() for f in feats).backward()
        sync()

    t = {"fwd_trunc": [], "fwd_full": [], "fb_trunc": [], "fb_full": [], "fb_full_used": []}
    calls = {
        "fwd_trunc": lambda: fwd(trunc),
        "fwd_full": lambda: fwd(full),
        "fb_trunc": lambda: fwd_bwd(trunc),
        "fb_full": lambda: fwd_bwd(full),
        # the full encoder when only the first `blocks` outputs are used
        "fb_full_used": lambda: fwd_bwd(full, blocks),
    }
    for r in range(warmup + repeats):
        for key, fn in _order(calls.items(), r):
            dt = _timed(fn)
            if r >= warmup:
                t[key].append(dt)
    return {
        "encoder": encoder,
        "image_size": s,
        "blocks_trunc": trunc.num_layers,
        "blocks_full": full.num_layers,
        "fm_varnet_encoder_blocks": built,
        "times": t,
        "threads": _threads(),
    }


def task_bf16_eval(model, options, size, coils, n_slices, checkpoint, train_steps, device,
                   threads):  # fmt: skip
    """Goal 3: SSIM of one model (same weights) on the same simulated slices
    with the fixed x4 mask, fp32 vs bf16 autocast.

    With ``checkpoint``: that trained model. Without: ``model`` with random
    weights trained for ``train_steps`` fp32 Adam steps (lr 1e-3, the FM-VarNet
    paper's) on the same slices. The FM models' heads start at zero, so an
    untrained model is exactly the zero-filled reconstruction and bf16 would
    never reach its denoisers' output; after a few steps every cascade adds a
    small learned correction, as in training (the fp32 SSIM is reported)."""
    from fmrecon.losses import ssim

    _setup(threads)
    dev = _device(device)
    if checkpoint:
        from fmrecon.models.io import load_model

        net = load_model(checkpoint).to(dev)
        weights = f"checkpoint {checkpoint}"
    else:
        net = build_model(model, options, dev)
        weights = f"random, then {train_steps} fp32 Adam steps"
    st = Stepper(net, dev)
    slices = list(simulate_slices(*size, coils, n=n_slices, device=dev))
    if not checkpoint and st.opt is not None:
        for group in st.opt.param_groups:
            group["lr"] = 1e-3
        for i in range(train_steps):
            st.train(slices[i % len(slices)], "fp32")
    s32, s16, rel = [], [], []
    for x in slices:
        a, b = st.infer(x, "fp32"), st.infer(x, "bf16")
        s32.append(float(ssim(a, x["target"], x["max_value"])[0]))
        s16.append(float(ssim(b, x["target"], x["max_value"])[0]))
        rel.append(float((a - b).abs().max() / a.abs().max().clamp_min(1e-30)))
    return {
        "model": getattr(net, "fmrecon_spec", {}).get("name", model),
        "weights": weights,
        "slices": n_slices,
        "size": list(size),
        "ssim_fp32": statistics.fmean(s32),
        "ssim_bf16": statistics.fmean(s16),
        "abs_diff": abs(statistics.fmean(s32) - statistics.fmean(s16)),
        "max_abs_diff_per_slice": max(abs(p - q) for p, q in zip(s32, s16, strict=True)),
        "max_rel_output_diff": max(rel),
        "bf16": bf16_support(dev.type),
    }


def task_loading(model, options, size, coils, steps, workers, quick, device, threads):
    """Goal 6: slices/s from CMRxRecon files (``workers`` loader processes) and
    the share of an e2e-varnet training step spent waiting for data."""
    import shutil

    from torch.utils.data import DataLoader

    from fmrecon.data.simulate import simulate_cmrxrecon
    from fmrecon.data.slices import SliceDataset, collate
    from fmrecon.data.volumes import discover
    from fmrecon.physics.masks import create_mask

    _setup(threads)
    dev = _device(device)
    h, w = size
    n_frames = 2 if quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="fmrecon-bench-data-"))
    try:
        t0 = time.perf_counter()
        simulate_cmrxrecon(tmp, 2, size=(h, w), n_slices=2, n_frames=n_frames, n_coils=coils,
                           accelerations=(4,), lax=False)  # fmt: skip
        sim_s = time.perf_counter() - t0
        vols = [v for v in discover(tmp)[0] if v.fully_sampled]
        mask = create_mask("cmrxrecon-uniform", 4, num_acs=min(24, w // 2))
        ds = SliceDataset(vols, mask, mask_seed="random")
        n = len(ds)
        serial = [_timed(lambda i=i: ds[i]) for i in range(n)]  # main process, no workers
        plain = DataLoader(ds, batch_size=1, shuffle=False, num_workers=workers,
                           collate_fn=collate, persistent_workers=workers > 0)  # fmt: skip
        first = _timed(lambda: list(plain))  # worker start-up and file opening
        second = _timed(lambda: list(plain))
        plain = None  # its persistent workers end with it

        # a training loop fed by the loader: time spent waiting for each batch
        st = Stepper(build_model(model, options, dev), dev)
        loader = DataLoader(ds, batch_size=1, shuffle=True, num_workers=workers,
                            collate_fn=collate, persistent_workers=workers > 0)  # fmt: skip
        it, wait, comp = iter(loader), [], []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)
                b = next(it)
            t1 = time.perf_counter()
            x = {"kspace": b.kspace.to(dev), "mask": b.mask.to(dev),
                 "target": b.target.to(dev), "max_value": b.max_value.to(dev)}  # fmt: skip
            st.train(x, "fp32")
            t2 = time.perf_counter()
            if i > 0:  # the first step waits for worker start-up and warms the model up
                wait.append(t1 - t0)
                comp.append(t2 - t1)
        it = loader = None  # workers end
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "files": len(vols),
        "slices": n,
        "size": [h, w],
        "coils": coils,
        "workers": workers,
        "simulate_s": sim_s,
        "serial_s_per_slice": _median(serial),
        "epoch_s_cold": first,
        "epoch_s": second,
        "slices_per_s": n / second,
        "slices_per_s_serial": 1.0 / _median(serial),
        "steps": len(comp),
        "wait_s": wait,
        "step_s": comp,
        "threads": _threads(),
        "note": "files freshly written, so read from the page cache",
    }


def task_feature_cache(quick):
    """Goal 5, from the other half of issue 5 (``fmrecon.perf.cache``)."""
    try:
        from fmrecon.perf.cache import bench_feature_cache
    except ImportError as err:
        return {"skipped": f"fmrecon.perf.cache.bench_feature_cache not available ({err})"}
    return {"goal_entry": bench_feature_cache(quick)}


def task_memory_estimate(quick):
    """Goal 7 (``fmrecon.perf.memory``): its own goal entry when it has
    ``bench_memory``, else ``memory_table()`` rows."""
    try:
        from fmrecon.perf import memory
    except ImportError as err:
        return {"skipped": f"fmrecon.perf.memory not available ({err})"}
    if hasattr(memory, "bench_memory"):
        return {"goal_entry": memory.bench_memory(quick)}
    if hasattr(memory, "memory_table"):
        return {"table": memory.memory_table()}
    return {"skipped": "fmrecon.perf.memory has neither bench_memory nor memory_table"}


TASKS: dict[str, Callable[..., dict]] = {
    "run": task_run,
    "reference": task_reference,
    "encoder": task_encoder,
    "bf16_eval": task_bf16_eval,
    "loading": task_loading,
    "feature_cache": task_feature_cache,
    "memory_estimate": task_memory_estimate,
}


# ----------------------------------------------------------------------------- processes


def _json_default(obj):
    """Tensors, arrays, paths and numpy scalars in task results -> JSON."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (Path, set, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    return str(obj)


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of a measurement process: ``TASK_JSON RESULT_JSON``."""
    task_file, result_file = argv if argv is not None else sys.argv[1:3]
    spec = json.loads(Path(task_file).read_text())
    try:
        result = TASKS[spec["task"]](**spec["args"])
        code = 0
    except Exception as err:  # reported to the parent, which carries on
        import traceback

        result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        code = 1
    Path(result_file).write_text(json.dumps(result, default=_json_default))
    return code


_CHILD = "import sys; from fmrecon.perf.bench import child_main; sys.exit(child_main())"


def run_task(name: str, args: dict, cfg: BenchConfig) -> dict:
    """Run one task in a fresh Python process (or in this one without
    ``cfg.isolate``). Failures come back as ``{"error": ...}``."""
    if not cfg.isolate:
        try:
            return json.loads(json.dumps(TASKS[name](**args), default=_json_default))
        except Exception as err:
            return {"error": f"{type(err).__name__}: {err}"}
    import fmrecon

    src = str(Path(fmrecon.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="fmrecon-bench-") as tmp:
        task_file, result_file = Path(tmp) / "task.json", Path(tmp) / "result.json"
        task_file.write_text(json.dumps({"task": name, "args": args}, default=_json_default))
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(task_file), str(result_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: loader workers end with it
        )
        try:
            _, err = proc.communicate(timeout=cfg.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"error": f"timed out after {cfg.timeout:g} s"}
        if result_file.exists():
            return json.loads(result_file.read_text())
        tail = (err or "").strip().splitlines()[-3:]
        return {"error": f"process ended with code {proc.returncode}: " + " | ".join(tail)}


# ----------------------------------------------------------------------------- the run


def _log(msg: str, t0: float) -> None:
    print(f"[bench {time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)


def _opts(cfg: BenchConfig, name: str) -> dict:
    return dict(cfg.model_options.get(name, {}))


def reference_size(cfg: BenchConfig) -> tuple[int, int]:
    """Where goal 1 is measured: the first size (quick: at least 128x96)."""
    first = tuple(cfg.sizes[0])
    if not cfg.quick:
        return first
    return max(first, QUICK_REFERENCE_SIZE, key=lambda s: s[0] * s[1])


def cine_size(sizes) -> tuple[int, int]:
    """The largest size (by pixels): where goals 4 and 6 are measured."""
    return tuple(max(sizes, key=lambda s: s[0] * s[1]))


def _fm_varnet(cfg: BenchConfig) -> str:
    from fmrecon.models.registry import get_spec

    fm = [m for m in cfg.models if get_spec(m).family == "fm-varnet"]
    return fm[0] if fm else "fm-varnet-clip"


def bench_model(cfg: BenchConfig, name: str, size, device: str, log) -> tuple[list, list]:
    """Rows for one model at one size, and the errors met. Interleaved (full
    bench): one timing process for all variants, then one fresh memory process
    per variant. Otherwise (quick): one fresh process per variant that measures
    memory first (which also warms it up), then times that variant."""
    common = {"model": name, "options": _opts(cfg, name), "size": list(size),
              "coils": cfg.coils, "device": device, "threads": cfg.threads}  # fmt: skip
    ckpts = [False, True] if supports_checkpointing(name) else [None]
    variants = [(p, c) for c in ckpts for p in cfg.precisions]
    where = f"{name} {size_label(size)}"
    results: dict[tuple, tuple[dict, dict]] = {}
    if cfg.interleave:
        log(f"{where}: timing {len(variants)} variants")
        timing = run_task("run", dict(common, variants=variants, memory=False,
                          repeats=cfg.repeats, warmup=cfg.warmup), cfg)  # fmt: skip
    for p, c in variants:
        log(f"{where} {p} checkpointing {_onoff(c)}: memory" + ("" if cfg.interleave else
            " and timing"))  # fmt: skip
        if cfg.interleave:
            mem = run_task("run", dict(common, variants=[(p, c)], memory=True, repeats=0,
                           warmup=0), cfg)  # fmt: skip
            results[(p, c)] = (timing, mem)
        else:  # the memory step is the first warm-up call
            res = run_task("run", dict(common, variants=[(p, c)], memory=True,
                           repeats=cfg.repeats, warmup=max(cfg.warmup - 1, 0)), cfg)  # fmt: skip
            results[(p, c)] = (res, res)
    errors, rows = [], []
    for (p, c), (timing, mem) in results.items():
        for what, res in (("timing", timing), ("memory", mem)):
            msg = f"{where} {p} ckpt {_onoff(c)} {what}: {res.get('error')}"
            if "error" in res and msg not in errors:
                errors.append(msg)
        rows.append(_row(name, size, cfg.coils, p, c, timing, mem))
    # checkpointing acts only with gradients: inference is that of the plain model
    plain = {r["precision"]: r for r in rows if not r["checkpointing"]}
    for r in rows:
        if r["checkpointing"] and r["precision"] in plain:
            for k in ("infer_s", "infer_times", "infer_mem_mb", "infer_peak_mb"):
                r[k] = plain[r["precision"]][k]
            r["infer_note"] = "same as checkpointing off (it acts only with gradients)"
    return rows, errors


def _onoff(c) -> str:
    return "n/a" if c is None else ("on" if c else "off")


def _row(name, size, coils, precision, ckpt, timing, mem) -> dict:
    train_times = []
    for v in timing.get("train", []):
        if v["precision"] == precision and v["checkpointing"] == ckpt:
            train_times = v["times"]
    infer_times = timing.get("infer", {}).get(precision, []) if not ckpt else []
    memory = mem.get("memory") or {}
    tm, im = memory.get("train") or {}, memory.get("infer") or {}
    return {
        "model": name,
        "size": size_label(size),
        "coils": coils,
        "batch": 1,
        "precision": precision,
        "checkpointing": ckpt,
        "infer_s": _median(infer_times),
        "infer_times": infer_times,
        "train_s": _median(train_times),
        "train_times": train_times,
        "infer_mem_mb": im.get("delta_mb"),
        "infer_peak_mb": im.get("peak_mb"),
        "train_mem_mb": tm.get("delta_mb"),
        "train_peak_mb": tm.get("peak_mb"),
        "mem_base_mb": tm.get("base_mb", im.get("base_mb")),
        "mem_method": tm.get("method", im.get("method")),
        "trainable_params": timing.get("trainable_params"),
        "total_params": timing.get("total_params"),
        "error": timing.get("error") or mem.get("error"),
    }


def run_bench(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> dict:
    """Run the table and the goals; returns the result (see ``fmrecon bench --help``)."""
    t0 = time.perf_counter()
    log = log or (lambda msg: _log(msg, t0))
    device = _device(cfg.device).type
    machine = machine_info(device)
    machine["calibration_gflops"] = {"start": matmul_gflops()}
    rows: list[dict] = []
    errors: list[str] = []
    extras: dict[str, dict] = {}
    goals = set(cfg.goals)
    first = tuple(cfg.sizes[0])
    child = {"device": device, "threads": cfg.threads}

    def goal_task(key: str, name: str, args: dict) -> None:
        extras[key] = run_task(name, dict(args, **child), cfg)
        if "error" in extras[key]:
            errors.append(f"{key}: {extras[key]['error']}")

    if 1 in goals:
        ref_size = reference_size(cfg)
        log(f"goal 1: e2e-varnet vs fastMRI VarNet at {size_label(ref_size)}")
        goal_task("reference", "reference", {"size": list(ref_size), "coils": cfg.coils,
                  "repeats": max(cfg.repeats, 3 if cfg.quick else 5),
                  "warmup": max(cfg.warmup, 1),
                  "options": _opts(cfg, "e2e-varnet")})  # fmt: skip
    if 2 in goals:
        log(f"goal 2: 6-block vs full {cfg.encoder} encoder")
        goal_task("encoder", "encoder", {"encoder": cfg.encoder, "blocks": 6,
                  "repeats": max(cfg.repeats, 3), "warmup": max(cfg.warmup, 1)})  # fmt: skip
    for name in cfg.models:
        for size in cfg.sizes:
            r, e = bench_model(cfg, name, tuple(size), device, log)
            rows += r
            errors += e
    if 3 in goals:
        fm = _fm_varnet(cfg)
        log(f"goal 3: {fm} SSIM fp32 vs bf16 at {size_label(first)}")
        goal_task("bf16_eval", "bf16_eval", {"model": fm, "options": _opts(cfg, fm),
                  "size": list(first), "coils": cfg.coils, "n_slices": 1 if cfg.quick else 3,
                  "checkpoint": cfg.eval_checkpoint, "train_steps": cfg.train_steps})  # fmt: skip
    if 6 in goals:
        cine = cine_size(cfg.sizes)
        log(f"goal 6: data loading at {size_label(cine)}")
        goal_task("loading", "loading", {"model": "e2e-varnet",
                  "options": _opts(cfg, "e2e-varnet"), "size": list(cine),
                  "coils": cfg.coils, "steps": 3 if cfg.quick else 6, "workers": 2,
                  "quick": cfg.quick})  # fmt: skip
    if 5 in goals:
        log("goal 5: feature cache (fmrecon.perf.cache)")
        extras["feature_cache"] = run_task("feature_cache", {"quick": cfg.quick}, cfg)
    if 7 in goals:
        log("goal 7: memory estimate (fmrecon.perf.memory)")
        extras["memory_estimate"] = run_task("memory_estimate", {"quick": cfg.quick}, cfg)
    for key in ("feature_cache", "memory_estimate"):
        if key in extras and "error" in extras[key]:
            errors.append(f"{key}: {extras[key]['error']}")
    machine["calibration_gflops"]["end"] = matmul_gflops()
    settings = asdict(cfg)
    settings["sizes"] = [size_label(s) for s in cfg.sizes]
    settings["device"] = device
    settings["batch"] = 1
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "settings": settings,
        "machine": machine,
        "rows": rows,
        "goals": compute_goals(rows, extras, cfg, machine),
        "memory_estimate": _memory_rows(extras.get("memory_estimate")),
        "extras": {k: v for k, v in extras.items() if k not in ("memory_estimate",)},
        "errors": errors,
    }


def _memory_rows(res: dict | None) -> list | None:
    if not res:
        return None
    if "table" in res:
        return res["table"]
    entry = res.get("goal_entry") or {}
    return (entry.get("detail") or {}).get("table")


# ----------------------------------------------------------------------------- goals


def _goal(gid: str, goal: str, figure, target: str, met, unit: str = "", note: str = "",
          detail: dict | None = None) -> dict:  # fmt: skip
    return {"id": gid, "goal": goal, "figure": figure, "target": target, "met": met,
            "unit": unit, "note": note, "detail": detail or {}}  # fmt: skip


def find_row(rows, model, size, precision, ckpt) -> dict | None:
    for r in rows:
        if (r["model"], r["size"], r["precision"], r["checkpointing"]) == (
            model, size_label(size) if not isinstance(size, str) else size, precision, ckpt,
        ):  # fmt: skip
            return r
    return None


def _ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def _missing(gid: str, goal: str, target: str, why: str, unit: str = "") -> dict:
    return _goal(gid, goal, None, target, None, unit, note=why)


def compute_goals(rows: list[dict], extras: dict, cfg: BenchConfig, machine: dict) -> list[dict]:
    """The goal entries, each from measurements of this run only."""
    goals, want = [], set(cfg.goals)
    first, cine = size_label(cfg.sizes[0]), size_label(cine_size(cfg.sizes))
    fm = _fm_varnet(cfg)

    if 1 in want:
        at = size_label(reference_size(cfg))
        g_speed = "1 reference check: speed, e2e-varnet / fastMRI VarNet time"
        g_out = "1 reference check: output, max relative difference (same weights)"
        ref = extras.get("reference") or {}
        if "error" in ref:
            goals.append(_missing("1a", g_speed, "<= 1.0", f"failed: {ref['error']}", "x"))
        elif not ref.get("available"):
            goals.append(_missing("1a", g_speed, "<= 1.0", ref.get("note", FASTMRI_HINT), "x"))
            goals.append(_missing("1b", g_out, "<= 1e-4", ref.get("note", FASTMRI_HINT)))
        else:
            tt = ref["times"]
            t = {k: _median(v) for k, v in tt.items()}
            ri = paired_ratio(tt["infer_ours"], tt["infer_ref"])
            rt = paired_ratio(tt["train_ours"], tt["train_ref"])
            worst = max(ri, rt)
            detail = {"size": at, "coils": cfg.coils, "inference_ratio": ri,
                      "train_step_ratio": rt, **{f"{k}_s": v for k, v in t.items()},
                      "times": ref["times"], "config": ref["config"]}  # fmt: skip
            goals.append(_goal(
                "1a", g_speed, worst, "<= 1.0", worst <= 1.0, "x",
                f"worst of inference {ri:.2f} ({t['infer_ours']:.3g} s vs "
                f"{t['infer_ref']:.3g} s) and training step {rt:.2f} ({t['train_ours']:.3g} s "
                f"vs {t['train_ref']:.3g} s) at {at}; median of {len(tt['train_ours'])} "
                f"paired rounds",
                detail,
            ))  # fmt: skip
            d = ref["max_rel_diff"]
            goals.append(_goal("1b", g_out, d, "<= 1e-4", d <= 1e-4, "",
                               f"fp32, eval mode, at {at}"))  # fmt: skip

    if 2 in want:
        g = "2 truncated encoder: full / 6-block encoder forward time (224x224, batch 1)"
        enc = extras.get("encoder") or {}
        if "error" in enc or not enc:
            goals.append(_missing("2", g, ">= 1.8x, 6 blocks built", enc.get("error", "not run")))
        else:
            tt = enc["times"]
            t = {k: _median(v) for k, v in tt.items()}
            rf = paired_ratio(tt["fwd_full"], tt["fwd_trunc"])
            rb = paired_ratio(tt["fb_full"], tt["fb_trunc"])
            ru = paired_ratio(tt["fb_full_used"], tt["fb_trunc"])
            built = enc["fm_varnet_encoder_blocks"]
            goals.append(_goal(
                "2", g, rf, ">= 1.8x, 6 blocks built", rf >= 1.8 and built == 6, "x",
                f"forward {t['fwd_trunc']:.3g} s vs {t['fwd_full']:.3g} s; forward+backward "
                f"{t['fb_trunc']:.3g} s vs {t['fb_full']:.3g} s ({rb:.2f}x); FM-VarNet builds "
                f"{built} of {enc['blocks_full']} blocks",
                {"forward_ratio": rf, "fwd_bwd_ratio": rb, "fwd_bwd_ratio_first6_used": ru,
                 **{f"{k}_s": v for k, v in t.items()}, "encoder": enc["encoder"],
                 "blocks": [enc["blocks_trunc"], enc["blocks_full"]],
                 "fm_varnet_encoder_blocks": built, "times": enc["times"]},
            ))  # fmt: skip

    if 3 in want:
        g = f"3 bf16 autocast: {fm} training step fp32 / bf16 time at {cine}"
        bf = (machine.get("bf16") or {}).get("supported")
        per = {}
        for s in cfg.sizes:
            for c in (False, True):
                a = find_row(rows, fm, s, "fp32", c)
                b = find_row(rows, fm, s, "bf16", c)
                if a and b and a["train_s"] and b["train_s"]:
                    per[f"{size_label(s)} ckpt {_onoff(c)}"] = {
                        "train_ratio": paired_ratio(a["train_times"], b["train_times"]),
                        "infer_ratio": paired_ratio(a["infer_times"], b["infer_times"]),
                        "fp32_s": a["train_s"], "bf16_s": b["train_s"],
                    }  # fmt: skip
        head = per.get(f"{cine} ckpt off")
        if head is None:
            goals.append(_missing("3a", g, ">= 1.5x (bf16 hardware)",
                                  f"no fp32 and bf16 rows of {fm} at {cine}", "x"))  # fmt: skip
        else:
            r = head["train_ratio"]
            met = (r >= 1.5) if bf else None
            note = (f"{head['fp32_s']:.3g} s vs {head['bf16_s']:.3g} s; bf16 hardware: "
                    f"{'yes' if bf else 'no (target does not apply)'}")  # fmt: skip
            goals.append(_goal("3a", g, r, ">= 1.5x (bf16 hardware)", met, "x", note,
                               {"per_size": per, "bf16": machine.get("bf16")}))  # fmt: skip
        g = f"3 bf16 autocast: |SSIM fp32 - SSIM bf16|, fixed evaluation at {first}"
        ev = extras.get("bf16_eval") or {}
        if "error" in ev or not ev:
            goals.append(_missing("3b", g, "<= 0.002", ev.get("error", "not run")))
        else:
            d = ev["abs_diff"]
            goals.append(_goal(
                "3b", g, d, "<= 0.002", d <= 0.002, "",
                f"SSIM {ev['ssim_fp32']:.4f} (fp32) vs {ev['ssim_bf16']:.4f} (bf16) on "
                f"{ev['slices']} simulated slice(s), x4 mask; {ev['model']}, {ev['weights']}",
                ev,
            ))  # fmt: skip

    if 4 in want:
        g = f"4 checkpointing: {fm} training memory reduction at {cine}"
        a = find_row(rows, fm, cine, "fp32", False)
        b = find_row(rows, fm, cine, "fp32", True)
        if not (a and b and a["train_mem_mb"] and b["train_mem_mb"] is not None):
            goals.append(_missing("4", g, ">= 40%", f"no fp32 memory rows of {fm} at {cine}",
                                  "fraction"))  # fmt: skip
        else:
            red = 1 - b["train_mem_mb"] / a["train_mem_mb"]
            detail = {"off_mb": a["train_mem_mb"], "on_mb": b["train_mem_mb"],
                      "reduction_of_absolute_peak": 1 - b["train_peak_mb"] / a["train_peak_mb"],
                      "time_ratio_on_off": paired_ratio(b["train_times"], a["train_times"]),
                      "method": a["mem_method"]}  # fmt: skip
            a16 = find_row(rows, fm, cine, "bf16", False)
            b16 = find_row(rows, fm, cine, "bf16", True)
            if a16 and b16 and a16["train_mem_mb"] and b16["train_mem_mb"] is not None:
                detail["bf16_reduction"] = 1 - b16["train_mem_mb"] / a16["train_mem_mb"]
                detail["bf16_on_mb"] = b16["train_mem_mb"]
            note = (
                f"{a['train_mem_mb']:.0f} MB -> {b['train_mem_mb']:.0f} MB above the built "
                f"model (fp32); step time x{detail['time_ratio_on_off'] or float('nan'):.2f}"
            )
            met = red >= 0.40
            n = _opts(cfg, fm).get("num_cascades", 12)
            if n < 12:  # the saving grows with the cascades: about 1 - 1/n of the activations
                met = None
                note += f"; {n} cascades (not judged: the goal is for 12)"
            goals.append(_goal("4", g, red, ">= 40%", met, "fraction", note, detail))

    if 5 in want:
        goals.append(_external("5", "5 feature cache", ">= 5x", extras.get("feature_cache")))

    if 6 in want:
        g = f"6 data loading: loader share of an e2e-varnet training step at {cine}"
        ld = extras.get("loading") or {}
        if "error" in ld or not ld:
            goals.append(_missing("6", g, "< 10%", ld.get("error", "not run"), "fraction"))
        else:
            wait, step = sum(ld["wait_s"]), sum(ld["step_s"])
            share = wait / (wait + step)
            t_step = _median(ld["step_s"])
            serial = ld["serial_s_per_slice"] / (ld["serial_s_per_slice"] + t_step)
            goals.append(_goal(
                "6", g, share, "< 10%", share < 0.10, "fraction",
                f"{ld['slices_per_s']:.1f} slices/s with {ld['workers']} workers "
                f"({ld['slices_per_s_serial']:.1f} in-process); waited {wait:.2f} s of "
                f"{wait + step:.1f} s over {ld['steps']} steps",
                {**ld, "share": share, "serial_share": serial, "step_s_median": t_step},
            ))  # fmt: skip

    if 7 in want:
        res = extras.get("memory_estimate")
        if res and "table" in res:  # rows only: wrap them
            rows7 = res["table"]
            res = {"goal_entry": {
                "goal": "7 memory estimate", "figure": f"{len(rows7)} settings",
                "target": "documented and tested", "met": bool(rows7), "detail": {},
            }}  # fmt: skip
        goals.append(_external("7", "7 memory estimate", "documented and tested", res))
    return goals


def _external(gid: str, goal: str, target: str, res: dict | None) -> dict:
    """A goal entry from fmrecon.perf.cache / memory, or why there is none."""
    if not res:
        return _missing(gid, goal, target, "not run")
    if "skipped" in res:
        return _missing(gid, goal, target, f"skipped: {res['skipped']}")
    if "error" in res:
        return _missing(gid, goal, target, f"failed: {res['error']}")
    e = dict(res["goal_entry"])
    e.setdefault("id", gid)
    for k, v in (("unit", ""), ("note", ""), ("detail", {}), ("target", target)):
        e.setdefault(k, v)
    return e


# ----------------------------------------------------------------------------- report


def _s(x) -> str:
    """Seconds with 3 significant digits."""
    return "-" if x is None else f"{x:.3g}"


def _mb(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def format_figure(g: dict) -> str:
    f, unit = g.get("figure"), g.get("unit", "")
    if f is None:
        return "-"
    if isinstance(f, str):
        return f
    if isinstance(f, bool):
        return str(f)
    if unit == "fraction":
        return f"{100 * f:.1f}%"
    if unit == "x":
        return f"{f:.2f}x"
    return f"{f:.3g}"


def _table(head, lines) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [head, *lines]]  # fmt: skip


def format_report(result: dict) -> str:
    """The human-readable report: machine, the table, the goals."""
    m, s = result["machine"], result["settings"]
    bf = m.get("bf16") or {}
    bf_text = ("yes (" + ", ".join(bf.get("cpu_flags") or [bf.get("source", "")]) + ")"
               if bf.get("supported") else "no")  # fmt: skip
    cal = m.get("calibration_gflops") or {}
    out = [
        f"fmrecon bench{' --quick' if s['quick'] else ''}: {m['cpu']}, "
        f"{m['logical_cores']} logical cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"device {s['device']}{' ' + m['gpu'] if m.get('gpu') else ''}, bf16 hardware {bf_text}",
        f"batch 1, {s['coils']} coils, simulated cardiac slices, x4 mask; median of "
        f"{s['repeats']} after {s['warmup']} warm-up; fp32 matmul {cal.get('start')} -> "
        f"{cal.get('end')} GFLOP/s (start -> end); {result['elapsed_s']:.0f} s",
        "",
    ]
    if result["rows"]:
        head = ("model", "size", "prec", "ckpt", "infer s", "train s", "infer MB",
                "train MB", "base MB")  # fmt: skip
        lines = [
            (r["model"], r["size"], r["precision"], _onoff(r["checkpointing"]),
             _s(r["infer_s"]), _s(r["train_s"]), _mb(r["infer_mem_mb"]),
             _mb(r["train_mem_mb"]), _mb(r["mem_base_mb"]))
            for r in result["rows"]
        ]  # fmt: skip
        out += _table(head, lines)
        method = next((r["mem_method"] for r in result["rows"] if r.get("mem_method")), "-")
        out += [
            f"infer s = seconds per slice, train s = seconds per training step (forward, SSIM "
            f"loss, backward, Adam); MB = peak above the built model and inputs, gradients and "
            f"Adam state included ({method}, "
            f"one fresh process per variant); base MB = memory after building",
        ]
        if not s.get("interleave", True):
            out.append(
                "quick: each variant timed once in its own process, so ratios between "
                "variants are rough; the full bench times them round-robin in one process"
            )
        opts = s.get("model_options") or {}
        reduced = [
            f"{k} {v['num_cascades']} cascades" for k, v in opts.items() if "num_cascades" in v
        ]
        if reduced:
            out.append("reduced models (goals 1, 3, 4 measured on them): " + ", ".join(reduced))
        out.append("")
    if result["goals"]:
        head = ("goal", "figure", "target", "met")
        met = {True: "yes", False: "NO", None: "n/a"}
        lines = [(g["goal"], format_figure(g), g.get("target", ""), met.get(g.get("met"), "?"))
                 for g in result["goals"]]  # fmt: skip
        out += _table(head, lines)
        out += [f"  {g['id']}: {g['note']}" for g in result["goals"] if g.get("note")]
    if result.get("memory_estimate"):
        out += ["", "memory estimate (fmrecon.perf.memory, GPU, batch 1):"]
        try:
            from fmrecon.perf.memory import format_table

            out.append(format_table(result["memory_estimate"]))
        except Exception:  # generic: one line per row
            out += [json.dumps(r) for r in result["memory_estimate"]]
    if result["errors"]:
        out += ["", "errors:"] + [f"  {e}" for e in result["errors"]]
    return "\n".join(out)


def write_json(result: dict, path: str | os.PathLike) -> None:
    """Write the result atomically."""
    from fmrecon.data.h5io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
