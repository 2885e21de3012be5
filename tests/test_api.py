"""The Python API (fmrecon.load_model / create_model / reconstruct): the README's
example runs, every registered model gives the same kind and shape back, the
accepted input forms agree, bad input is one line, and an image equals the one
`fmrecon reconstruct` writes for the same slice."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import loadmat

import fmrecon
from fmrecon.cli import main
from fmrecon.data import cmrxrecon
from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.errors import InputError
from fmrecon.models.io import save_model
from fmrecon.models.registry import MODELS
from fmrecon.physics.masks import create_mask
from test_fm_models import tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    """The first python block of the README's "Python API" section."""
    text = README.read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(tmp_path, monkeypatch):
    code = _readme_example()
    assert "fmrecon.reconstruct(" in code and "fmrecon.load_model(" in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    assert isinstance(namespace["image"], np.ndarray) and namespace["image"].dtype == np.float32
    assert isinstance(namespace["images"], torch.Tensor)
    assert (tmp_path / "varnet.ckpt").is_file()


def _slices(b=2, c=3, h=40, w=36, seed=0):
    """(B, C, H, W) complex64 k-space and a (W,) line mask with 8 ACS lines
    (ESPIRiT in sense / cs-wavelet needs 6)."""
    rng = np.random.default_rng(seed)
    k = (rng.standard_normal((b, c, h, w)) + 1j * rng.standard_normal((b, c, h, w))).astype(
        np.complex64
    )
    mask = create_mask("equispaced-fraction", 4, center_fraction=0.22)((h, w))[0]
    return k, mask


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_returns_the_kind_and_batch_shape_it_was_given(name):
    model = tiny_model(name)
    k, mask = _slices()
    one = fmrecon.reconstruct(model, k[0], mask)  # NumPy (C, H, W), mask (W,)
    assert isinstance(one, np.ndarray) and one.dtype == np.float32 and one.shape == (40, 36)
    batch = fmrecon.reconstruct(model, torch.from_numpy(k), torch.from_numpy(mask))
    assert isinstance(batch, torch.Tensor) and batch.dtype == torch.float32
    assert batch.shape == (2, 40, 36) and not batch.requires_grad
    # a slice alone equals the same slice in a batch (batch size 1 vs 2: CPU kernels
    # may sum in another order; fp32 eps 1.2e-7 x ~1e3 accumulation steps -> 1e-4
    # of the image's maximum)
    np.testing.assert_allclose(one, batch[0].numpy(), rtol=0, atol=1e-4 * float(one.max()))
    assert model.training  # create_model's mode, restored after the eval-mode run


def test_input_forms_agree():
    """NumPy and torch, complex and fastMRI's real view, every mask form: the
    same images."""
    model = tiny_model("e2e-varnet")
    k, mask = _slices()
    ref = fmrecon.reconstruct(model, k, mask)
    h, w = k.shape[-2:]
    full = np.broadcast_to(mask, (h, w))
    forms = {
        "(H, W)": full,
        "(1, H, W)": full[None],
        "(1, W) line": mask[None],
        "fastMRI (1, 1, W)": mask[None, None].astype(np.float32),
        "(B, H, W)": np.stack([full, full]),
        "(B, 1, H, W) torch": torch.from_numpy(np.stack([full, full])[:, None].copy()),
    }
    for what, m in forms.items():
        np.testing.assert_array_equal(fmrecon.reconstruct(model, k, m), ref, err_msg=what)
    real = torch.view_as_real(torch.from_numpy(k))  # (B, C, H, W, 2)
    fastmri_mask = torch.from_numpy(mask.astype(np.float32))[None, None, :, None]  # (1,1,W,1)
    out = fmrecon.reconstruct(model, real, fastmri_mask)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), ref)
    one = fmrecon.reconstruct(model, k[1], mask)
    np.testing.assert_array_equal(fmrecon.reconstruct(model, real[1].numpy(), mask), one)
    # the k-space is masked here: unmasked k-space gives the masked result
    unmasked = k + 5 * (~mask)
    np.testing.assert_array_equal(fmrecon.reconstruct(model, unmasked, mask), ref)
    # per-slice masks are used per slice
    other = create_mask("equispaced-fraction", 8, center_fraction=0.1)((h, w))[0]
    per = fmrecon.reconstruct(model, k, np.stack([full, np.broadcast_to(other, (h, w))]))
    np.testing.assert_array_equal(per[0], ref[0])
    swapped = fmrecon.reconstruct(model, k[::-1], np.stack([np.broadcast_to(other, (h, w)), full]))
    np.testing.assert_array_equal(per[1], swapped[0])
    assert not np.allclose(per[1], ref[1], rtol=0.01)


