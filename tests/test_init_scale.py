"""Every registered model starts near data consistency: at initialisation its
output has about the target's norm (within [0.5, 2]) on simulated cardiac
data, so the SSIM loss has a gradient from the first step.

An FM-VarNet with PyTorch's default head initialisation fails this by a factor
of hundreds at paper size (each cascade subtracts an image of the input's own
magnitude); at test size, with 4 cascades, the default head still gives a
ratio far above 2, which is checked too, so this test can fail.
"""

from __future__ import annotations

import math

import pytest
import torch

from fmrecon.data.simulate import simulate_cardiac_subject
from fmrecon.models.registry import MODELS
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c
from fmrecon.physics.masks import create_mask
from test_fm_models import TINY, tiny_model


@pytest.fixture(scope="module")
def cardiac():
    """Two simulated 10-coil 64x48 cine slices, x4 CMRxRecon mask (24 ACS lines)."""
    sub = simulate_cardiac_subject(0, size=(64, 48), n_slices=2, n_frames=1, n_coils=10)
    k = torch.from_numpy(sub["kspace"]).reshape(-1, 10, 64, 48)
    mask = torch.from_numpy(create_mask("cmrxrecon-uniform", 4)((64, 48))).bool()
    mask = mask[None, None].expand(k.shape[0], 1, 64, 48)
    return k * mask, mask, rss(ifft2c(k), dim=1)


def _ratio(model, cardiac) -> float:
    k, mask, target = cardiac
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(k, mask)
    return float(out.norm() / target.norm())


def _paper_depth(name: str) -> dict:
    """Test-size widths, but the paper's 12 cascades where the model has cascades."""
    return {"num_cascades": 12} if "num_cascades" in TINY[MODELS[name].family] else {}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_starts_near_the_target_norm(name, cardiac):
    torch.manual_seed(1)
    ratio = _ratio(tiny_model(name, **_paper_depth(name)), cardiac)
    assert math.isfinite(ratio) and 0.5 <= ratio <= 2.0, f"{name}: output/target norm {ratio:.3g}"


def test_fm_varnet_starts_as_the_zero_filled_image(cardiac):
    """A zero head makes each regularizer term exactly 0: the untrained
    FM-VarNet is data consistency only and returns the zero-filled RSS."""
    k, mask, _ = cardiac
    model = tiny_model("fm-varnet-clip")
    with torch.no_grad():
        out = model(k, mask)
    torch.testing.assert_close(out, rss(ifft2c(k), dim=1), rtol=1e-5, atol=1e-9)


def test_default_head_init_diverges_which_is_why_the_head_starts_at_zero(cardiac):
    torch.manual_seed(1)
    model = tiny_model("fm-varnet-clip", num_cascades=12, zero_init_head=False)
    assert _ratio(model, cardiac) > 4.0


def test_the_zero_head_still_learns(cardiac):
    """After one Adam step the head is non-zero and the decoder gets gradients."""
    from fmrecon.losses import SSIMLoss

    k, mask, target = cardiac
    model = tiny_model("fm-varnet-clip")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = SSIMLoss()
    decoder = model.cascades[0].model.merges[-1][0].weight
    grads = []
    for _ in range(2):
        loss = loss_fn(model(k, mask), target, target.flatten(1).amax(1))
        opt.zero_grad()
        loss.backward()
        grads.append(float(decoder.grad.abs().sum()) if decoder.grad is not None else 0.0)
        opt.step()
    assert grads[0] == 0.0 < grads[1]
    assert float(model.cascades[0].model.head.weight.detach().abs().sum()) > 0
