"""Differentiable SSIM against skimage, gradients and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from fmrecon.losses import SSIMLoss, ssim


def _smooth_image(rng, h, w):
    """A random smooth positive image (low-pass filtered noise) with a random scale."""
    x = rng.random((h, w))
    k = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    x = np.real(np.fft.ifft2(np.fft.fft2(x) * np.exp(-k * 200.0)))
    x = x - x.min() + 0.05
    return x * rng.uniform(0.01, 100.0)


def _pairs(seed=0, n=6):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(7, 48, size=2))
        target = _smooth_image(rng, h, w)
        noise = rng.standard_normal((h, w)) * target.std() * rng.uniform(0.01, 1.0)
        yield target, target + noise


# Agreement with skimage (float64 throughout): measured over the 120 pairs of
# _pairs(seed) for seeds 0-19 (torch 2.13, skimage 0.26), worst |difference| 7.4e-7
# in float32 (6.2 x fp32 eps: the windowed moments' cancellation) and 3.3e-14 in
# float64 (both sides' float64 rounding); the tolerances leave ~2.7x and 30x. A
# population instead of sample covariance (NP/(NP-1) left out) moves SSIM by up
# to 7e-4 on the same pairs.
SKIMAGE_TOL = {torch.float32: 2e-6, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_matches_skimage(dtype):
    worst = 0.0
    for seed in range(20):
        for target, pred in _pairs(seed):
            drange = target.max()
            ref = structural_similarity(target, pred, data_range=drange)
            got = ssim(
                torch.tensor(pred, dtype=dtype)[None],
                torch.tensor(target, dtype=dtype)[None],
                torch.tensor([drange], dtype=dtype),
            )
            assert got.shape == (1,) and got.dtype == dtype
            worst = max(worst, abs(got.item() - ref))
    assert worst <= SKIMAGE_TOL[dtype], f"{dtype}: SSIM differs from skimage by {worst:.3g}"


def test_loss_batch_matches_skimage_mean():
    rng = np.random.default_rng(3)
    targets = np.stack([_smooth_image(rng, 20, 24) for _ in range(3)])
    preds = targets + 0.1 * targets.std() * rng.standard_normal(targets.shape)
    dr = targets.max(axis=(-2, -1))
    ref = np.mean(
        [
            structural_similarity(t, p, data_range=d)
            for t, p, d in zip(targets, preds, dr, strict=True)
        ]
    )
    loss = SSIMLoss()
    for shape in ((3, 20, 24), (3, 1, 20, 24)):
        p = torch.tensor(preds, dtype=torch.float32).reshape(shape)
        t = torch.tensor(targets, dtype=torch.float32).reshape(shape)
        out = loss(p, t, torch.tensor(dr, dtype=torch.float32))
        assert out.dim() == 0
        assert out.item() == pytest.approx(1.0 - ref, abs=SKIMAGE_TOL[torch.float32])


def test_identical_inputs_give_zero_loss():
    rng = np.random.default_rng(5)
    t = torch.tensor(np.stack([_smooth_image(rng, 16, 16) for _ in range(2)]))
    loss = SSIMLoss()(t.clone(), t, t.amax(dim=(-2, -1)))
    assert abs(loss.item()) < 1e-6


def test_gradient_flows():
    rng = np.random.default_rng(7)
    t = torch.tensor(np.stack([_smooth_image(rng, 12, 15) for _ in range(2)]), dtype=torch.float32)
    p = (t + 0.1 * torch.randn_like(t)).requires_grad_(True)
    loss = SSIMLoss()(p, t, t.amax(dim=(-2, -1)))
    loss.backward()
    assert p.grad is not None
    assert torch.isfinite(p.grad).all()
    assert p.grad.abs().sum() > 0


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(1, 9, 10, generator=g, dtype=torch.float64) + 0.1
    p = (t + 0.2 * torch.rand(1, 9, 10, generator=g, dtype=torch.float64)).requires_grad_(True)
    dr = torch.tensor([1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ssim(x, t, dr), (p,))


def test_scalar_data_range_broadcasts():
    t = torch.rand(2, 10, 10, dtype=torch.float64)
    p = t + 0.05
    a = ssim(p, t, 1.0)
    b = ssim(p, t, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(a, b)


def test_input_validation():
    loss = SSIMLoss()
    dr = torch.ones(2)
    with pytest.raises(ValueError, match="smaller than the 7x7"):
        loss(torch.rand(2, 6, 10), torch.rand(2, 6, 10), dr)
    with pytest.raises(ValueError, match="shapes differ"):
        loss(torch.rand(2, 10, 10), torch.rand(2, 10, 11), dr)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        loss(torch.rand(2, 3, 10, 10), torch.rand(2, 3, 10, 10), dr)
    with pytest.raises(ValueError, match="data_range"):
        loss(torch.rand(2, 10, 10), torch.rand(2, 10, 10), torch.ones(3))
