"""The peak memory of one measurement in this process: on CPU the resident
set's high-water mark, on CUDA the allocator's peak."""

from __future__ import annotations

import ctypes
import gc
import sys
from pathlib import Path

import torch


def _status_mb(key: str) -> float | None:
    """A ``/proc/self/status`` figure (kB) in MB, or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _ru_maxrss_mb() -> float:
    import resource  # Unix only

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024**2 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB else


class MemoryProbe:
    """Peak memory of one measurement: ``start()`` then ``stop() -> dict``
    (base_mb, peak_mb, delta_mb = peak - base, method).

    On CPU the peak is the process's resident-set high-water mark, reset by
    ``start()`` (``/proc/self/clear_refs``; ``ru_maxrss`` where that is not
    possible, and ``hwm`` is then False: a second measurement in the same
    process would see the first one's peak); on CUDA ``max_memory_allocated``.
    """

    def __init__(self, device: torch.device):
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
