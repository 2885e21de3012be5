"""FFT and SENSE operator physics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmrecon.physics import (
    acs_region,
    extract_acs,
    fft2c,
    ifft2c,
    num_low_frequencies,
    rss,
    sens_expand,
    sens_reduce,
)


def _crandn(*shape, seed=0, dtype=torch.complex128):
    g = torch.Generator().manual_seed(seed)
    re = torch.randn(*shape, generator=g, dtype=torch.float64)
    im = torch.randn(*shape, generator=g, dtype=torch.float64)
    return torch.complex(re, im).to(dtype)


@pytest.mark.parametrize("shape", [(8, 8), (2, 3, 7, 10), (1, 4, 5, 3, 6)])
def test_round_trip_any_leading_shape(shape):
    x = _crandn(*shape)
    torch.testing.assert_close(ifft2c(fft2c(x)), x)
    torch.testing.assert_close(fft2c(ifft2c(x)), x)


def test_parseval_orthonormal():
    x = _crandn(3, 9, 12)
    assert torch.allclose((fft2c(x).abs() ** 2).sum(), (x.abs() ** 2).sum())


@pytest.mark.parametrize("h,w", [(8, 8), (7, 10), (9, 5)])
def test_matches_numpy_reference_formula(h, w):
    x = _crandn(2, h, w, seed=1)
    xn = x.numpy()
    ref = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(xn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    np.testing.assert_allclose(fft2c(x).numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(fft2c(xn), ref, atol=1e-12)  # the NumPy path too
    ref_inv = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(xn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    np.testing.assert_allclose(ifft2c(x).numpy(), ref_inv, atol=1e-12)


def test_dc_at_centre_index():
    # a constant image has all its energy at index (H//2, W//2)
    for h, w in [(6, 8), (7, 9)]:
        k = fft2c(torch.ones(h, w, dtype=torch.complex128))
        idx = np.unravel_index(k.abs().argmax().item(), (h, w))
        assert idx == (h // 2, w // 2)
        assert abs(k[h // 2, w // 2].item()) == pytest.approx(np.sqrt(h * w))


def test_sense_adjointness():
    # <E x, y> = <x, E^H y> with E = F S (and the mask M: <M E x, y> = <x, E^H M y>)
    c, h, w = 4, 10, 12
    x = _crandn(2, h, w, seed=2)
    y = _crandn(2, c, h, w, seed=3)
    sens = _crandn(2, c, h, w, seed=4)
    mask = torch.rand(1, 1, w, generator=torch.Generator().manual_seed(5)) > 0.5
    lhs = torch.vdot(sens_expand(x, sens).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), sens_reduce(y, sens).flatten())
    torch.testing.assert_close(lhs, rhs)
    lhs_m = torch.vdot((sens_expand(x, sens) * mask).flatten(), y.flatten())
    rhs_m = torch.vdot(x.flatten(), sens_reduce(y * mask, sens).flatten())
    torch.testing.assert_close(lhs_m, rhs_m)


def test_real_view_arithmetic_equals_complex_kernels(monkeypatch):
    """The SENSE operators' two paths (physics.coils.native_complex): complex kernels
    (eager) and real-view arithmetic (under torch.compile) give the same values,
    with the conjugate on the maps in both."""
    import fmrecon.physics.coils as coils

    c, h, w = 4, 10, 12
    x, y, sens = _crandn(2, h, w, seed=2), _crandn(2, c, h, w, seed=3), _crandn(2, c, h, w, seed=4)
    want = [
        fft2c(x[:, None] * sens),
        (ifft2c(y) * sens.conj()).sum(dim=1),
        y * sens.conj(),
    ]
    for native in (True, False):
        monkeypatch.setattr(coils, "native_complex", lambda n=native: n)
        got = [sens_expand(x, sens), sens_reduce(y, sens), coils.complex_mul(y, sens, conj_b=True)]
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)  # complex128: rounding


@pytest.mark.parametrize("h,w", [(8, 8), (6, 4), (218, 180), (10, 12)])
def test_shift_signs_make_the_centred_fft_shift_free(h, w):
    """fft2c(x) = s_k fft2(s_n x), ifft2c(k) = s_n ifft2(s_k k) for even sizes (the
    sign of s_k flips with H/2 + W/2: 6x4 and 218x180 odd, 8x8 and 10x12 even), and
    the SENSE operators in that frame equal the centred ones."""
    from fmrecon.physics.fft import fft2, ifft2, shift_signs

    s_n, s_k = shift_signs(h, w)
    x, sens = _crandn(2, h, w, seed=11), _crandn(2, 3, h, w, seed=12)
    torch.testing.assert_close(s_k * fft2(s_n * x), fft2c(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s_n * ifft2(s_k * x), ifft2c(x), rtol=1e-12, atol=1e-12)
    k = sens_expand(x, sens)
    torch.testing.assert_close(sens_expand(x, s_n * sens, centred=False), s_k * k)
    reduced = sens_reduce(s_k * k, s_n * sens, centred=False)
    torch.testing.assert_close(reduced, sens_reduce(k, sens))


@pytest.mark.parametrize("h,w", [(7, 8), (8, 5), (9, 9)])
def test_shift_signs_none_for_odd_sizes(h, w):
    from fmrecon.physics.fft import shift_signs

    assert shift_signs(h, w) is None


def test_reduce_inverts_expand_for_normalised_maps():
    c, h, w = 5, 8, 8
    sens = _crandn(c, h, w, seed=6)
    sens = sens / rss(sens, dim=0)  # sum_c |S_c|^2 = 1
    x = _crandn(h, w, seed=7)
    torch.testing.assert_close(sens_reduce(sens_expand(x, sens), sens), x)


def test_rss_torch_and_numpy():
    x = _crandn(3, 4, 5, seed=8)
    expected = torch.sqrt((x.real**2 + x.imag**2).sum(0))
    torch.testing.assert_close(rss(x, dim=0), expected)
    np.testing.assert_allclose(rss(x.numpy(), dim=0), expected.numpy())
    assert rss(x).shape == (4, 5)


def _line_mask(w, lines, h=6):
    m = np.zeros((h, w), dtype=bool)
    m[:, lines] = True
    return m


def test_num_low_frequencies_and_acs_region_for_line_masks():
    w = 20
    mask = _line_mask(w, [0, 4, 8, 9, 10, 11, 12, 16])  # centre 10, ACS 8..12
    assert num_low_frequencies(mask) == 5
    assert num_low_frequencies(torch.from_numpy(mask)) == 5
    rows, cols = acs_region(mask)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 6, 8, 13)
    assert num_low_frequencies(_line_mask(w, [0, 4, 8])) == 0


def test_acs_region_square_block():
    m = np.zeros((3, 32, 32), dtype=bool)  # k-t style: (T, H, W)
    m[:, 8:24, 8:24] = True  # 16x16 block
    m[0, 2, :] = True  # a spoke in one frame only
    rows, cols = acs_region(m)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (8, 24, 8, 24)


def test_extract_acs_zeroes_outside():
    k = _crandn(2, 6, 20, seed=9)
    mask = _line_mask(20, [9, 10, 11, 15])
    acs = extract_acs(k, mask)
    assert torch.equal(acs[..., 9:12], k[..., 9:12])
    assert acs[..., :9].abs().sum() == 0 and acs[..., 12:].abs().sum() == 0