@pytest.mark.parametrize(
    "kspace, mask, expected",
    [
        ("2d", "w", "k-space (40, 36) complex64: expected complex (C, H, W) or (B, C, H, W)"),
        ("real", "w", "k-space (2, 3, 40, 36) float32: expected complex"),
        ("list", "w", "k-space must be a NumPy array or a torch tensor, got list"),
        ("ok", "short", "mask (35,): expected (W,) = (36,), (H, W) = (40, 36) or (1, H, W)"),
        ("ok", "tall", "mask (39, 36): expected (W,) = (36,)"),
        ("ok", "batch3", "per slice (B, H, W) = (2, 40, 36) or (B, 1, H, W)"),
        ("one", "batch2", "mask (2, 40, 36): expected (W,) = (36,), (H, W) = (40, 36)"),
        ("ok", "values", "mask (36,) float64: expected bool or 0/1 values"),
        ("nan", "w", "k-space (2, 3, 40, 36): holds non-finite values"),
    ],
)
def test_bad_input_is_one_line_naming_the_expected_shapes(kspace, mask, expected):
    model = fmrecon.create_model("zero-filled")
    k, m = _slices()
    ks = {
        "ok": k,
        "one": k[0],
        "2d": k[0, 0],
        "real": k.real,
        "list": k.tolist(),
        "nan": np.where(np.arange(36) == 3, np.nan, k).astype(np.complex64),
    }[kspace]
    ms = {
        "w": m,
        "short": m[:-1],
        "tall": np.ones((39, 36), bool),
        "batch3": np.ones((3, 40, 36), bool),
        "batch2": np.ones((2, 40, 36), bool),
        "values": m * 0.5,
    }[mask]
    with pytest.raises(InputError) as err:
        fmrecon.reconstruct(model, ks, ms)
    msg = str(err.value)
    assert expected in msg and "\n" not in msg, msg
    assert isinstance(err.value, ValueError)  # catchable as Python's own kind


def test_api_image_equals_the_cli_reconstruction(tmp_path):
    """`fmrecon reconstruct --full-volume` of an undersampled CMRxRecon file and
    fmrecon.reconstruct of its slices with its mask file: the same images, for
    a learned model and a foundation-model one (bit-equal: the same engine, the
    same batches of 4 in the same (frame, slice) order)."""
    simulate_cmrxrecon(
        tmp_path / "data", 1, size=(48, 40), n_slices=2, n_frames=3, n_coils=3, lax=False,
        undersampled=True,
    )  # fmt: skip
    src = next((tmp_path / "data").rglob("AccFactor04/P001/cine_sax.mat"))
    k = cmrxrecon_kspace(src)  # (T, Z, C, H, W)
    mask = cmrxrecon.read_mask(cmrxrecon.undersampled_mask_path(src))  # (H, W)
    for name in ("e2e-varnet", "fm-varnet-clip"):
        model = tiny_model(name)
        ckpt = save_model(model, tmp_path / f"{name}.ckpt")
        out = tmp_path / f"out-{name}"
        argv = ["reconstruct", str(src), "--checkpoint", str(ckpt), "--out", str(out)]
        assert main([*argv, "--full-volume", "--quiet"]) == 0
        written = next(out.rglob("cine_sax.mat"))
        cli = loadmat(written)["img4ranking"]  # (sx, sy, sz, t)
        t, z = k.shape[:2]
        api = fmrecon.reconstruct(fmrecon.load_model(ckpt), k.reshape(t * z, *k.shape[2:]), mask)
        api = api.reshape(t, z, *api.shape[-2:]).transpose(2, 3, 1, 0)
        np.testing.assert_array_equal(cli, api, err_msg=name)


def cmrxrecon_kspace(path: Path) -> np.ndarray:
    """A CMRxRecon file's k-space as (t, z, coil, kx, ky) complex64, through the reader."""
    from fmrecon.data.formats import inspect_file, reader

    info = inspect_file(path)
    fmt = reader(info)
    with fmt.open(path) as f:
        return np.stack(
            [
                np.stack([fmt.read_kspace(f, info, t, zz) for zz in range(info.n_slices)])
                for t in range(info.n_frames)
            ]
        )
