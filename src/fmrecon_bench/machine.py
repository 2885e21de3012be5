"""The machine a run measured: CPU, cores, memory, bf16 support, versions, a
matmul calibration figure, and the optional fastMRI reference package."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

import fmrecon

FASTMRI_HINT = "fastmri not installed: pip install --no-deps fastmri pandas"


def optional_fastmri():
    """fastMRI's reference implementation (goal 1 compares E2E-VarNet with
    it), or None. The one optional import of the benchmark: fastmri is not a
    dependency (its requirements pull torchvision; scripts/bootstrap.sh
    installs it with --no-deps)."""
    try:
        import fastmri
        import fastmri.models  # noqa: F401 (the VarNet)
    except ImportError:
        return None
    return fastmri


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _cpu_flags() -> set[str]:
    for line in _cpuinfo():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _cpu_model() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _physical_cores() -> int | None:
    pairs = set()
    phys = None
    for line in _cpuinfo():
        if line.startswith("physical id"):
            phys = line.split(":")[1].strip()
        elif line.startswith("core id"):
            pairs.add((phys, line.split(":")[1].strip()))
    return len(pairs) or None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def bf16_support(device_type: str = "cpu") -> dict:
    """Whether bf16 autocast has native hardware support: CUDA's own check, or
    the CPU flags avx512_bf16 / amx_bf16 (x86) or bf16 (Arm)."""
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
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return round(2 * 1024**3 * n / (time.perf_counter() - t0) / 1e9, 1)


def machine_info(device: str = "cpu") -> dict:
    """The machine a run measured: CPU, cores, memory, bf16 support, versions."""
    fm = optional_fastmri()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": _memory_gb(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "bf16": bf16_support(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "fastmri": None if fm is None else getattr(fm, "__version__", "installed"),
        "fmrecon": fmrecon.__version__,
    }
