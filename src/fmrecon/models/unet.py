"""U-Nets: the fastMRI U-Net, its normalised complex wrapper, and the
image-domain U-Net baseline of the MIDL 2025 paper.

- ``Unet``: real (N, in_chans, H, W) -> (N, out_chans, H, W). Same layers,
  state-dict keys (``down_sample_layers.N.layers.M.*``, ``conv.*``,
  ``up_transpose_conv.*``, ``up_conv.*``) and outputs as ``fastmri.models.Unet``.
- ``NormUnet``: complex (B, Ch, H, W) -> complex (B, Ch', H, W); real and
  imaginary parts as channels, normalised by group statistics, padded to a
  multiple of 16 (the E2E-VarNet regularizer; keys ``unet.*`` as fastMRI).
- ``UNetRecon``: a full reconstruction model with the package interface
  ``(masked_kspace (B, C, H, W) complex, mask) -> (B, H, W)``.

Memory layout: on the CPU the convolutions run in channels-last layout
(``channels_last=None``, "auto", for images of at least 64x96 pixels): oneDNN's
kernels are faster on it (a fastMRI-size U-Net forward + backward at 224x192 x
10 images: 1.83 s -> 1.46 s on 2 cores), for outputs equal to the default
layout's up to float rounding (relative 4e-6). Weights and state dicts keep
the default layout; only the operands of each convolution are converted.
``channels_last=False`` gives the default layout, bit-identical to
``fastmri.models.Unet``; on GPUs "auto" keeps the default (InstanceNorm
converts back to it after every convolution there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from fmrecon.models.base import ReconModel
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c

CHANNELS_LAST = torch.channels_last
# "auto" uses channels-last from this many input pixels up: below it the layout
# conversions cost more than they save (E2E-VarNet training step on 2 cores,
# channels-last / default time: 64x48 1.08, 96x80 0.98, 128x96 0.93, 218x180 0.81)
CHANNELS_LAST_MIN_PIXELS = 64 * 96


def _channels_last(mode: bool | None, x: torch.Tensor) -> bool:
    """Whether a U-Net on input ``x`` convolves channels-last (None = auto:
    on the CPU, for images of at least CHANNELS_LAST_MIN_PIXELS)."""
    if mode is not None:
        return bool(mode)
    return x.device.type == "cpu" and x.shape[-2] * x.shape[-1] >= CHANNELS_LAST_MIN_PIXELS


class _Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and keys) that converts its operands to
    channels-last layout when ``use_channels_last`` is set (by its U-Net, per
    forward pass; see the module doc)."""

    use_channels_last = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.use_channels_last:
            return super().forward(x)
        w = self.weight.contiguous(memory_format=CHANNELS_LAST)
        return self._conv_forward(x.contiguous(memory_format=CHANNELS_LAST), w, self.bias)


class _ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with the layout choice of :class:`_Conv2d`."""

    use_channels_last = False

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if not self.use_channels_last:
            return super().forward(x, output_size)
        pad = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        return F.conv_transpose2d(
            x.contiguous(memory_format=CHANNELS_LAST),
            self.weight.contiguous(memory_format=CHANNELS_LAST),
            self.bias, self.stride, self.padding, pad, self.groups, self.dilation,
        )  # fmt: skip


# the wide view of a channels-last (N, C, H, W) tensor: (N, H*W / k, k*C), k pixels
# folded into the last axis. torch's per-channel kernels on this layout vectorise
# along C: with the U-Nets' 8-36 channels a broadcast subtract ran 2.5-7x slower
# than on the wide view (1 x 18 x 224 x 192: 0.13 vs 0.05 ms; 10 x 8 x 224 x 192:
# 1.9 vs 0.26 ms, one thread) and a reduction over H, W of one image 2.7x slower
_WIDE_LANES = 256


def _fold(c: int, hw: int) -> int:
    """k of the wide view: the smallest power of two with k * c >= 256 that
    divides the pixel count (1 when none does)."""
    k = 1
    while k * c < _WIDE_LANES and hw % (2 * k) == 0:
        k *= 2
    return k


def _wide(x: torch.Tensor, k: int) -> torch.Tensor:
    """Channels-last (N, C, H, W) -> its wide view (N, H*W / k, k*C) (no copy)."""
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, h * w // k, k * c)


def _unwide(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The inverse of :func:`_wide`: a channels-last (N, C, H, W) view."""
    n, c, h, w = shape
    return x.view(n, h, w, c).permute(0, 3, 1, 2)


