"""Classical baselines that need no training: CG-SENSE and L1-wavelet
compressed sensing with ESPIRiT coil sensitivities from the autocalibration
(ACS) region, solved by sigpy's MRI apps (``sigpy.mri.app``).

Per item of ``model(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W))``:

1. calibration: the largest square inside the mask's fully sampled centre
   block (:func:`fmrecon.physics.coils.acs_region`, at most
   ``max_calib_width``) feeds ``EspiritCalib`` (Uecker et al., MRM 2014)
   with kernel width ``min(6, width // 3)`` unless given.
   sigpy returns one set of maps (the eigenvector of the largest eigenvalue,
   unit norm per pixel, zeroed where that eigenvalue is below ``crop``); it
   has no soft-SENSE with several sets, which BART's ``ecalib -m2`` offers
   for a field of view smaller than the object;
2. scale: the k-space is divided by the 99th percentile of its zero-filled
   RSS image, so ``lamda`` is relative to the image intensity and the result
   does not depend on the data's units;
3. solve with the mask as data weights: ``SenseRecon`` (conjugate gradient on
   the normal equations, Tikhonov ``lamda``) or ``L1WaveletRecon`` (FISTA,
   ``lamda`` on the ``wavelet`` coefficients, step 1 since ||P F S|| <= 1 for
   maps of norm <= 1);
4. output: the RSS of the data-consistent coil images (the coil k-space of
   ``S x`` with the measured samples put back), times the scale: the same
   definition as the targets (RSS of the fully sampled coil images), equal to
   ``|x|`` where the maps are exact and the data noise-free.

sigpy runs on NumPy (CPU), or on CuPy when the input is on a CUDA device and
CuPy is installed; CUDA input without CuPy is reconstructed on the CPU and
returned on its device. sigpy's centred orthonormal FFT is fmrecon's
(:mod:`fmrecon.physics.fft`).
"""

from __future__ import annotations

import numpy as np
import torch

from fmrecon.errors import ConfigError
from fmrecon.models.base import ReconModel
from fmrecon.physics.coils import acs_region

# chosen by the sweep on simulated cardiac and brain data (see docs/NOTES.md)
ESPIRIT_THRESH = 0.05
ESPIRIT_CROP = 0.95
ESPIRIT_ITER = 30  # power iterations per pixel
MAX_CALIB_WIDTH = 32


