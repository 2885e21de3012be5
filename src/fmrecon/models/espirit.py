"""ESPIRiT coil sensitivities (Uecker et al., MRM 2014) from a rectangular
calibration region, with one or more sets of maps, and the SENSE operator of
several sets ("soft-SENSE", the same paper's answer to an object wider than
the field of view), built from sigpy's linear operators.

sigpy's ``EspiritCalib`` calibrates on a centred square and returns one set:
with the fastMRI convention's 13 (x4, centre fraction 0.08 of 168 lines) or 7
(x8, 0.04) ACS lines, the square is 13 x 13 or 7 x 7 k-space samples although
the readout is fully sampled, and its kernels are fitted on 100 or 36 rows.
Here the calibration block is ``(rows, columns)`` of the fully sampled region
(e.g. 32 readout samples x 13 lines: 270 rows of a 6 x 4 kernel), which is
what made the classical baselines hold on an object wider than the field of
view (docs/NOTES.md, "Classical baselines").

The steps follow the paper: the calibration matrix (every kernel-sized block
of the calibration region, coils stacked), its right singular vectors above
``thresh`` x the largest singular value (the kernels), and per pixel the
eigen-decomposition of the C x C matrix ``G(r) = sum_k v_k(r) v_k(r)^H``,
``v_k`` the zero-padded kernel k transformed to the image. Eigenvectors with
eigenvalue near 1 are the maps. ``G`` is computed from the kernels'
autocorrelation (differences of kernel positions, a (2kh - 1) x (2kw - 1)
k-space array per coil pair) with one inverse FFT per coil pair, and
decomposed exactly (``eigh``) rather than by power iteration, which also gives
the second eigenvalue that says where one set of maps is not enough.

Arrays are NumPy or CuPy (sigpy's device), complex64: calibration (C, ch, cw),
maps (S, C, H, W), eigenvalues (S, H, W).
"""

from __future__ import annotations

import math


def _sp():
    import sigpy as sp

    return sp


def calibration_svd(calib, kernel: tuple[int, int]):
    """Singular values (descending) and right singular vectors (N, C, kh, kw)
    of the calibration matrix of a block (C, ch, cw): every kernel-sized block
    of it, coils stacked, one row per position."""
    sp = _sp()
    xp = sp.get_array_module(calib)
    c = calib.shape[0]
    kh, kw = kernel
    blocks = sp.array_to_blocks(calib, [kh, kw], [1, 1])  # (C, nh, nw, kh, kw)
    mat = blocks.reshape(c, -1, kh * kw).transpose(1, 0, 2).reshape(-1, c * kh * kw)
    _, s, vh = xp.linalg.svd(mat, full_matrices=False)
    return s, vh.reshape(len(vh), c, kh, kw)


def kernels(svd, thresh: float):
    """The ESPIRiT kernels (K, C, kh, kw): the right singular vectors whose
    singular value is above ``thresh`` x the largest (:func:`calibration_svd`)."""
    s, vh = svd
    return vh[s > thresh * s.max()]


def gram(kern, shape: tuple[int, int]):
    """Per pixel of an image ``shape`` (H, W), the matrix ``sum_k v_k v_k^H``
    (C, C, H, W) of kernels (K, C, kh, kw), ``v_k`` the inverse FFT of kernel k
    zero-padded to ``shape``, scaled by H W / (kh kw) so that its eigenvalues
    are at most about 1 (sigpy's ``EspiritCalib`` scaling)."""
    sp = _sp()
    xp = sp.get_array_module(kern)
    _, c, kh, kw = kern.shape
    q = xp.einsum(
        "kap,kbq->apbq", kern.reshape(-1, c, kh * kw), kern.reshape(-1, c, kh * kw).conj()
    )
    q = q.reshape(c, kh, kw, c, kh, kw)
    # d[a, b, dh, dw] = sum over kernel positions p - p' = (dh, dw) of q[a, p, b, p']
    d = xp.zeros((c, c, 2 * kh - 1, 2 * kw - 1), dtype=kern.dtype)
    for i in range(kh):
        for j in range(kw):
            d[:, :, kh - 1 - i : 2 * kh - 1 - i, kw - 1 - j : 2 * kw - 1 - j] += q[
                :, :, :, :, i, j
            ].transpose(0, 3, 1, 2)
    h, w = shape
    # sp.resize centres difference 0 at (H // 2, W // 2), the centred FFT's origin
    g = sp.ifft(sp.resize(d, (c, c, h, w)), axes=(-2, -1))
    return g * (math.sqrt(h * w) / (kh * kw))


def espirit(kern, shape: tuple[int, int], sets: int):
    """ESPIRiT maps and eigenvalues of kernels (K, C, kh, kw) (:func:`kernels`)
    for an image ``shape``: the eigenvectors of the ``sets`` largest eigenvalues per
    pixel, (sets, C, H, W) of unit norm, each set's phase relative to its first
    coil, and the eigenvalues (sets, H, W), largest first (zero beyond the
    coil count). Not cropped."""
    sp = _sp()
    xp = sp.get_array_module(kern)
    g = gram(kern, shape)  # (C, C, H, W)
    # g[a, b] = sum_k v_ka conj(v_kb): row a, column b of a Hermitian matrix
    vals, vecs = xp.linalg.eigh(g.transpose(2, 3, 0, 1))  # ascending, (H, W, C), (H, W, C, C)
    vals = vals[..., ::-1][..., :sets].transpose(2, 0, 1)
    maps = vecs[..., ::-1][..., :sets].transpose(3, 2, 0, 1)
    if len(vals) < sets:  # fewer coils than sets: the missing ones are zero
        vals = xp.concatenate([vals, xp.zeros((sets - len(vals), *shape), vals.dtype)])
        maps = xp.concatenate([maps, xp.zeros((sets - len(maps), *maps.shape[1:]), maps.dtype)])
    first = maps[:, :1]
    mag = xp.abs(first)
    phase = xp.where(mag > 0, first / xp.where(mag > 0, mag, 1), 1)
    maps = maps * phase.conj()
    return maps.astype(kern.dtype), vals.real.astype(xp.float32)


def sense_operator(maps, weights):
    """The SENSE forward operator of several sets of maps (S, C, H, W): an image
    (S, H, W), one component per set, to the ``weights``-weighted k-space
    (C, H, W) of ``sum_s maps_s * x_s`` (centred orthonormal FFT). With one
    set, sigpy's ``mri.linop.Sense(maps[0], weights=weights)``. Its norm is at
    most 1 for maps whose sets are orthonormal per pixel (ESPIRiT's are)."""
    sp = _sp()
    s, c, h, w = maps.shape
    expand = sp.linop.Multiply((s, h, w), maps.swapaxes(0, 1))  # (C, S, H, W)
    combine = sp.linop.Sum(expand.oshape, axes=(1,))
    fourier = sp.linop.FFT((c, h, w), axes=(-2, -1))
    with sp.get_device(weights):
        sampling = sp.linop.Multiply(fourier.oshape, weights**0.5)
    return sampling * fourier * combine * expand