def _channel_mean(x: torch.Tensor, c: int, k: int) -> torch.Tensor:
    """Per-channel mean of a wide view (N, P, k*C) over its pixels, as a wide row
    (N, 1, k*C) for broadcasting. One image (N = 1): column sums of the wide view,
    then of the k partial sums (2.7x faster at 18 channels); a batch: torch's
    reduction over the (N, H*W, C) view (faster there)."""
    n = x.shape[0]
    if n == 1:
        s = x.sum(dim=1).view(n, k, c).sum(dim=1)
    else:
        s = x.view(n, -1, c).sum(dim=1)
    return (s / (x.shape[1] * k)).unsqueeze(1).expand(n, k, c).reshape(n, 1, k * c)


def _norm_act(x: torch.Tensor, eps: float, slope: float, inplace: bool):
    """Instance normalisation then LeakyReLU(``slope``) of a channels-last
    (N, C, H, W) tensor on its wide view; returns (output, the wide 1 / std
    (N, 1, k*C)). ``inplace``: written into ``x`` (returned as the output);
    else on new tensors (for compiled graphs, which AOTAutograd differentiates).
    Two-pass statistics (mean, then the mean of squared deviations: as accurate
    as ``F.instance_norm``, tested against float64). Low-precision inputs (bf16 /
    fp16 autocast) are normalised in float32 and returned in their own dtype, as
    ``F.instance_norm`` returns them."""
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
    c, k = x.shape[1], _fold(x.shape[1], x.shape[2] * x.shape[3])
    wide = _wide(xf, k)
    mean = _channel_mean(wide, c, k)
    u = wide.sub_(mean) if inplace else wide - mean  # centred: no cancellation below
    rstd = torch.rsqrt(_channel_mean(u * u, c, k) + eps)
    if not inplace:
        return _unwide(F.leaky_relu(u * rstd, slope), x.shape).to(x.dtype), rstd
    F.leaky_relu_(u.mul_(rstd), slope)
    if xf is not x:
        x.copy_(xf)
    return x, rstd