def auto_kernel_width(calib_width: int) -> int:
    """ESPIRiT kernel width for a calibration square of ``calib_width``: a
    third of it, at most 6 (sigpy's default; 24 ACS lines), at least 2."""
    return int(min(6, max(2, calib_width // 3)))


def min_calib_width(kernel_width: int) -> int:
    """The fewest ACS lines ESPIRiT is run with at ``kernel_width``: three
    kernel widths. Narrower calibration squares gave maps that failed (no
    better than zero-filled, or far worse) in the sweep (docs/NOTES.md)."""
    return 3 * kernel_width


def calib_shift(block: slice, n: int, width: int) -> int:
    """Roll along an axis of length ``n`` that moves the middle ``width``
    samples of ``block`` to where sigpy's centred crop takes them (start
    ``n // 2 - width // 2``), so an off-centre or odd ACS block is used whole.
    Rolling the k-space multiplies every coil image by one phase ramp, which
    ESPIRiT's phase normalisation to the first coil removes."""
    start = block.start + (block.stop - block.start - width) // 2
    return n // 2 - width // 2 - start


def _sigpy():
    try:
        import sigpy
        import sigpy.mri
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ConfigError(f"classical models need sigpy (pip install sigpy): {err}") from None
    return sigpy, sigpy.mri


def _device_of(t: torch.Tensor):
    """sigpy device for a tensor: its GPU with CuPy, else the CPU."""
    sp, _ = _sigpy()
    if t.is_cuda and sp.config.cupy_enabled:
        return sp.Device(t.device.index or 0)
    return sp.cpu_device


def _to_array(t: torch.Tensor, device):
    t = t.detach().contiguous()
    if device.id >= 0:
        import cupy

        return cupy.from_dlpack(t)
    return t.cpu().numpy()


def _to_tensor(a, like: torch.Tensor) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a)).to(like.device)
    return torch.from_dlpack(a).to(like.device)


class EspiritRecon(ReconModel):
    """ESPIRiT maps + a sigpy solver (module doc); ``_solve`` is the solver."""

    def __init__(
        self,
        lamda: float,
        max_iter: int,
        kernel_width: int | None = None,
        thresh: float = ESPIRIT_THRESH,
        crop: float = ESPIRIT_CROP,
        max_calib_width: int = MAX_CALIB_WIDTH,
        espirit_iter: int = ESPIRIT_ITER,
    ):
        super().__init__()
        if lamda < 0 or max_iter < 1 or espirit_iter < 1:
            raise ConfigError(
                f"{self._name()}: need lamda >= 0, max_iter >= 1 and espirit_iter >= 1 "
                f"(got {lamda}, {max_iter}, {espirit_iter})"
            )
        if kernel_width is not None and kernel_width < 2:
            raise ConfigError(f"{self._name()}: kernel_width must be >= 2, got {kernel_width}")
        if not 0.0 <= crop < 1.0 or not 0.0 <= thresh < 1.0:
            raise ConfigError(f"{self._name()}: crop and thresh must be in [0, 1)")
        if max_calib_width < min_calib_width(kernel_width or 2):
            raise ConfigError(
                f"{self._name()}: max_calib_width {max_calib_width} is below the "
                f"{min_calib_width(kernel_width or 2)} lines ESPIRiT needs"
            )
        self.lamda, self.max_iter = float(lamda), int(max_iter)
        self.kernel_width, self.thresh, self.crop = kernel_width, float(thresh), float(crop)
        self.max_calib_width, self.espirit_iter = int(max_calib_width), int(espirit_iter)
        self.diagnostics: list[dict] = []  # one per item of the last forward call

    def _name(self) -> str:
        return self.record.name if getattr(self, "record", None) else type(self).__name__

    def calibration(self, mask: torch.Tensor) -> tuple[int, int, tuple[int, int]]:
        """(calibration width, kernel width, k-space roll (rows, columns)) for
        a mask (..., H, W); a ConfigError when the ACS region is too small."""
        rows, cols = acs_region(mask)
        h, w = mask.shape[-2:]
        have = min(rows.stop - rows.start, cols.stop - cols.start)
        cw = min(have, self.max_calib_width)
        kw = self.kernel_width or auto_kernel_width(cw)
        need = min_calib_width(kw)
        if cw < need:
            raise ConfigError(
                f"{self._name()}: the mask's fully sampled centre (ACS) is {have} lines; "
                f"ESPIRiT with kernel width {kw} needs at least {need} "
                "(more ACS lines: --num-acs N, or a larger centre fraction: "
                "evaluate --center-fractions F, reconstruct --center-fraction F)"
            )
        return cw, kw, (calib_shift(rows, h, cw), calib_shift(cols, w, cw))

    def maps(self, ksp, cw: int, kw: int, shift: tuple[int, int], device):
        """ESPIRiT maps (C, H, W) of one item's k-space (C, H, W), calibrated on
        the ``cw`` x ``cw`` square that the roll ``shift`` brings to the centre,
        and the calibration's largest eigenvalue per pixel."""
        _, mr = _sigpy()
        with device:
            calib = device.xp.roll(ksp, shift, axis=(-2, -1))
        app = mr.app.EspiritCalib(
            calib,
            calib_width=cw,
            thresh=self.thresh,
            kernel_width=kw,
            crop=self.crop,
            max_iter=self.espirit_iter,
            device=device,
            show_pbar=False,
            output_eigenvalue=True,
        )
        return app.run()  # (maps, eigenvalues): output_eigenvalue=True

    def _solve(self, y, mps, weights, device):
        raise NotImplementedError

    def calibration_summary(self, y, eig) -> dict:
        """Per item, for the evaluation's CSV: ``maps`` (sets of ESPIRiT maps
        used: 1, sigpy's EspiritCalib returns one), and over the object (pixels
        of the zero-filled RSS image above 10% of its 99th percentile) the
        median of the largest calibration eigenvalue and the fraction of pixels
        whose maps are kept (eigenvalue above ``crop``). A fraction well below 1
        means one set of maps does not explain the object there (a field of view
        smaller than the object, or too few ACS lines): the solver then forces
        that signal into the kept pixels (docs/NOTES.md, "Classical baselines")."""
        sp, _ = _sigpy()
        xp = sp.get_array_module(y)
        zf = sp.rss(sp.ifft(y, axes=(-2, -1)), axes=(0,))
        obj = zf > 0.1 * xp.percentile(zf, 99)
        eig = eig.reshape(zf.shape)  # sigpy returns (1, H, W)
        vals = eig[obj] if bool(obj.any()) else eig.ravel()
        return {
            "maps": 1,
            "espirit_eig_median": float(xp.median(vals)),
            "espirit_kept": float((vals > self.crop).mean()),
        }

    def reconstruct(self, ksp, mask2d, calibration: tuple, device):
        """One item: k-space (C, H, W), mask (H, W) float -> magnitude (H, W)."""
        sp, _ = _sigpy()
        xp = device.xp
        with device:
            axes = (-2, -1)
            scale = float(xp.percentile(sp.rss(sp.ifft(ksp, axes=axes), axes=(0,)), 99))
            if not scale > 0:
                self.diagnostics.append({"maps": 0})
                return xp.zeros(ksp.shape[1:], dtype=xp.float32)
            y = (ksp / scale).astype(xp.complex64)
            mps, eig = self.maps(y, *calibration, device)
            self.diagnostics.append(self.calibration_summary(y, eig))
            x = self._solve(y, mps, mask2d, device)
            coil = sp.fft(mps * x, axes=axes)
            coil = xp.where(mask2d > 0, y, coil)  # the measured samples, kept
            img = sp.rss(sp.ifft(coil, axes=axes), axes=(0,)) * scale
            return img.astype(xp.float32)

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) complex, (B, 1, H, W) bool -> (B, H, W) float32."""
        b, _, h, w = masked_kspace.shape
        device = _device_of(masked_kspace)
        self.diagnostics = []
        out = []
        for i in range(b):
            m = mask[i].reshape(-1, *mask.shape[-2:]).expand(1, h, w)[0]
            calibration = self.calibration(m)
            ksp = _to_array(masked_kspace[i].to(torch.complex64), device)
            m2 = _to_array(m.to(torch.float32), device)
            img = self.reconstruct(ksp, m2, calibration, device)
            out.append(_to_tensor(img, masked_kspace))
        return torch.stack(out).float()


class SenseRecon(EspiritRecon):
    """CG-SENSE: min_x 1/2 ||P F S x - y||^2 + lamda/2 ||x||^2 (Pruessmann et al.
    2001) by ``max_iter`` conjugate-gradient steps, ESPIRiT maps S (module doc).
    (B, C, H, W) complex, (B, 1, H, W) -> (B, H, W)."""

    def __init__(self, lamda: float = 0.01, max_iter: int = 20, **espirit):
        super().__init__(lamda, max_iter, **espirit)

    def _solve(self, y, mps, weights, device):
        _, mr = _sigpy()
        app = mr.app.SenseRecon(
            y,
            mps,
            lamda=self.lamda,
            weights=weights,
            max_iter=self.max_iter,
            device=device,
            show_pbar=False,
        )
        return app.run()


class L1WaveletRecon(EspiritRecon):
    """L1-wavelet compressed sensing: min_x 1/2 ||P F S x - y||^2 + lamda ||W x||_1
    (Lustig et al. 2007) by ``max_iter`` FISTA steps, ESPIRiT maps S (module
    doc). (B, C, H, W) complex, (B, 1, H, W) -> (B, H, W)."""

    def __init__(self, lamda: float = 0.005, max_iter: int = 50, wavelet: str = "db4", **espirit):
        super().__init__(lamda, max_iter, **espirit)
        self.wavelet = str(wavelet)

    def _solve(self, y, mps, weights, device):
        _, mr = _sigpy()
        app = mr.app.L1WaveletRecon(
            y,
            mps,
            lamda=self.lamda,
            weights=weights,
            wave_name=self.wavelet,
            max_iter=self.max_iter,
            alpha=1.0,  # 1 / Lipschitz constant: ||P F S|| <= 1 for maps of norm <= 1
            device=device,
            show_pbar=False,
        )
        return app.run()
