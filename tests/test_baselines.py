"""U-Net and E2E-VarNet baselines: sizes, equivalence with fastMRI (the
reference package, installed as a test oracle), checkpoint loading, the
cascade's regularizer contract, activation checkpointing, shapes and gradients."""

from __future__ import annotations

import fastmri.models as fm  # the oracle: conftest.py fails the run without it
import numpy as np
import pytest
import torch
from torch import nn

from fmrecon.errors import ConfigError
from fmrecon.models.unet import NormUnet, Unet, UNetRecon
from fmrecon.models.varnet import (
    SensitivityModel,
    VarNet,
    VarNetBlock,
    load_fastmri_state_dict,
    low_frequency_mask,
)
from fmrecon.physics.coils import acs_region, rss
from fmrecon.physics.fft import ifft2c
from fmrecon.physics.masks import create_mask
from test_fm_models import _ZeroRegularizer, check_one_dc_step

SIZES = [(32, 24), (33, 27)]  # even and odd (H, W)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def equispaced_lines(w: int, r: int = 4, acs: int = 6, offset: int = 1) -> torch.Tensor:
    """(W,) bool: every r-th line from ``offset`` plus ``acs`` centred lines."""
    m = torch.zeros(w, dtype=torch.bool)
    m[offset::r] = True
    start = (w - acs + 1) // 2
    m[start : start + acs] = True
    return m