class _ChannelsLastNormAct(torch.autograd.Function):
    """:func:`_norm_act` (instance normalisation, biased variance as
    ``F.instance_norm``, then LeakyReLU) in place on a channels-last (N, C, H, W)
    tensor, with a closed-form backward from the saved output ``y`` alone: the
    normalised input is ``u = y`` where ``y > 0``, ``y / slope`` elsewhere,
    the LeakyReLU's backward ``h`` has y's sign pattern, ``h * u = g * y``, and
    ``dx = rstd * (h - mean(h) - u * mean(h * u))``. Nothing else is kept (the
    conv before it does not need its output), so the forward makes no new tensor
    of the input's size but one temporary for the variance."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float, slope: float) -> torch.Tensor:
        _, rstd = _norm_act(x, eps, slope, inplace=True)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x, rstd)
        ctx.slope, ctx.k = slope, rstd.shape[-1] // x.shape[1]
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        y_saved, rstd = ctx.saved_tensors
        shape, c, k, slope = y_saved.shape, y_saved.shape[1], ctx.k, ctx.slope
        y = _wide(y_saved.to(rstd.dtype), k)
        gw = _wide(g.to(rstd.dtype).contiguous(memory_format=CHANNELS_LAST), k)
        h = torch.ops.aten.leaky_relu_backward(gw, y, slope, False)
        # dx = a * h + b * u + c with per-(n, c) a = rstd, b = -rstd mean(g * y),
        # c = -rstd * mean(h): two fused passes (addcmul) after the two means
        b = -rstd * _channel_mean(gw * y, c, k)
        cc = -rstd * _channel_mean(h, c, k)
        u = F.leaky_relu(y, 1.0 / slope)  # the normalised input
        dx = torch.addcmul(cc, u, b, out=u).addcmul_(h, rstd)
        return _unwide(dx, shape).to(g.dtype), None, None


class _InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (no affine, no running statistics: no parameters or
    keys) that keeps a channels-last input channels-last and, given the block's
    LeakyReLU ``slope``, applies it in the same passes, IN PLACE on its input
    (the U-Net blocks pass their convolutions' outputs, used nowhere else).

    ``F.instance_norm`` views its input as (1, N * C, H, W), which needs the
    default layout: a channels-last input was copied to it and the next
    convolution copied it back, two copies per normalisation (a fifth of an
    E2E-VarNet forward on the CPU). Channels-last inputs go through
    :func:`_norm_act` (the same statistics to float rounding; with autograd,
    :class:`_ChannelsLastNormAct`). torch's own channels-last kernels for this,
    ``F.batch_norm`` (N = 1) and ``F.group_norm`` (one group per channel), are
    faster but inaccurate: they accumulate in float32 along the 43,008 pixels of
    a 224 x 192 map (error 2e-5 on unit-variance outputs, 40x
    ``F.instance_norm``'s; group_norm's variance as E[x^2] - E[x]^2 gave 0.34 on
    data of mean 100, std 1). Default layout: the parent's forward then
    ``F.leaky_relu`` in place, bit-identical to fastMRI's block."""

    def forward(self, x: torch.Tensor, slope: float | None = None) -> torch.Tensor:
        if x.dim() == 4 and x.is_contiguous(memory_format=CHANNELS_LAST) and not x.is_contiguous():
            act = 1.0 if slope is None else slope  # LeakyReLU(1) is the identity
            if torch.compiler.is_compiling():
                # out of place, differentiated by AOTAutograd (inductor fuses the passes);
                # in place would write into a copy if the traced layout were not the
                # runtime one (the wide view is then a reshape copy)
                return _norm_act(x, self.eps, act, inplace=False)[0]
            if slope is None:  # the module alone: leave the caller's tensor alone
                return _ChannelsLastNormAct.apply(x.clone(), self.eps, act)
            if torch.is_grad_enabled() and x.requires_grad:
                return _ChannelsLastNormAct.apply(x, self.eps, slope)
            return _norm_act(x, self.eps, slope, inplace=True)[0]
        y = super().forward(x)
        return y if slope is None else F.leaky_relu(y, slope, inplace=True)


class _ConvBlock(nn.Module):
    """Two (3x3 conv without bias, InstanceNorm, LeakyReLU(0.2), Dropout2d):
    (N, cin, h, w) -> (N, cout, h, w). Keys ``layers.0.weight``, ``layers.4.weight``."""

    def __init__(self, cin: int, cout: int, drop_prob: float):
        super().__init__()
        stages: list[nn.Module] = []
        for c in (cin, cout):
            stages += [
                _Conv2d(c, cout, kernel_size=3, padding=1, bias=False),
                _InstanceNorm2d(cout),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Dropout2d(drop_prob),
            ]
        self.layers = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in (0, 4):
            conv, norm, act, drop = self.layers[i : i + 4]
            x = drop(norm(conv(x), act.negative_slope))  # the norm applies the LeakyReLU
        return x


