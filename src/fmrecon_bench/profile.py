"""Where the time of a VarNet-type model goes (issue 21 item 2): one inference
forward split into components, each with its share of the time and its achieved
GFLOP/s (``fmrecon-bench --profile``).

Components (a module's time is its forward hooks' wall time, inclusive; the
components are disjoint, so the shares add up to 100%):

- ``sensitivity net``: the sensitivity model (ACS masking, FFT, its U-Net, RSS
  normalisation);
- ``encoder``: the frozen ViT (FM-VarNet: the shared encoder, called by every
  cascade);
- ``decoder``: FM-VarNet's trainable denoiser layers (fusion, bottleneck,
  up-sampling, skips, merges, head); E2E-VarNet: the cascades' U-Nets
  (``NormUnet``, with their normalisation);
- ``preprocess / resize``: the rest of FM-VarNet's regularizer (magnitude,
  percentile scaling, the resize to the encoder's 224 x 224, mean/std, and the
  bilinear resizes between the decoder's layers and back to H x W, which are
  functions in its forward, not modules);
- ``FFT / SENSE / DC``: the rest of each cascade (SENSE reduce and expand, the
  FFTs, soft data consistency);
- ``output RSS``: the rest of the model (the final inverse FFT and RSS).

FLOPs are ``torch.utils.flop_counter.FlopCounterMode``'s (matmuls and
convolutions; FFTs and element-wise work count zero, so those components show
no GFLOP/s), attributed to the same modules. On a GPU each hook synchronises,
which serialises the work: shares are right, absolute times are slower.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fmrecon.utils import resolve_device
from fmrecon_bench.harness import build_model, prepare_process, simulated_batches

COMPONENTS = ("sensitivity net", "encoder", "decoder", "preprocess / resize", "FFT / SENSE / DC",
              "output RSS")  # fmt: skip
_DECODER = ("fusion", "bottleneck", "skips", "ups", "merges", "input_skip", "head")


def _groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The modules whose time makes each (inclusive) group."""
    cascades = list(model.cascades)
    regs = [c.model for c in cascades]
    encoders = {id(r.encoder): r.encoder for r in regs if hasattr(r, "encoder")}
    decoder = []
    for mod in (getattr(r, n) for r in regs for n in _DECODER if hasattr(r, n)):
        # a ModuleList is never called: its members are
        decoder.extend(mod if isinstance(mod, nn.ModuleList) else [mod])
    return {"model": [model], "sens": [model.sens_net], "cascades": cascades, "regs": regs,
            "encoder": list(encoders.values()), "decoder": decoder}  # fmt: skip


class _Timer:
    """Inclusive forward time of groups of modules (hooks; a module called inside
    another of the same group is not counted twice)."""

    def __init__(self, groups: dict[str, list[nn.Module]], device: torch.device):
        self.seconds: dict[str, float] = defaultdict(float)
        self.device, self.handles, self.depth = device, [], defaultdict(int)
        self.start: dict[str, float] = {}
        for name, mods in groups.items():
            for m in mods:
                self.handles.append(m.register_forward_pre_hook(self._pre(name)))
                self.handles.append(m.register_forward_hook(self._post(name)))

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _pre(self, name):
        def hook(*_):
            if self.depth[name] == 0:
                self.start[name] = self._now()
            self.depth[name] += 1

        return hook

    def _post(self, name):
        def hook(*_):
            self.depth[name] -= 1
            if self.depth[name] == 0:
                self.seconds[name] += self._now() - self.start[name]

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def forward_flops(model: nn.Module, batch) -> dict[str, int]:
    """FLOPs of one inference forward of ``model`` on ``batch``, counted by
    ``FlopCounterMode`` (matmuls and convolutions): per module name
    (``"Model.cascades.0..."``) and ``"Global"``, the whole forward. A compiled
    model runs eagerly for the count (same operators, same FLOPs). The one FLOP
    count of the bench: the profile's components and the table's GFLOP/s."""
    was_training = model.training
    model.eval()
    try:
        with (torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter,
              torch.no_grad()):  # fmt: skip
            model(batch.kspace, batch.mask)
    finally:
        model.train(was_training)
    return {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}


def achieved(flop: int | None, seconds: float | None, matmul_gflops: float | None):
    """(GFLOP/s, fraction of the matmul rate) of ``flop`` done in ``seconds``;
    None where a figure is missing or zero."""
    if not flop or not seconds:
        return None, None
    rate = flop / 1e9 / seconds
    return rate, (rate / matmul_gflops if matmul_gflops else None)


