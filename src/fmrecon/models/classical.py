"""Classical baselines that need no training: CG-SENSE and L1-wavelet
compressed sensing with ESPIRiT coil sensitivities from the autocalibration
(ACS) region, solved with sigpy (``sigpy.app.LinearLeastSquares`` on sigpy's
linear operators, as its ``mri.app.SenseRecon`` / ``L1WaveletRecon`` do).

Per item of ``model(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W))``:

1. calibration (:mod:`fmrecon.models.espirit`, Uecker et al., MRM 2014): the
   fully sampled centre block of the mask per axis
   (:func:`fmrecon.physics.coils.acs_region`, at most ``max_calib_width``
   each: 32 readout samples x the ACS lines of a line mask), a kernel of
   ``min(6, width // 3)`` per axis unless given; one set of maps, or two
   (soft-SENSE) where the object is wider than the field of view
   (``maps: 1 | 2 | auto``, :meth:`EspiritRecon.maps`); each set zeroed where
   its eigenvalue is below ``crop``. sigpy's ``EspiritCalib`` has neither
   (a centred square, one set), which is what failed on a real scan with 13
   or 7 ACS lines (docs/NOTES.md, "Classical baselines");
2. scale: the k-space is divided by the 99th percentile of its zero-filled
   RSS image, so ``lamda`` is relative to the image intensity and the result
   does not depend on the data's units;
3. solve with the mask as data weights, one image component per set of maps:
   SENSE (conjugate gradient on the normal equations, Tikhonov ``lamda``) or
   L1-wavelet (FISTA, ``lamda`` on the ``wavelet`` coefficients of each
   component, step 1 since ||P F S|| <= 1 for ESPIRiT's orthonormal maps);
4. output: the RSS of the data-consistent coil images (the coil k-space of
   ``sum_s S_s x_s`` with the measured samples put back), times the scale: the same
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
from fmrecon.models.espirit import calibration_svd, espirit, kernels, sense_operator
from fmrecon.physics.coils import acs_region

# chosen by the sweep on simulated cardiac and brain data (see docs/NOTES.md)
ESPIRIT_THRESH = 0.05
ESPIRIT_CROP = 0.95
MAX_CALIB_WIDTH = 32
WRAP_THRESH = 0.02  # sigpy's and the ESPIRiT paper's threshold
WRAP_FRACTION = 0.1


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
        maps: int | str = "auto",
        wrap_thresh: float = WRAP_THRESH,
        wrap_fraction: float = WRAP_FRACTION,
    ):
        super().__init__()
        if lamda < 0 or max_iter < 1:
            raise ConfigError(
                f"{self._name()}: need lamda >= 0 and max_iter >= 1 (got {lamda}, {max_iter})"
            )
        if kernel_width is not None and kernel_width < 2:
            raise ConfigError(f"{self._name()}: kernel_width must be >= 2, got {kernel_width}")
        if not all(0.0 <= v < 1.0 for v in (crop, thresh, wrap_thresh, wrap_fraction)):
            raise ConfigError(
                f"{self._name()}: crop, thresh, wrap_thresh and wrap_fraction must be in [0, 1)"
            )
        if max_calib_width < min_calib_width(kernel_width or 2):
            raise ConfigError(
                f"{self._name()}: max_calib_width {max_calib_width} is below the "
                f"{min_calib_width(kernel_width or 2)} lines ESPIRiT needs"
            )
        if maps not in (1, 2, "auto"):
            raise ConfigError(f"{self._name()}: maps must be 1, 2 or auto, got {maps!r}")
        self.lamda, self.max_iter = float(lamda), int(max_iter)
        self.kernel_width, self.thresh, self.crop = kernel_width, float(thresh), float(crop)
        self.max_calib_width, self.maps_option = int(max_calib_width), maps
        self.wrap_thresh, self.wrap_fraction = float(wrap_thresh), float(wrap_fraction)
        self.diagnostics: list[dict] = []  # one per item of the last forward call

    def _name(self) -> str:
        return self.record.name if getattr(self, "record", None) else type(self).__name__

    def calibration(self, mask: torch.Tensor) -> tuple[tuple, tuple, tuple[int, int]]:
        """((rows, columns) of the calibration block, (rows, columns) of the
        kernel, k-space roll (rows, columns)) for a mask (..., H, W): per axis
        the fully sampled centre, at most ``max_calib_width``, and a kernel of
        :func:`auto_kernel_width` of it (or ``kernel_width``); a ConfigError
        when the ACS region is too small."""
        block = acs_region(mask)
        cal, ker, shift = [], [], []
        for axis, n in zip(block, mask.shape[-2:], strict=True):
            have = axis.stop - axis.start
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
            cal.append(cw)
            ker.append(kw)
            shift.append(calib_shift(axis, n, cw))
        return tuple(cal), tuple(ker), tuple(shift)

    def maps(self, ksp, cal: tuple, ker: tuple, shift: tuple[int, int], device, obj=None):
        """ESPIRiT maps (S, C, H, W) of one item's k-space (C, H, W), each set
        cropped where its eigenvalue is below ``crop``, calibrated on the
        ``cal`` block that the roll ``shift`` brings to the centre
        (:mod:`fmrecon.models.espirit`), and the two largest eigenvalues
        (2, H, W) of the calibration that decided S.

        ``maps: 1``: one set, kernels above ``thresh``. ``maps: 2``: two sets,
        kernels above ``wrap_thresh``. ``auto``: calibrate with ``wrap_thresh``;
        two sets of that calibration where the object wraps (:meth:`wraps`),
        else one set with ``thresh``. The looser threshold keeps the larger
        signal space that a folded object has (two sensitivities superposed);
        without wrap the tighter one keeps less noise in the maps (docs/NOTES.md,
        "Classical baselines"). ``obj``: the object (:meth:`object_mask`),
        computed from ``ksp`` when not given."""
        sp, _ = _sigpy()
        xp = device.xp
        with device:
            calib = sp.resize(xp.roll(ksp, shift, axis=(-2, -1)), (ksp.shape[0],) + tuple(cal))
            svd = calibration_svd(calib, ker)
            shape = ksp.shape[1:]
            loose = self.maps_option != 1
            mps, eig = espirit(kernels(svd, self.wrap_thresh if loose else self.thresh), shape, 2)
            sets = 2 if self.maps_option == 2 else 1
            if obj is None and self.maps_option == "auto":
                obj = self.object_mask(sp.rss(sp.ifft(ksp, axes=(-2, -1)), axes=(0,)))
            if self.maps_option == "auto" and self.wraps(obj, eig):
                sets = 2
            elif self.maps_option == "auto":  # the first set's eigenvalue, of the maps used
                mps, first = espirit(kernels(svd, self.thresh), shape, 1)
                eig = xp.stack([first[0], eig[1]])
            mps = mps[:sets] * (eig[:sets] > self.crop)[:, None]
        return mps, eig

    @staticmethod
    def object_mask(zf):
        """The object: pixels of the zero-filled RSS image ``zf`` (H, W) above
        10% of its 99th percentile."""
        sp, _ = _sigpy()
        return zf > 0.1 * sp.get_array_module(zf).percentile(zf, 99)

    def wraps(self, obj, eig) -> bool:
        """Whether one set of maps does not explain the object: the second
        eigenvalue is above ``crop`` on more than ``wrap_fraction`` of it
        (an object wider than the field of view has two coil sensitivities
        superposed in its folded part; docs/NOTES.md, "Classical baselines")."""
        return bool((eig[1][obj] > self.crop).mean() > self.wrap_fraction)

    def _solve(self, y, op, device):
        """The image components (S, H, W) from the weighted k-space ``y``
        (C, H, W) and the SENSE operator ``op``
        (:func:`fmrecon.models.espirit.sense_operator`)."""
        raise NotImplementedError

    def calibration_summary(self, obj, mps, eig) -> dict:
        """Per item, for the evaluation's CSV: ``maps`` (sets of ESPIRiT maps
        used), and over the object (:meth:`object_mask`) the median of the
        largest calibration eigenvalue, the fraction of pixels whose first set
        is kept (eigenvalue above ``crop``), the median of the second
        eigenvalue and the fraction where it is above ``crop``. A kept fraction
        well below 1 means one set of maps does not explain the object there
        (too few ACS lines); a second eigenvalue near 1 over part of it, an
        object wider than the field of view (docs/NOTES.md, "Classical
        baselines")."""
        sp, _ = _sigpy()
        xp = sp.get_array_module(obj)
        if not bool(obj.any()):
            obj = xp.ones_like(obj)
        first, second = eig[0][obj], eig[1][obj]
        return {
            "maps": int(mps.shape[0]),
            "espirit_eig_median": float(xp.median(first)),
            "espirit_kept": float((first > self.crop).mean()),
            "espirit_eig2_median": float(xp.median(second)),
            "espirit_eig2_kept": float((second > self.crop).mean()),
        }

    def reconstruct(self, ksp, mask2d, calibration: tuple, device):
        """One item: k-space (C, H, W), mask (H, W) float -> magnitude (H, W)."""
        sp, _ = _sigpy()
        xp = device.xp
        with device:
            axes = (-2, -1)
            zf = sp.rss(sp.ifft(ksp, axes=axes), axes=(0,))  # the object and the scale
            scale = float(xp.percentile(zf, 99))
            if not scale > 0:
                self.diagnostics.append({"maps": 0})
                return xp.zeros(ksp.shape[1:], dtype=xp.float32)
            y = (ksp / scale).astype(xp.complex64)
            obj = self.object_mask(zf)
            mps, eig = self.maps(y, *calibration, device, obj=obj)
            self.diagnostics.append(self.calibration_summary(obj, mps, eig))
            x = self._solve(y * mask2d**0.5, sense_operator(mps, mask2d), device)
            coil = sp.fft((mps * x[:, None]).sum(axis=0), axes=axes)
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

    def _solve(self, y, op, device):
        sp, _ = _sigpy()
        app = sp.app.LinearLeastSquares(
            op, y, lamda=self.lamda, max_iter=self.max_iter, show_pbar=False
        )
        return app.run()


class L1WaveletRecon(EspiritRecon):
    """L1-wavelet compressed sensing: min_x 1/2 ||P F S x - y||^2 + lamda ||W x||_1
    (Lustig et al. 2007) by ``max_iter`` FISTA steps, ESPIRiT maps S (module
    doc). (B, C, H, W) complex, (B, 1, H, W) -> (B, H, W)."""

    def __init__(self, lamda: float = 0.005, max_iter: int = 50, wavelet: str = "db4", **espirit):
        super().__init__(lamda, max_iter, **espirit)
        self.wavelet = str(wavelet)

    def _solve(self, y, op, device):
        sp, _ = _sigpy()
        wavelet = sp.linop.Wavelet(op.ishape, axes=(-2, -1), wave_name=self.wavelet)
        l1 = sp.prox.UnitaryTransform(sp.prox.L1Reg(wavelet.oshape, self.lamda), wavelet)
        app = sp.app.LinearLeastSquares(
            op,
            y,
            proxg=l1,
            max_iter=self.max_iter,
            alpha=1.0,  # 1 / Lipschitz constant: ||P F S|| <= 1 (espirit.sense_operator)
            show_pbar=False,
        )
        return app.run()