class _UpBlock(nn.Module):
    """2x2 stride-2 transpose conv without bias, InstanceNorm, LeakyReLU(0.2):
    (N, cin, h, w) -> (N, cout, 2h, 2w). Key ``layers.0.weight``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.layers = nn.Sequential(
            _ConvTranspose2d(cin, cout, kernel_size=2, stride=2, bias=False),
            _InstanceNorm2d(cout),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, act = self.layers
        return norm(conv(x), act.negative_slope)  # the norm applies the LeakyReLU


def _reflect_pad_end(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """``F.pad(x, ..., mode="reflect")`` by ``pad`` at the end of ``dim`` (fastMRI's
    padding of odd sizes), made of a slice, a flip and a concatenation: the same
    values (the edge is not repeated: ``x[n-2], x[n-3], ...``) and the same
    gradients, but a deterministic CUDA backward (ReflectionPad2d's backward
    accumulates with atomics, so ``torch.use_deterministic_algorithms(True)``,
    Lightning's ``deterministic=True``, refuses it). Applied to W, then to H,
    this also gives reflect's corner (``x[H-2, W-2]``)."""
    if pad <= 0:
        return x
    n = x.shape[dim]
    if pad >= n:  # reflect needs pad < size: F.pad's own error
        return F.pad(x, [0, pad, 0, 0] if dim == -1 else [0, 0, 0, pad], mode="reflect")
    return torch.cat([x, x.narrow(dim, n - 1 - pad, pad).flip(dim)], dim=dim)


class Unet(nn.Module):
    """The fastMRI U-Net (Ronneberger et al. 2015 as fastMRI builds it).

    (N, in_chans, H, W) real -> (N, out_chans, H, W). Any H, W whose
    ``num_pool_layers``-fold halving stays >= 1: after each 2x upsampling the
    map is reflect-padded by one row/column on the bottom/right when the skip
    is one larger (odd sizes), as fastMRI does (same values, deterministic
    backward: :func:`_reflect_pad_end`). ``channels_last``: the
    convolutions' memory layout (None = channels-last on the CPU; see the
    module doc), also settable later with :meth:`set_channels_last`.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        chans: int = 32,
        num_pool_layers: int = 4,
        drop_prob: float = 0.0,
        channels_last: bool | None = None,
    ):
        super().__init__()
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.chans = chans
        self.num_pool_layers = num_pool_layers
        self.drop_prob = drop_prob

        widths = [chans * 2**i for i in range(num_pool_layers)]  # encoder outputs
        self.down_sample_layers = nn.ModuleList(
            _ConvBlock(cin, cout, drop_prob)
            for cin, cout in zip([in_chans, *widths[:-1]], widths, strict=True)
        )
        self.conv = _ConvBlock(widths[-1], widths[-1] * 2, drop_prob)
        self.up_transpose_conv = nn.ModuleList(_UpBlock(w * 2, w) for w in reversed(widths))
        up_conv: list[nn.Module] = [_ConvBlock(w * 2, w, drop_prob) for w in reversed(widths[1:])]
        # the last decoder stage ends with a 1x1 conv (with bias) to out_chans
        up_conv.append(
            nn.Sequential(
                _ConvBlock(chans * 2, chans, drop_prob),
                _Conv2d(chans, out_chans, kernel_size=1),
            )
        )
        self.up_conv = nn.ModuleList(up_conv)
        # a plain list (not registered twice): the convolutions whose layout we choose
        layout = (_Conv2d, _ConvTranspose2d)
        self._layout_convs = [m for m in self.modules() if isinstance(m, layout)]
        self.set_channels_last(channels_last)

    def set_channels_last(self, mode: bool | None) -> None:
        """True / False / None (= auto: on the CPU for images of at least
        ``CHANNELS_LAST_MIN_PIXELS``), decided per forward pass for all convolutions."""
        self.channels_last = mode

    def _choose_layout(self, x: torch.Tensor) -> None:
        use = _channels_last(self.channels_last, x)
        for m in self._layout_convs:
            m.use_channels_last = use

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, out_chans, H, W)."""
        self._choose_layout(x)
        skips = []
        for block in self.down_sample_layers:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.conv(x)
        for up, block in zip(self.up_transpose_conv, self.up_conv, strict=True):
            skip = skips.pop()
            x = up(x)
            x = _reflect_pad_end(x, skip.shape[-1] - x.shape[-1], -1)
            x = _reflect_pad_end(x, skip.shape[-2] - x.shape[-2], -2)
            x = block(torch.cat([x, skip], dim=1))
        return x


class NormUnet(nn.Module):
    """A ``Unet`` on normalised complex images (fastMRI's ``NormUnet``).

    complex (B, in_chans // 2, H, W) -> complex (B, out_chans // 2, H, W).

    Channels for the U-Net are ``[real parts..., imaginary parts...]``. The
    real group and the imaginary group are each normalised by their own mean
    and (unbiased) standard deviation over all their channels and pixels, the
    image is zero-padded (centred, extra pixel on the right/bottom) to a
    multiple of 16 in H and W, and the output is cropped back and
    un-normalised with the same statistics (output group g uses input group
    g's mean and std). State-dict keys ``unet.*``. For 2 U-Net channels
    (one complex channel, as in E2E-VarNet) this is exactly fastMRI; fastMRI's
    own statistics only broadcast for 2 channels, ours for any even count.
    """

    def __init__(
        self,
        chans: int,
        num_pools: int,
        in_chans: int = 2,
        out_chans: int = 2,
        drop_prob: float = 0.0,
    ):
        super().__init__()
        if in_chans % 2 or out_chans % 2:
            raise ValueError("NormUnet in_chans and out_chans must be even (real, imag)")
        self.unet = Unet(in_chans, out_chans, chans, num_pools, drop_prob)

    @staticmethod
    def _pad_amounts(n: int) -> tuple[int, int]:
        extra = ((n - 1) | 15) + 1 - n
        return extra // 2, extra - extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """complex (B, Ch, H, W) -> complex (B, out_chans // 2, H, W)."""
        if not x.is_complex():
            raise ValueError("NormUnet expects a complex tensor (B, Ch, H, W)")
        b, _, h, w = x.shape
        # (B, 2, Ch, H, W) from the real view (not x.real / x.imag: strided views of a
        # complex tensor, which torch.compile's backward could not handle)
        parts = torch.view_as_real(x).movedim(-1, 1)
        flat = parts.reshape(b, 2, -1)
        mean = flat.mean(dim=2).view(b, 2, 1, 1, 1)
        std = flat.std(dim=2).view(b, 2, 1, 1, 1)
        y = ((parts - mean) / std).reshape(b, -1, h, w)

        top, bottom = self._pad_amounts(h)
        left, right = self._pad_amounts(w)
        y = F.pad(y, [left, right, top, bottom])
        y = self.unet(y)[..., top : top + h, left : left + w]

        y = y.reshape(b, 2, -1, h, w) * std + mean
        return torch.view_as_complex(y.movedim(1, -1).contiguous())


class UNetRecon(ReconModel):
    """Image-domain U-Net baseline (MIDL 2025, Table 1 "U-Net").

    (masked_kspace complex (B, C, H, W), mask bool (B, 1, H, W)) -> (B, H, W).

    zero-filled RSS image -> per-example normalisation ``(x - mean) / (std + eps)``
    (mean and unbiased std over the image, eps 1e-11, as fastMRI's U-Net data
    transform) -> ``Unet(1, 1, chans, num_pools)`` -> ``y * std + mean``.
    The result is a magnitude estimate but nothing is clamped: neither the
    normalised input (fastMRI's transform clamps it to [-6, 6]; pass
    ``input_clamp=6.0`` for that) nor the output (it may hold small negative
    values). The mask is not used: the zero-filled image already carries it.

    Size: ``chans=64, num_pools=4`` gives 31,023,745 trainable parameters,
    within 0.1% of the paper's 31.04M.
    """

    def __init__(
        self,
        chans: int = 64,
        num_pools: int = 4,
        drop_prob: float = 0.0,
        input_clamp: float | None = None,
        eps: float = 1e-11,
    ):
        super().__init__()
        self.unet = Unet(1, 1, chans, num_pools, drop_prob)
        self.input_clamp = input_clamp
        self.eps = eps

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        image = rss(ifft2c(masked_kspace), dim=-3)  # (B, H, W)
        b = image.shape[0]
        flat = image.reshape(b, -1)
        mean = flat.mean(dim=1).view(b, 1, 1, 1)
        std = flat.std(dim=1).view(b, 1, 1, 1)
        x = (image.unsqueeze(1) - mean) / (std + self.eps)
        if self.input_clamp is not None:
            x = x.clamp(-self.input_clamp, self.input_clamp)
        return (self.unet(x) * std + mean).squeeze(1)
