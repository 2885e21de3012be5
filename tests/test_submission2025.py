"""``fmrecon reconstruct`` on CMRxRecon 2025 validation input: the official
submission layout (``Submission/Readme.md``) with ``img4ranking`` as
``run4Ranking_2025.m`` saves it, read back as the official Python tools read
``.mat`` files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from cmrx25_files import line_mask, write_kus
from conftest import random_kspace
from fmrecon.cli import main
from fmrecon.metrics import run4ranking_2025


def official_load(path, key="img4ranking"):
    """As the official data check does (CMRxReconDemo/data_check/cal_data_size.py):
    ``scipy.io.loadmat`` first, an HDF5 (v7.3) reader when that fails."""
    try:
        return scipy.io.loadmat(path)[key]
    except (NotImplementedError, ValueError):
        with h5py.File(path, "r") as f:
            arr = f[key][()]
        return arr.transpose(tuple(range(arr.ndim))[::-1])


def _ifft2c_matlab(k):
    """ifft2c.m of CMRxReconDemo/utils on (sx, sy, ...): centred orthonormal 2-D IFFT."""
    x = np.fft.ifftshift(k, axes=(0, 1))
    x = np.fft.ifft2(x, axes=(0, 1), norm="ortho")
    return np.fft.fftshift(x, axes=(0, 1))


# modality, center, vendor, patient, name, pattern+R, MATLAB shape, k-t mask
CASES = [
    "Cine Center002 UIH_30T_umr880 P004 cine_lax_4ch ktRadial8 36,28,3,1,5 kt",
    "Cine Center002 Siemens_30T_CIMA.X P004 cine_sax Uniform16 33,28,2,5,4 -",
    "Mapping Center001 UIH_30T_umr780 P007 T1map ktGaussian24 32,24,2,3,6 kt",
    "T1rho Center003 GE_15T_x P001 T1rho ktRadial16 32,24,2,2,5 kt",
    "BlackBlood Center001 UIH_30T_umr780 P007 blackblood Uniform8 32,25,2,4 -",
]


def _case(text):
    mod, c, v, p, name, tag, shape, kt = text.split()
    pattern, r = tag.rstrip("0123456789"), int(tag[len(tag.rstrip("0123456789")) :])
    return mod, c, v, p, name, pattern, r, tuple(map(int, shape.split(","))), kt == "kt"


@pytest.fixture
def validation(tmp_path):
    expected = {}
    for i, (mod, c, v, p, name, pattern, r, shape, kt) in enumerate(map(_case, CASES)):
        full = random_kspace(shape, i)
        nt = shape[4] if len(shape) == 5 else None
        mask = line_mask(shape[0], shape[1], nt if kt else None)
        kp, _ = write_kus(tmp_path / "data", "TaskR1", mod, c, v, p, name, pattern, r, full, mask)
        m = mask if mask.ndim == 2 else mask[:, :, None, None, :]
        kus = full * m.reshape(m.shape + (1,) * (full.ndim - m.ndim))
        rel = kp.relative_to(tmp_path / "data")
        expected[rel] = run4ranking_2025(_ifft2c_matlab(kus), kp.name)
    return tmp_path, expected


def test_submission_layout_and_img4ranking(validation, capsys):
    tmp_path, expected = validation
    out = tmp_path / "Submission"
    rc = main(
        [
            "reconstruct",
            "--model",
            "zero-filled",
            "--out",
            str(out),
            str(tmp_path / "data" / "TaskR1"),
        ]
    )
    assert rc == 0
    written = sorted(p.relative_to(out) for p in out.rglob("*.mat"))
    assert written == sorted(expected)  # the input layout from the task folder on
    # P004 of two vendors of Center002: two files, in their own vendor folders
    p004 = [p for p in written if p.parts[-2] == "P004"]
    assert {p.parts[-3] for p in p004} == {"UIH_30T_umr880", "Siemens_30T_CIMA.X"}
    for rel, want in expected.items():
        path = out / rel
        assert rel.parts[:6] == (
            "TaskR1",
            "MultiCoil",
            rel.parts[2],
            "ValidationSet",
            "UnderSample_TaskR1",
            rel.parts[5],
        )
        with open(path, "rb") as fh:  # MATLAB v7 (MAT v5 format), as `save` writes it
            head = fh.read(520)
        assert head.startswith(b"MATLAB 5.0") and head[512:520] != b"\x89HDF\r\n\x1a\n"
        got = official_load(path)
        assert got.dtype == np.float32
        # run4Ranking_2025.m dims: 5-D files (sx/3, sy/2, 2 or fewer slices, frames), the
        # 4-D BlackBlood (sx/3, sy/2, 2); one slice of a 5-D file (sx/3, sy/2, 1, t)
        assert got.shape == want.shape
        # fp32 FFT + RSS against float64 numpy: relative error ~ eps32 x log2(N) ~ 1e-6
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.max()))
    shapes = {rel.name: official_load(out / rel).shape for rel in expected}
    # round(32/3) = 11, MATLAB round(25/2) = round(12.5) = 13 (halves away from zero)
    assert shapes["blackblood_kus_Uniform8.mat"] == (11, 13, 2)
    assert shapes["cine_lax_4ch_kus_ktRadial8.mat"] == (12, 14, 1, 3)
    assert shapes["T1map_kus_ktGaussian24.mat"] == (11, 12, 2, 6)  # every weighting
    assert shapes["cine_sax_kus_Uniform16.mat"] == (11, 14, 2, 3)  # slices 2, 3 of 5
    assert shapes["T1rho_kus_ktRadial16.mat"] == (11, 12, 2, 5)  # T1rho: every frame (2025)
    assert "img4ranking single (sx, sy, sz) = (11, 13, 2)" in capsys.readouterr().out
