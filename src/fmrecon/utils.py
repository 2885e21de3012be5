"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from fmrecon.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("32", "bf16")  # inference: fp32, or bf16 autocast


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module``; a parameter shared by several
    submodules is counted once (``Module.parameters()`` de-duplicates). Works on
    the meta device, so full-size architectures can be counted without memory."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else CPU; a one-line error for a
    device this machine does not have."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device '{name}' (choose from {', '.join(DEVICES)})")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
    return torch.device(name)


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16"``, else a no-op context."""
    if precision == "fp32":  # accepted spelling of "32"
        precision = "32"
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# torch.compile's modes (torch.compile(mode=...)); "reduce-overhead" adds CUDA graphs
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_COMPILE_KEYS = ("mode", "dynamic", "fullgraph", "backend")


def compile_options(value, key: str = "trainer.compile") -> dict | None:
    """``false`` / ``true`` / a mode name / ``{mode, dynamic, fullgraph, backend}`` ->
    None (eager) or the keyword arguments of ``torch.compile``. ``dynamic``: None =
    torch's default (static shapes, dynamic after a shape change), true / false to
    force it. ``backend``: "inductor" (the default; the only one with modes) or
    another dynamo backend ("eager", "aot_eager": the plumbing without code
    generation, for dry runs). One-line ConfigError naming ``key``."""
    if value is None or value is False or value in ("false", "off", "no"):
        return None
    if value is True or value in ("true", "on", "yes"):
        value = {}
    if isinstance(value, str):
        value = {"mode": value}
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{key}' must be false, true, a mode or "
                          f"{{mode: ..., dynamic: ...}}, got {value!r}")  # fmt: skip
    unknown = sorted(set(value) - set(_COMPILE_KEYS))
    if unknown:
        raise ConfigError(f"config key '{key}': unknown option '{unknown[0]}' "
                          f"(options: {', '.join(_COMPILE_KEYS)})")  # fmt: skip
    out = {"mode": value.get("mode") or "default", "dynamic": value.get("dynamic"),
           "fullgraph": bool(value.get("fullgraph", False)),
           "backend": value.get("backend") or "inductor"}  # fmt: skip
    if out["backend"] not in ("inductor", "eager", "aot_eager"):
        raise ConfigError(f"config key '{key}': unknown backend {out['backend']!r} "
                          "(choose from inductor, eager, aot_eager)")  # fmt: skip
    if out["mode"] not in COMPILE_MODES:
        raise ConfigError(f"config key '{key}': unknown mode {out['mode']!r} "
                          f"(choose from {', '.join(COMPILE_MODES)})")  # fmt: skip
    if out["dynamic"] not in (None, True, False):
        raise ConfigError(f"config key '{key}': dynamic must be true, false or null, "
                          f"got {out['dynamic']!r}")  # fmt: skip
    return out