def make_input(b: int, c: int, h: int, w: int, lines: list[torch.Tensor], seed: int = 0):
    """Masked complex k-space (B, C, H, W), our mask (B, 1, H, W) and fastMRI's
    inputs: k-space (B, C, H, W, 2) real and mask (B, 1, 1, W, 1)."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, c, h, w, dtype=torch.complex64, generator=g)
    line_mask = torch.stack(lines).view(b, 1, 1, w)
    k = k * line_mask
    mask = line_mask.expand(b, 1, h, w)
    return k, mask, torch.view_as_real(k).contiguous(), line_mask.unsqueeze(-1)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ----------------------------------------------------------------------------- sizes


def test_parameter_counts_full_size():
    net = VarNet()
    assert n_params(net) == 29_936_966
    assert n_params(net.sens_net) == 484_898
    assert len(net.cascades) == 12
    assert all(n_params(c) == 2_454_339 for c in net.cascades)
    assert net.state_dict().keys() == fm.VarNet().state_dict().keys()

    unet = UNetRecon(64, 4)
    assert n_params(unet) == 31_023_745
    assert abs(n_params(unet) - 31.04e6) / 31.04e6 < 1e-3


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("h,w", SIZES)
def test_unet_matches_fastmri(h, w):
    torch.manual_seed(0)
    ref = fm.Unet(3, 2, chans=4, num_pool_layers=3).eval()
    ours = Unet(3, 2, chans=4, num_pool_layers=3, channels_last=False).eval()
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        want = ref(x)
        assert torch.equal(ours(x), want)  # the default layout: bit-identical
        ours.set_channels_last(True)  # channels-last convolutions (auto on larger CPU images)
        assert rel_err(ours(x), want) < 1e-5
    assert ours.state_dict().keys() == ref.state_dict().keys()


def test_auto_layout_is_channels_last_for_larger_cpu_images():
    net = Unet(2, 2, chans=4, num_pool_layers=2)  # channels_last=None: auto
    conv = net.down_sample_layers[0].layers[0]
    net(torch.randn(1, 2, 32, 24))
    assert conv.use_channels_last is False  # small: the conversions cost more than they save
    net(torch.randn(1, 2, 96, 80))
    assert conv.use_channels_last is True
    net.set_channels_last(False)
    net(torch.randn(1, 2, 96, 80))
    assert conv.use_channels_last is False


@pytest.mark.parametrize("batch", [1, 3])
def test_channels_last_same_output_and_gradients(batch):
    """Channels-last convolutions (the CPU default) give the default layout's
    outputs and gradients up to float rounding, leave the weights' layout (so
    state dicts) alone, and stay channels-last through every normalisation (no
    layout copy between convolutions)."""
    torch.manual_seed(3)
    a = Unet(2, 2, chans=4, num_pool_layers=2, channels_last=False)
    b = Unet(2, 2, chans=4, num_pool_layers=2, channels_last=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(batch, 2, 20, 18)
    layouts = []

    def record(_m, _i, y):
        layouts.append(y.is_contiguous(memory_format=torch.channels_last))

    for m in b.modules():
        if isinstance(m, nn.InstanceNorm2d):
            m.register_forward_hook(record)
    outs = []
    for net in (a, b):
        out = net(x)
        out.square().mean().backward()
        outs.append(out.detach())
    assert len(layouts) == 12 and all(layouts)  # 5 conv blocks x 2, 2 up blocks x 1
    assert outs[1].is_contiguous(memory_format=torch.channels_last)
    assert rel_err(outs[1], outs[0]) < 1e-5
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert q.is_contiguous() and q.grad.shape == p.grad.shape
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("batch", [1, 3])
def test_channels_last_instance_norm_exact_gradient_and_accuracy(batch):
    """The channels-last instance normalisation, alone and fused with the blocks'
    LeakyReLU (in place, on the wide view of the channels): its closed-form
    backward passes gradcheck (float64; one image and a batch take different
    reductions), in float32 it is as accurate as torch's own ``F.instance_norm``
    (within 4x of its error against float64) on data whose mean is far above its
    spread, where single-pass statistics fail (torch's channels-last
    ``batch_norm`` is 40x and ``group_norm`` 1e5x less accurate here), the
    no-autograd path gives the autograd path's values exactly, and the module
    alone leaves its input untouched."""
    from fmrecon.models.unet import _InstanceNorm2d

    F = torch.nn.functional
    norm = _InstanceNorm2d(3)  # the module the U-Nets use
    g = torch.Generator().manual_seed(7)
    cl = torch.channels_last
    x64 = torch.randn(batch, 3, 6, 10, dtype=torch.float64, generator=g)
    x64 = (x64 * 2 + 1).contiguous(memory_format=cl).requires_grad_()
    assert torch.autograd.gradcheck(norm, (x64,))
    # fused, in place: on a copy (x64 * 1), as a block passes its conv's output
    assert torch.autograd.gradcheck(lambda t: norm(t * 1, 0.2), (x64,))
    for mean in (5.0, 100.0):
        x = (torch.randn(batch, 18, 64, 48, generator=g) * 2 + mean).contiguous(memory_format=cl)
        before = x.clone()
        ref = F.instance_norm(x.double())
        ours = norm(x)
        assert torch.equal(x, before)
        assert ours.is_contiguous(memory_format=cl) and ours.dtype == torch.float32
        err_native = (F.instance_norm(x.contiguous()).double() - ref).abs().max()
        assert (ours.double() - ref).abs().max() <= 4 * err_native
        fused = norm(x.clone().requires_grad_() * 1, 0.2)  # recorded: autograd path
        assert fused.is_contiguous(memory_format=cl)
        assert (fused.double() - F.leaky_relu(ref, 0.2)).abs().max() <= 4 * err_native
        with torch.no_grad():
            assert torch.equal(norm(x.clone(), 0.2), fused.detach())


@pytest.mark.parametrize("h,w", SIZES)
def test_norm_unet_matches_fastmri(h, w):
    torch.manual_seed(1)
    ref = fm.NormUnet(4, 2).eval()  # fastMRI's group statistics only work for 2 channels
    ours = NormUnet(4, 2).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 1, h, w, dtype=torch.complex64) * 3 + 1
    with torch.no_grad():
        out = ours(x)
        expected = torch.view_as_complex(ref(torch.view_as_real(x).contiguous()))
    assert out.shape == x.shape and out.dtype == torch.complex64
    assert rel_err(out, expected) < 1e-5
    # ours also takes several complex channels: (B, 2, H, W) -> (B, 3, H, W)
    multi = NormUnet(4, 2, in_chans=4, out_chans=6).eval()
    assert multi(torch.cat([x, 2 * x], dim=1)).shape == (2, 3, h, w)


@pytest.mark.parametrize("h,w", SIZES)
def test_sensitivity_model_matches_fastmri(h, w):
    torch.manual_seed(2)
    ref = fm.SensitivityModel(chans=4, num_pools=2).eval()
    ours = SensitivityModel(chans=4, num_pools=2).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    # different ACS widths and offsets per example
    lines = [equispaced_lines(w, 4, 6, 0), equispaced_lines(w, 3, 9, 2)]
    k, mask, k_ref, mask_ref = make_input(2, 3, h, w, lines)
    with torch.no_grad():
        sens = ours(k, mask)
        expected = torch.view_as_complex(ref(k_ref, mask_ref))
    assert sens.shape == k.shape
    assert rel_err(sens, expected) < 1e-4
    torch.testing.assert_close(rss(sens, dim=1), torch.ones(2, h, w), rtol=0, atol=1e-5)


@pytest.mark.parametrize("h,w", SIZES)
def test_varnet_matches_fastmri_from_file(tmp_path, h, w):
    torch.manual_seed(3)
    ref = fm.VarNet(num_cascades=3, sens_chans=4, sens_pools=2, chans=6, pools=3).eval()
    with torch.no_grad():  # make dc_weight differ from its init
        for i, c in enumerate(ref.cascades):
            c.dc_weight.fill_(0.5 + 0.3 * i)
    path = tmp_path / "varnet_state_dict.pt"
    torch.save(ref.state_dict(), path)
    ours = load_fastmri_state_dict(VarNet(3, 6, 3, 4, 2), path).eval()
    lines = [equispaced_lines(w, 4, 6, 1), equispaced_lines(w, 4, 8, 3)]
    k, mask, k_ref, mask_ref = make_input(2, 4, h, w, lines, seed=1)
    with torch.no_grad():
        out = ours(k, mask)
        expected = ref(k_ref, mask_ref)
    assert out.shape == (2, h, w) and out.dtype == torch.float32
    assert rel_err(out, expected) < 1e-4


def test_varnet_sign_modulated_frame_equals_centred_ffts(monkeypatch):
    """On even sizes the cascades run in the sign-modulated frame (no FFT shifts);
    the output is the centred path's (shift_signs off) to float rounding, and both
    are fastMRI's (test_varnet_matches_fastmri_from_file covers an odd size too)."""
    import fmrecon.models.varnet as varnet

    torch.manual_seed(5)
    net = VarNet(3, 6, 3, 4, 2).eval()
    lines = [equispaced_lines(24, 4, 6, 1)]
    k, mask, _, _ = make_input(1, 4, 34, 24, lines, seed=2)  # 17 + 12 odd: s_k = -s_n
    calls = []

    def spy(*a, **kw):
        calls.append(a)
        return signs(*a, **kw)

    signs = varnet.shift_signs
    monkeypatch.setattr(varnet, "shift_signs", spy)
    with torch.no_grad():
        framed = net(k, mask)
        assert calls == [(34, 24)]
        monkeypatch.setattr(varnet, "shift_signs", lambda *a, **kw: None)
        centred = net(k, mask)
    assert rel_err(framed, centred) < 1e-5


