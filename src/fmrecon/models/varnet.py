"""E2E-VarNet (Sriram et al. 2020) on native complex tensors, compatible with
fastMRI's ``VarNet`` state dicts and published checkpoints.

Shapes: masked k-space and sensitivity maps complex (B, C, H, W), H the
readout, W the phase-encode axis; mask bool (B, 1, H, W) (or broadcastable,
e.g. (B, 1, 1, W)); output magnitude (B, H, W).

Cascade update (fastMRI's sign convention)::

    k <- k - dc_weight * M (k - k0) - E(D(R(k)))

The FM-VarNet paper (arXiv 2026) writes the regularizer term with a plus
sign (``+ G(k)``); the sign is absorbed by the learned network. We follow
fastMRI's minus sign so its checkpoints load and give the same numbers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from fmrecon.errors import ConfigError
from fmrecon.models.base import ReconModel
from fmrecon.models.unet import NormUnet
from fmrecon.physics import coils
from fmrecon.physics.coils import acs_bounds, rss, sens_expand, sens_reduce
from fmrecon.physics.fft import ifft2, ifft2c, shift_signs


def low_frequency_mask(mask: torch.Tensor, num_low_frequencies: int | None = None) -> torch.Tensor:
    """The k-space region the sensitivity model keeps, bool broadcastable to (B, 1, H, W).

    Line masks (constant along H), as fastMRI's ``get_pad_and_num_low_freqs``:
    ``n = max(2 * min(left, right), 1)`` where ``right`` counts the contiguous
    sampled lines from ``W // 2`` rightwards (inclusive) and ``left`` those
    left of it; columns ``[p, p + n)`` with ``p = (W - n + 1) // 2`` are kept,
    per example. ``num_low_frequencies`` (if given and non-zero) replaces ``n``.
    One deliberate difference: fastMRI's argmin count gives 0 when a half is
    sampled to its edge (so a fully sampled mask keeps one line); we count the
    run, so a fully sampled mask keeps ``2 * min(W // 2, W - W // 2)`` lines.

    2-D masks (not constant along H, e.g. CMRxRecon 2024 k-t radial with a
    16x16 fully sampled centre): the fully sampled centre block is kept
    instead (rows and columns, :func:`fmrecon.physics.coils.acs_region`), per example;
    ``num_low_frequencies`` is ignored. The block is the whole fully sampled
    centre, so it can exceed the nominal ACS block where spokes cover the
    centre densely (k-t radial at R 8, 48x40: about 20x20 instead of 16x16).
    """
    mask = mask.bool()
    b, h, w = mask.shape[0], mask.shape[-2], mask.shape[-1]
    lines = mask.reshape(b, -1, h, w)  # (B, *, h, W)
    is_line = (lines.all(dim=-2) == lines.any(dim=-2)).flatten(1).all(dim=1)  # (B,)
    row = lines[:, 0, 0, :]  # (B, W): the first readout row

    cols = torch.arange(w, device=mask.device)
    if num_low_frequencies:
        n = torch.full((b,), int(num_low_frequencies), device=mask.device, dtype=torch.long)
    else:
        c = w // 2
        left = row[:, :c].flip(1).long().cumprod(dim=1).sum(dim=1)
        right = row[:, c:].long().cumprod(dim=1).sum(dim=1)
        n = torch.clamp(2 * torch.minimum(left, right), min=1)
    pad = (w - n + 1) // 2
    keep = (cols >= pad[:, None]) & (cols < (pad + n)[:, None])  # (B, W)
    # 2-D masks: the fully sampled block, chosen per example on the device (no
    # host round trip or Python branch on the mask's values: no GPU sync)
    t, bottom, lo, hi = acs_bounds(lines.all(dim=1)).unbind(dim=1)  # (B,) each
    rows = torch.arange(h, device=mask.device)
    in_rows = (rows >= t[:, None]) & (rows < bottom[:, None])  # (B, h)
    in_cols = (cols >= lo[:, None]) & (cols < hi[:, None])  # (B, W)
    block = in_rows[:, :, None] & in_cols[:, None, :]  # (B, h, W)
    return torch.where(is_line[:, None, None], keep[:, None, :], block)[:, None]  # (B, 1, h, W)


class SensitivityModel(nn.Module):
    """Learned coil sensitivities from the ACS region (E2E-VarNet SME).

    (masked_kspace complex (B, C, H, W), mask (B, 1, H, W)) -> sensitivity
    maps complex (B, C, H, W) whose RSS over coils is 1.

    Zero k-space outside :func:`low_frequency_mask` (when ``mask_center``),
    inverse FFT, a ``NormUnet`` per coil image (coils moved into the batch
    axis), divide by the RSS over coils. State-dict keys ``norm_unet.unet.*``.
    """

    def __init__(
        self,
        chans: int = 8,
        num_pools: int = 4,
        mask_center: bool = True,
        drop_prob: float = 0.0,
    ):
        super().__init__()
        self.mask_center = mask_center
        self.norm_unet = NormUnet(chans, num_pools, drop_prob=drop_prob)

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | None = None,
    ) -> torch.Tensor:
        if self.mask_center:
            keep = low_frequency_mask(mask, num_low_frequencies)
            masked_kspace = _times_real(masked_kspace, keep)
        b, c, h, w = masked_kspace.shape
        images = ifft2c(masked_kspace).reshape(b * c, 1, h, w)
        sens = self.norm_unet(images).reshape(b, c, h, w)
        norm = rss(sens, dim=1)[:, None, :, :, None]
        return torch.view_as_complex(torch.view_as_real(sens) / norm)


class VarNetBlock(nn.Module):
    """One E2E-VarNet cascade: ``k - dc_weight * M (k - k0) - E(D(R(k)))``.

    ``forward(k, k0, mask, sens)``: k, k0, sens complex (B, C, H, W), mask bool
    broadcastable to them -> complex (B, C, H, W).

    Regularizer contract: ``regularizer(x) -> y`` with ``x`` the complex64
    coil-combined image ``R(k) = sum_c conj(S_c) F^-1 k_c`` shaped (B, 1, H, W),
    and ``y`` a complex tensor of the same shape (B, 1, H, W), differentiable,
    without side effects on ``x``. H, W are the k-space size (any size: the
    regularizer handles padding or resizing itself). Its output is expanded to
    coils, Fourier transformed and SUBTRACTED from ``k``. It is stored as
    ``self.model`` (keys ``cascades.N.model.*``); ``dc_weight`` is a learnable
    scalar, initialised to 1.

    ``centred=False``: k, k0 and the maps are in the sign-modulated frame of
    :func:`fmrecon.physics.fft.shift_signs` (``s_k * k``, ``s_n * S``; the mask is
    unchanged) and the FFTs run without shifts: the same update in that frame
    (how :class:`VarNet` runs its cascades on even sizes).
    """

    def __init__(self, regularizer: nn.Module):
        super().__init__()
        self.model = regularizer
        self.dc_weight = nn.Parameter(torch.ones(1))

    def forward(
        self,
        kspace: torch.Tensor,
        ref_kspace: torch.Tensor,
        mask: torch.Tensor,
        sens: torch.Tensor,
        centred: bool = True,
    ) -> torch.Tensor:
        image = sens_reduce(kspace, sens, centred).unsqueeze(1)  # (B, 1, H, W)
        model_term = sens_expand(self.model(image)[:, 0], sens, centred)
        if coils.native_complex():  # eager: complex kernels
            soft_dc = torch.where(mask.bool(), kspace - ref_kspace, 0) * self.dc_weight
            return kspace - soft_dc - model_term
        # compiled: on real views (..., 2), inductor generates no code for complex tensors
        k, k0 = torch.view_as_real(kspace), torch.view_as_real(ref_kspace)
        soft_dc = torch.where(mask.bool()[..., None], k - k0, 0.0) * self.dc_weight
        return torch.view_as_complex(k - soft_dc - torch.view_as_real(model_term))


class VarNet(ReconModel):
    """End-to-end variational network (fastMRI ``VarNet`` layout).

    ``forward(masked_kspace complex (B, C, H, W), mask bool (B, 1, H, W))``
    -> (B, H, W): RSS over coils of the inverse FFT of the final k-space.

    ``regularizer_factory(i) -> nn.Module`` builds cascade i's regularizer
    (contract in :class:`VarNetBlock`); the default is ``NormUnet(chans, pools)``.
    With the defaults: 29,936,966 parameters (sensitivity net 484,898,
    2,454,339 per cascade), the same keys as fastMRI's VarNet.
    ``checkpoint_cascades`` recomputes each cascade's activations in the
    backward pass (``torch.utils.checkpoint``, non-reentrant) to save memory.
    """

    def __init__(
        self,
        num_cascades: int = 12,
        chans: int = 18,
        pools: int = 4,
        sens_chans: int = 8,
        sens_pools: int = 4,
        regularizer_factory: Callable[[int], nn.Module] | None = None,
        mask_center: bool = True,
        checkpoint_cascades: bool = False,
    ):
        super().__init__()
        if regularizer_factory is None:

            def regularizer_factory(_i: int) -> nn.Module:
                return NormUnet(chans, pools)

        self.sens_net = SensitivityModel(sens_chans, sens_pools, mask_center=mask_center)
        self.cascades = nn.ModuleList(
            VarNetBlock(regularizer_factory(i)) for i in range(num_cascades)
        )
        self.checkpoint_cascades = checkpoint_cascades

    def compile_regions(self) -> list[tuple[str, nn.Module]]:
        """Regional compilation (the PyTorch recipe for repeated blocks): the
        sensitivity network and each cascade. The cascades share their code, so
        dynamo compiles it once for all of them (12x less compile time than the
        unrolled model); the final RSS stays eager."""
        return [("sens_net", self.sens_net)] + [
            (f"cascades.{i}", c) for i, c in enumerate(self.cascades)
        ]

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | None = None,
    ) -> torch.Tensor:
        mask = mask.bool()
        sens = self.sens_net(masked_kspace, mask, num_low_frequencies)
        # even sizes: the cascades run in the sign-modulated frame (physics.fft.shift_signs):
        # plain FFTs instead of four shifts (copies) of the multi-coil data per cascade
        signs = shift_signs(*masked_kspace.shape[-2:], device=masked_kspace.device)
        centred = signs is None
        if not centred:
            masked_kspace, sens = _times_real(masked_kspace, signs[1]), _times_real(sens, signs[0])
        kspace = masked_kspace
        use_ckpt = self.checkpoint_cascades and torch.is_grad_enabled()
        for cascade in self.cascades:
            args = (kspace, masked_kspace, mask, sens, centred)
            if use_ckpt:
                kspace = checkpoint(cascade, *args, use_reentrant=False)
            else:
                kspace = cascade(*args)
        # |s_n| = 1, so the RSS of ifft2c(k) is the RSS of ifft2(s_k * k)
        return rss(ifft2c(kspace) if centred else ifft2(kspace), dim=1)


def _times_real(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """complex (..., H, W) times a real or bool tensor broadcastable to it (the ACS
    region, the +-1 shift signs): a complex kernel eager, the real view under
    torch.compile (inductor has no complex code: physics.coils.native_complex)."""
    if coils.native_complex():
        return x * r
    return torch.view_as_complex(torch.view_as_real(x) * r[..., None])


# ----------------------------------------------------------------------------- checkpoints

_PREFIXES = ("", "varnet.", "module.", "model.", "module.varnet.", "model.varnet.")
_UNET_FIRST = "unet.down_sample_layers.0.layers.0.weight"


def _unet_size(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, int] | None:
    """(chans, pools) of the U-Net stored under ``prefix`` (e.g.
    ``cascades.0.model``), or None when there is none."""
    first = state.get(f"{prefix}.{_UNET_FIRST}")
    if first is None:
        return None
    pat = re.escape(prefix) + r"\.unet\.down_sample_layers\.(\d+)\."
    pools = {int(m.group(1)) for k in state if (m := re.match(pat, k))}
    return int(first.shape[0]), len(pools)


def _cascade_count(state: Mapping[str, torch.Tensor]) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(r"cascades\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def _describe(state: Mapping[str, torch.Tensor]) -> str:
    """A short description of a VarNet-like state dict: cascades, chans, pools."""
    parts = []
    if n := _cascade_count(state):
        parts.append(f"{n} cascades")
        main = _unet_size(state, "cascades.0.model")
        parts.append(f"chans {main[0]}, pools {main[1]}" if main else "a non-U-Net regularizer")
    if sens := _unet_size(state, "sens_net.norm_unet"):
        parts.append(f"sens_chans {sens[0]}, sens_pools {sens[1]}")
    if not parts:
        return f"{len(state)} keys and no VarNet layout"
    return ", ".join(parts)


def fastmri_varnet_config(state: Mapping[str, torch.Tensor]) -> dict:
    """VarNet constructor options read off a fastMRI VarNet state dict (plain
    or with a Lightning prefix such as ``varnet.``): num_cascades, chans, pools,
    sens_chans, sens_pools. Empty when the layout is not recognised (loading
    then reports what it found against the default size)."""

    def strip(prefix: str) -> dict:
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

    s = max((strip(p) for p in _PREFIXES), key=_cascade_count)
    n = _cascade_count(s)
    main, sens = _unet_size(s, "cascades.0.model"), _unet_size(s, "sens_net.norm_unet")
    if not n or main is None or sens is None:
        return {}
    return {
        "num_cascades": n,
        "chans": main[0],
        "pools": main[1],
        "sens_chans": sens[0],
        "sens_pools": sens[1],
    }


def _shape(t: torch.Tensor) -> str:
    return "(" + ",".join(str(s) for s in t.shape) + ")"


def load_fastmri_state_dict(
    model: nn.Module,
    path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor],
    weights_only: bool = True,
) -> nn.Module:
    """Load fastMRI VarNet weights into ``model`` strictly; returns ``model``.

    Accepts a state dict or a file holding one: a plain ``torch.save(state_dict)``
    file as fastMRI publishes (``knee_leaderboard_state_dict.pt``: keys
    ``sens_net.norm_unet.unet.*``, ``cascades.N.model.unet.*``,
    ``cascades.N.dc_weight``) or a Lightning checkpoint whose ``state_dict``
    keys carry a prefix (``varnet.``; also ``module.``/``model.``; keys outside
    the prefix, e.g. the SSIM loss buffer ``loss.w``, are ignored). Files load
    with ``torch.load(weights_only=True)`` unless told otherwise (only for
    trusted files). Raises ``ConfigError`` (one line: the file, what was found
    vs expected, the first mismatching keys/shapes) when the weights are of
    another model or size.
    """
    if isinstance(path_or_state_dict, Mapping):
        source, obj = "state dict", path_or_state_dict
    else:
        source = f"checkpoint {os.fspath(path_or_state_dict)}"
        try:
            obj = torch.load(path_or_state_dict, map_location="cpu", weights_only=weights_only)
        except FileNotFoundError as e:
            raise ConfigError(f"{source}: file not found") from e
        except Exception as e:  # any unpickling or format problem
            hint = " (weights_only=False loads it if you trust the file)" if weights_only else ""
            raise ConfigError(f"{source}: cannot be read as a torch checkpoint{hint}: {e}") from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{source}: holds no state dict of tensors ({type(obj).__name__})")

    expected = model.state_dict()

    def strip(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in obj.items() if k.startswith(prefix)}

    state = max((strip(p) for p in _PREFIXES), key=lambda s: len(s.keys() & expected.keys()))

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {_shape(state[k])} vs {_shape(v)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        details = []
        if wrong:
            details.append("shape " + "; ".join(wrong[:2]))
        if missing:
            details.append(f"missing {len(missing)} keys e.g. " + ", ".join(missing[:2]))
        if unexpected:
            details.append(f"unexpected {len(unexpected)} keys e.g. " + ", ".join(unexpected[:2]))
        raise ConfigError(
            f"{source} does not fit {type(model).__name__}: found {_describe(state)}; "
            f"expected {_describe(expected)}; " + "; ".join(details)
        )
    model.load_state_dict(state, strict=True)
    return model