def compile_cache_dir() -> Path:
    """Where inductor keeps its compiled graphs: ``TORCHINDUCTOR_CACHE_DIR`` when
    set, else ``$XDG_CACHE_HOME/fmrecon/inductor`` (``~/.cache/...``), set here
    for this process and its children (torch's own default is under /tmp, which
    clusters and reboots wipe). Torch writes its default into the variable the
    first time anything asks for inductor's cache directory (building an
    encoder does), so a value equal to that default counts as unset."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, "", default_cache_dir()):
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(base) / "fmrecon" / "inductor")
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def compile_model(model: nn.Module, options: dict) -> list[str]:
    """Compile ``model`` in place with ``torch.compile(**options)`` (inductor), region by
    region: ``model.compile_regions()`` where a model has it (a VarNet: the sensitivity
    network and each cascade, whose compiled code all twelve cascades share; an
    FM-VarNet: each cascade's denoiser, encoder included), else the whole model.
    ``nn.Module.compile`` keeps the module, so state-dict keys, checkpoints and DDP
    wrapping are unchanged (no ``_orig_mod.`` prefix). Turns on inductor's
    FX-graph and AOTAutograd caches in :func:`compile_cache_dir`, so another process
    compiling the same graphs loads them. Returns the compiled regions' names."""
    compile_cache_dir()
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True  # the default in torch >= 2.5; stated, not assumed
    functorch_config.enable_autograd_cache = True  # backward graphs too
    regions = getattr(model, "compile_regions", None)
    named = regions() if callable(regions) else [("", model)]
    kwargs = dict(options)
    if kwargs.get("backend", "inductor") != "inductor":
        kwargs.pop("mode", None)  # modes are inductor's
    if getattr(model, "_fmrecon_compile", None) != options:  # once per model and options
        for _, region in named:
            region.compile(**kwargs)
        object.__setattr__(model, "_fmrecon_compile", dict(options))
    return [name or type(model).__name__ for name, _ in named]


def compile_seconds() -> float:
    """Seconds this process has spent compiling (torch.compile frames, forward and
    backward graphs, cache lookups included), from dynamo's timing table."""
    from torch._dynamo.utils import compilation_time_metrics as times

    keys = ("_compile.compile_inner", "compile_fx.<locals>.bw_compiler")
    return float(sum(sum(times.get(k, ())) for k in keys))


def resize_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` of a
    (B, C, h, w) tensor, antialias off. Eager it is that call; under
    torch.compile it is one opaque op (``fmrecon::resize_bilinear``) running the
    same ATen forward and backward kernels, so compiled and eager values are
    bit-identical. Inductor otherwise decomposes the resize into gathers, whose
    backward is a scatter-add (``_unsafe_index_put``) written with atomic adds
    when the kernel runs on more than one thread: FM-VarNet's decoder resizes
    (forward + backward, paper size) ran 1.4-2x slower than eager on one
    thread and 2.6-4x slower on two (torch 2.13, 2-core CPU), which took the
    compiled training step below eager."""
    size = [int(size[0]), int(size[1])]
    if not torch.compiler.is_compiling():
        return torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear",
                                               align_corners=False)  # fmt: skip
    return _resize_bilinear(x, size)


@torch.library.custom_op("fmrecon::resize_bilinear", mutates_args=())
def _resize_bilinear(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear",
                                           align_corners=False)  # fmt: skip


@_resize_bilinear.register_fake
def _(x, size):  # ATen's output layout: the input's suggested memory format
    fmt = torch._prims_common.suggest_memory_format(x)
    return x.new_empty((*x.shape[:2], *size)).contiguous(memory_format=fmt)


@torch.library.custom_op("fmrecon::resize_bilinear_backward", mutates_args=())
def _resize_bilinear_backward(grad: torch.Tensor, input_size: list[int]) -> torch.Tensor:
    out_size = list(grad.shape[-2:])
    return torch.ops.aten.upsample_bilinear2d_backward(grad, out_size, input_size, False)


@_resize_bilinear_backward.register_fake
def _(grad, input_size):  # ATen's: the gradient's suggested memory format
    fmt = torch._prims_common.suggest_memory_format(grad)
    return grad.new_empty(input_size).contiguous(memory_format=fmt)


def _resize_setup(ctx, inputs, output):
    ctx.input_size = list(inputs[0].shape)


def _resize_backward(ctx, grad):
    return _resize_bilinear_backward(grad, ctx.input_size), None


_resize_bilinear.register_autograd(_resize_backward, setup_context=_resize_setup)


def set_tf32(enabled: bool) -> dict:
    """The one switch of TF32 (TensorFloat-32: 10-bit mantissa inputs, fp32
    accumulation) for fp32 matmuls (cuBLAS) and convolutions (cuDNN) on Ampere
    and later NVIDIA GPUs; returns :func:`tf32_state`. Every entry point calls it
    (training ``trainer.tf32``, ``fmrecon evaluate`` / ``reconstruct --tf32``,
    ``fmrecon-bench --tf32``), default off.

    PyTorch's own defaults are TF32 convolutions but full-fp32 matmuls, so an
    fp32 run would mix both; off makes ``32-true`` / ``--precision 32`` fp32
    throughout (the fp32 comparisons, E2E-VarNet against fastMRI at 1e-4 and
    fp32 against bf16, mean fp32). The per-backend flags
    ``torch.backends.cuda.matmul.allow_tf32`` / ``torch.backends.cudnn.allow_tf32``
    (PyTorch notes, "TensorFloat-32 (TF32) on Ampere (and later) devices") leave
    CPU (oneDNN) kernels alone; the newer ``fp32_precision`` properties are not
    used because PyTorch raises when code (Lightning's CUDA accelerator) then
    reads the legacy ones. No effect on CPUs or pre-Ampere GPUs."""
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    return tf32_state()


def tf32_state() -> dict:
    """What torch will use: TF32 for CUDA fp32 matmuls / cuDNN convolutions."""
    return {
        "cuda_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn": bool(torch.backends.cudnn.allow_tf32),
    }


def restore_tf32(state: dict) -> None:
    """Put back a :func:`tf32_state` (the two flags may differ: PyTorch's own
    defaults are TF32 convolutions, fp32 matmuls)."""
    torch.backends.cuda.matmul.allow_tf32 = state["cuda_matmul"]
    torch.backends.cudnn.allow_tf32 = state["cudnn"]


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw bytes of a tensor (any dtype, any device), C order."""
    t = t.detach().resolve_conj().resolve_neg().to("cpu").contiguous()
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def state_digest(module: nn.Module) -> str:
    """SHA-256 of every tensor of ``module``'s state dict (name, shape, dtype, bytes):
    the identity of a set of weights (e.g. a frozen encoder's)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


class ProgressBar:
    """A tqdm bar on stderr over ``total`` units (``unit``: images), with the
    file being worked on (``file(name, i, n)``: its name as the bar's
    description, "file i/n" after the rate) and the ETA tqdm computes. Shown
    only when ``show`` and stderr is a terminal: in a log or a pipe the one
    line per finished file is the progress. ``say(line)`` prints a line
    through ``report`` (default: stderr) without breaking the bar."""

    def __init__(self, total: int, show: bool = True, unit: str = "img", report=None):
        import sys

        from tqdm.auto import tqdm

        self._report = report
        self.bar = tqdm(
            total=total,
            unit=unit,
            file=sys.stderr,
            disable=not (show and sys.stderr.isatty()),
            dynamic_ncols=True,
        )

    def file(self, name: str, index: int, count: int) -> None:
        self.bar.set_description(name, refresh=False)
        self.bar.set_postfix_str(f"file {index}/{count}")

    def update(self, n: int) -> None:
        self.bar.update(n)

    def say(self, line: str) -> None:
        import sys

        if not self.bar.disable:
            self.bar.clear()
        if self._report is None:
            print(line, file=sys.stderr)
        else:
            self._report(line)
        if not self.bar.disable:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