def _flops(model: nn.Module, batch) -> dict[str, int]:
    """FLOPs per group (FlopCounterMode's per-module counts, by module name)."""
    names = {id(m): n for n, m in model.named_modules()}
    counts = forward_flops(model, batch)
    root = type(model).__name__

    def total(mods) -> int:
        return sum(counts.get(f"{root}.{names[id(m)]}", 0) for m in mods if id(m) in names)

    groups = _groups(model)
    out = {k: total(v) for k, v in groups.items() if k != "model"}
    out["model"] = counts.get("Global", 0)
    return out


def component_profile(model: str, size, coils: int = 10, device: str = "cpu",
                      threads: int | None = None, options: dict | None = None,
                      repeats: int = 3) -> dict:  # fmt: skip
    """One model's inference forward at ``size``: seconds (the run of median total
    time among ``repeats`` after a warm-up), share and GFLOP/s per component."""
    prepare_process(threads)
    dev = resolve_device(device)
    net = build_model(model, options, dev).eval()
    batch = simulated_batches(*size, coils, device=dev)[0]
    groups = _groups(net)
    flops = _flops(net, batch)
    runs = []
    with torch.no_grad():
        net(batch.kspace, batch.mask)  # warm-up
        for _ in range(repeats):
            timer = _Timer(groups, dev)
            try:
                net(batch.kspace, batch.mask)
            finally:
                timer.remove()
            runs.append(dict(timer.seconds))
    # the run of median total time, whole (medians taken per component would come
    # from different runs and need not add up)
    med = sorted(runs, key=lambda r: r["model"])[len(runs) // 2]
    fm = bool(groups["encoder"])
    parts = {
        "sensitivity net": (med["sens"], flops["sens"]),
        "encoder": (med.get("encoder", 0.0), flops["encoder"]),
        "decoder": (med.get("decoder", 0.0), flops["decoder"]) if fm else (med["regs"],
                                                                         flops["regs"]),
        "preprocess / resize": (
            med["regs"] - med.get("encoder", 0.0) - med.get("decoder", 0.0),
            flops["regs"] - flops["encoder"] - flops["decoder"],
        ) if fm else (0.0, 0),
        "FFT / SENSE / DC": (med["cascades"] - med["regs"], flops["cascades"] - flops["regs"]),
        "output RSS": (med["model"] - med["sens"] - med["cascades"],
                       flops["model"] - flops["sens"] - flops["cascades"]),
    }  # fmt: skip
    total = med["model"]
    shown = [k for k in parts if fm or k not in ("encoder", "preprocess / resize")]
    rows = [{"component": k, "seconds": round(s, 4), "share": round(s / total, 4),
             "flop": int(f), "gflop": round(f / 1e9, 2),
             "gflops_per_s": round(f / 1e9 / s, 1) if f and s else None}
            for k, (s, f) in ((k, parts[k]) for k in shown)]  # fmt: skip
    return {"model": model, "size": list(size), "coils": coils, "device": dev.type,
            "threads": torch.get_num_threads(), "total_s": round(total, 4),
            "total_flop": int(flops["model"]), "total_gflop": round(flops["model"] / 1e9, 2),
            "rows": rows}  # fmt: skip


def format_profile(profiles: list[dict], matmul_gflops: float | None = None) -> list[str]:
    """The table of each profile (and the share of this run's matmul rate)."""
    out = []
    for p in profiles:
        out.append(f"{p['model']} {p['size'][0]}x{p['size'][1]}, {p['coils']} coils, inference "
                   f"forward {p['total_s']:.3f} s, {p['total_gflop']:.1f} GFLOP "
                   f"({p['total_gflop'] / p['total_s']:.0f} GFLOP/s)")  # fmt: skip
        for r in p["rows"]:
            rate = r["gflops_per_s"]
            frac = ""
            if rate and matmul_gflops:
                frac = f" ({100 * rate / matmul_gflops:.0f}% of matmul)"
            out.append(f"  {r['component']:<20} {r['seconds']:>8.3f} s  {100 * r['share']:5.1f}%  "
                       f"{r['gflop']:>7.2f} GFLOP  "
                       + (f"{rate:.0f} GFLOP/s{frac}" if rate else "-"))  # fmt: skip
    return out