def test_lightning_checkpoint_loads(tmp_path):
    torch.manual_seed(4)
    ref = fm.VarNet(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2).eval()
    state = {f"varnet.{k}": v for k, v in ref.state_dict().items()}
    state["loss.w"] = torch.ones(1, 1, 7, 7) / 49  # fastMRI's SSIMLoss buffer
    path = tmp_path / "epoch=3.ckpt"
    torch.save({"epoch": 3, "global_step": 10, "state_dict": state}, path)
    ours = load_fastmri_state_dict(VarNet(2, 4, 2, 4, 2), path).eval()
    k, mask, k_ref, mask_ref = make_input(1, 2, 20, 18, [equispaced_lines(18)], seed=2)
    with torch.no_grad():
        assert rel_err(ours(k, mask), ref(k_ref, mask_ref)) < 1e-4


def test_wrong_checkpoint_gives_one_line_config_error(tmp_path):
    ref = fm.VarNet(num_cascades=3, sens_chans=4, sens_pools=2, chans=6, pools=3)
    path = tmp_path / "other.pt"
    torch.save(ref.state_dict(), path)
    with pytest.raises(ConfigError) as err:
        load_fastmri_state_dict(VarNet(2, 4, 2, 4, 2), path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert "found 3 cascades, chans 6, pools 3, sens_chans 4, sens_pools 2" in msg
    assert "expected 2 cascades, chans 4, pools 2, sens_chans 4, sens_pools 2" in msg
    assert "cascades.0.model.unet.down_sample_layers.0.layers.0.weight (6,2,3,3) vs (4,2,3,3)" in (
        msg
    )

    # a checkpoint of another model altogether
    unet_path = tmp_path / "unet.pt"
    torch.save(Unet(1, 1, 4, 2).state_dict(), unet_path)
    with pytest.raises(ConfigError, match="no VarNet layout"):
        load_fastmri_state_dict(VarNet(2, 4, 2, 4, 2), unet_path)
    with pytest.raises(ConfigError, match="not found"):
        load_fastmri_state_dict(VarNet(2, 4, 2, 4, 2), tmp_path / "missing.pt")


def test_low_frequency_mask_matches_fastmri_rule():
    sens = fm.SensitivityModel(chans=2, num_pools=1)
    rng = np.random.default_rng(0)
    for w in (16, 17, 24, 31):
        lines = torch.from_numpy(rng.random((8, w)) < 0.5)
        lines[:4, w // 2 - 2 : w // 2 + 3] = True  # some with a centre run
        pad, num = sens.get_pad_and_num_low_freqs(lines.view(8, 1, 1, w, 1))
        keep = low_frequency_mask(lines.view(8, 1, 1, w))
        for i in range(8):
            expected = torch.zeros(w, dtype=torch.bool)
            expected[pad[i] : pad[i] + num[i]] = True
            assert torch.equal(keep[i, 0, 0], expected)
    fixed = low_frequency_mask(lines.view(8, 1, 1, w), num_low_frequencies=5)
    assert int(fixed[0].sum()) == 5


def test_two_d_mask_keeps_acs_region():
    frames = torch.from_numpy(create_mask("kt-radial", 8)((2, 48, 40)).copy())
    keep = low_frequency_mask(frames[:, None])  # (2, 1, 48, 40)
    assert keep.shape == (2, 1, 48, 40)
    for f in range(2):
        rows, cols = acs_region(frames[f])
        assert rows.stop - rows.start >= 16 and cols.stop - cols.start >= 16
        assert bool(frames[f, rows, cols].all())  # fully sampled
        assert int(keep[f].sum()) == (rows.stop - rows.start) * (cols.stop - cols.start)
        assert bool(keep[f, 0, rows, cols].all())
    # a spoke through the centre does not hijack the block (it is never one row)
    single_row = torch.zeros(16, 16, dtype=torch.bool)
    single_row[8] = True
    single_row[6:11, 6:11] = True
    assert acs_region(single_row) == (slice(6, 11), slice(6, 11))
    # the sensitivity model runs on 2-D masks
    k = torch.randn(2, 3, 48, 40, dtype=torch.complex64) * frames[:, None]
    sens = SensitivityModel(4, 2)(k, frames[:, None])
    assert sens.shape == k.shape and torch.isfinite(torch.view_as_real(sens)).all()


# ----------------------------------------------------------------------------- cascade


class Zeros(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen: list[tuple] = []

    def forward(self, x):
        self.seen.append((tuple(x.shape), x.dtype))
        return torch.zeros_like(x)


def test_cascade_takes_any_regularizer():
    k, mask, _, _ = make_input(2, 3, 16, 20, [equispaced_lines(20)] * 2)
    current = torch.randn_like(k)
    sens = torch.randn_like(k)
    zeros = Zeros()
    block = VarNetBlock(zeros)
    assert set(block.state_dict()) == {"dc_weight"}
    assert block.dc_weight.item() == 1.0
    with torch.no_grad():
        out = block(current, k, mask, sens)
    assert zeros.seen == [((2, 1, 16, 20), torch.complex64)]
    m = mask.expand_as(k)
    # sampled: data consistency restores k0 (up to rounding of k - (k - k0))
    torch.testing.assert_close(out[m], k[m], rtol=0, atol=1e-6)
    assert torch.equal(out[~m], current[~m])  # unsampled: untouched

    # a factory puts any module in the cascades; keys cascades.N.model.*
    net = VarNet(2, sens_chans=4, sens_pools=2, regularizer_factory=lambda i: nn.Identity())
    assert sorted(k for k in net.state_dict() if k.startswith("cascades")) == [
        "cascades.0.dc_weight",
        "cascades.1.dc_weight",
    ]
    assert net(k, mask).shape == (2, 16, 20)


# ----------------------------------------------------------------------------- training


def test_checkpointing_same_output_and_gradients():
    torch.manual_seed(5)
    plain = VarNet(2, 4, 2, 4, 2)
    ckpt = VarNet(2, 4, 2, 4, 2, checkpoint_cascades=True)
    ckpt.load_state_dict(plain.state_dict())
    k, mask, _, _ = make_input(1, 3, 18, 20, [equispaced_lines(20)], seed=6)
    outs = []
    for net in (plain, ckpt):
        out = net(k, mask)
        out.square().mean().backward()
        outs.append(out.detach())
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("c,h,w", [(1, 16, 16), (5, 21, 19)])
def test_any_coils_and_size_gradients_flow(c, h, w):
    torch.manual_seed(7)
    k, mask, _, _ = make_input(2, c, h, w, [equispaced_lines(w)] * 2, seed=c)
    k.requires_grad_(True)
    for net in (VarNet(2, 4, 2, 4, 2), UNetRecon(4, 2)):
        out = net(k, mask)
        assert out.shape == (2, h, w) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        out.mean().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert k.grad is not None and torch.isfinite(torch.view_as_real(k.grad)).all()
        k.grad = None
    k0 = k.detach()
    # beyond shapes, at these coil counts and sizes: one DC step of the VarNet is
    # k - mu M (k - k0) (a sign flip moves k away from the measurement) ...
    net = VarNet(2, 4, 2, 4, 2)
    net.cascades[0].model = _ZeroRegularizer()
    check_one_dc_step(net, k0, mask)
    # ... and an identity U-Net returns the zero-filled RSS (its normalisation undone)
    unet = UNetRecon(4, 2)
    unet.unet = nn.Identity()
    with torch.no_grad():
        out = unet(k0, mask)
    zf = rss(ifft2c(k0), dim=1)
    # (x - mean) / (std + eps) * std + mean: a few fp32 roundings of values up to max |zf|
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(out, zf, rtol=0, atol=4 * eps * float(zf.abs().max()))
