"""The classical baselines (``sense``, ``cs-wavelet``: sigpy with ESPIRiT maps):
they beat zero-filled on simulated data, keep the targets' intensity scale,
refuse an ACS region too small for ESPIRiT in one line, and run in
``evaluate`` and ``reconstruct`` without a checkpoint like zero-filled. Also
the simulator's field of view smaller than the object."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from fmrecon.cli import main
from fmrecon.data.simulate import (
    simulate_brain_volume,
    simulate_cardiac_subject,
    simulate_cmrxrecon,
)
from fmrecon.data.simulate.acquisition import fold_fov
from fmrecon.errors import ConfigError
from fmrecon.inference.writers import submission_array
from fmrecon.metrics import psnr, ssim
from fmrecon.models.classical import auto_kernel_width, calib_shift, min_calib_width
from fmrecon.models.registry import create_model, describe, needs_training
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import fft2c, ifft2c
from fmrecon.physics.masks import create_mask

FAST = {"sense": {"max_iter": 10}, "cs-wavelet": {"max_iter": 30}}
SUB = Path("MultiCoil/Cine/TrainingSet")


@pytest.fixture(scope="module")
def cine():
    """One simulated 4-coil 64x48 cine slice (noise 0.02) and its RSS target."""
    sub = simulate_cardiac_subject(0, size=(64, 48), n_slices=1, n_frames=1, n_coils=4)
    k = torch.from_numpy(sub["kspace"]).reshape(1, 4, 64, 48)
    return k, rss(ifft2c(k), dim=1)


def _mask(acc: float, num_acs: int, shape=(64, 48)) -> torch.Tensor:
    return torch.from_numpy(create_mask("cmrxrecon-uniform", acc, num_acs=num_acs)(shape))[
        None, None
    ].bool()


def _scores(target, out) -> tuple[float, float]:
    t, o = target[0].numpy(), out[0].numpy()
    return ssim(t, o, float(t.max())), psnr(t, o, float(t.max()))


@pytest.mark.parametrize("name", ["sense", "cs-wavelet"])
@pytest.mark.parametrize("acc", [4, 8])
def test_beats_zero_filled_on_a_simulated_slice(name, acc, cine):
    k, target = cine
    mask = _mask(acc, 12)
    zf = _scores(target, create_model("zero-filled")(k * mask, mask))
    out = create_model(name, **FAST[name])(k * mask, mask)
    assert out.shape == (1, 64, 48) and out.dtype == torch.float32
    got = _scores(target, out)
    assert got[0] > zf[0] + 0.03 and got[1] > zf[1] + 2.0, f"{name} x{acc}: {got} vs {zf}"


@pytest.mark.parametrize("name", ["sense", "cs-wavelet"])
def test_output_keeps_the_target_scale_whatever_the_units(name, cine):
    """k-space normalised inside, lamda relative: 1e6 x the k-space gives 1e6 x
    the image, which has the RSS target's intensity."""
    k, target = cine
    mask = _mask(4, 12)
    model = create_model(name, **FAST[name])
    a = model(k * mask, mask)
    b = model(k * mask * 1e6, mask)
    torch.testing.assert_close(b / 1e6, a, rtol=1e-3, atol=1e-3 * float(a.max()))
    ratio = float(a.norm() / target.norm())
    assert 0.97 < ratio < 1.03


def test_noise_free_sense_is_the_rss_image():
    """ESPIRiT maps (cropped at eigenvalue 0.95; threshold 0.02 for noise-free
    data) equal to the true ones up to a phase and unit norm: unregularised
    SENSE of noise-free data at x4 gives the RSS target to within 4% of its
    peak everywhere, PSNR > 45 dB (zero-filled 25.6 dB): the output has the
    targets' intensity scale."""
    sub = simulate_cardiac_subject(1, size=(64, 48), n_slices=1, n_frames=1, n_coils=4, noise=0)
    k = torch.from_numpy(sub["kspace"]).reshape(1, 4, 64, 48)
    target = rss(ifft2c(k), dim=1)
    mask = _mask(4, 16)
    out = create_model("sense", lamda=0.0, max_iter=100, thresh=0.02)(k * mask, mask)
    assert float((out - target).abs().max()) < 0.04 * float(target.max())
    assert _scores(target, out)[1] > 45.0


def test_calibration_summary_per_item(cine):
    """One entry per item of the last call: one set of maps, the median of the
    largest calibration eigenvalue over the object (about 1 where the maps
    explain the data) and the fraction of the object whose maps are kept; an
    all-zero item has no calibration (maps 0)."""
    k, _ = cine
    mask = _mask(4, 12)
    model = create_model("sense", **FAST["sense"])
    model(torch.cat([k * mask, torch.zeros_like(k)]), mask.expand(2, -1, -1, -1))
    first, empty = model.diagnostics
    assert first["maps"] == 1 and 0.95 < first["espirit_eig_median"] <= 1.0 + 1e-3
    assert first["espirit_eig2_median"] < first["espirit_eig_median"]
    assert 0.5 < first["espirit_kept"] <= 1.0
    assert empty == {"maps": 0}
    # with crop just below 1 the kept fraction falls: it counts eigenvalues above crop
    strict = create_model("sense", crop=0.999, **FAST["sense"])
    strict(k * mask, mask)
    assert strict.diagnostics[0]["espirit_kept"] < first["espirit_kept"]


def test_too_small_acs_is_one_line_naming_the_lines_needed(cine):
    k, _ = cine
    mask = _mask(4, 4)
    for name in ("sense", "cs-wavelet"):
        with pytest.raises(ConfigError, match=r"ACS\) is 4 lines; ESPIRiT .* 2 needs at least 6"):
            create_model(name)(k * mask, mask)
    with pytest.raises(ConfigError, match=r"is 12 lines; ESPIRiT with kernel width 6 needs .* 18"):
        create_model("sense", kernel_width=6)(k * _mask(4, 12), _mask(4, 12))
    for cw in range(6, 40):
        assert cw >= min_calib_width(auto_kernel_width(cw))


def test_an_off_centre_acs_block_is_calibrated_whole(cine):
    """sigpy's resize crops the calibration block at the array centre; the
    k-space is rolled so that an odd or off-centre block is used whole, which
    leaves the maps as they are (ESPIRiT normalises the phase to the first
    coil). The block is the fully sampled region per axis: 32 of the 64
    readout rows (``max_calib_width``) by the 12 ACS lines, kernel 6 x 4."""
    assert calib_shift(slice(21, 27), 48, 6) == 0  # sigpy's crop starts at 24 - 3
    assert calib_shift(slice(20, 26), 48, 6) == 1
    assert calib_shift(slice(11, 17), 27, 6) == -1  # odd W: crop starts at 13 - 3 = 10
    k, target = cine
    centred = _mask(4, 12)
    shifted = torch.roll(centred, 1, dims=-1)  # ACS 19..30 instead of 18..29 (centre 24)
    model = create_model("sense", **FAST["sense"])
    assert model.calibration(shifted) == ((32, 12), (6, 4), (0, -1))
    a = _scores(target, model(k * centred, centred))
    b = _scores(target, model(k * shifted, shifted))
    assert b[1] == pytest.approx(a[1], abs=0.5)


def test_registered_without_parameters():
    for name in ("sense", "cs-wavelet"):
        d = describe(name)  # built on the meta device
        assert d["trainable_params"] == d["total_params"] == 0 and d["encoder"] is None
        assert d["paper_trainable_params"] is None and not needs_training(name)
    assert needs_training("unet") and not needs_training("zero-filled")
    with pytest.raises(ConfigError, match="bad option wavelet"):
        create_model("sense", wavelet="db4")
    assert create_model("cs-wavelet", wavelet="haar").record.overrides == {"wavelet": "haar"}


def test_fov_fold_is_the_spectrum_sampled_at_the_coarser_line_spacing():
    """Folding W_obj columns into W is sampling the object's DTFT at k = m / W."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 50)) + 1j * rng.standard_normal((3, 50))
    w = 32
    folded = fold_fov(x, w)
    pos = np.arange(50) - 50 // 2
    m = np.arange(w) - w // 2
    dtft = (x[:, None, :] * np.exp(-2j * np.pi * m[:, None] * pos[None] / w)).sum(-1)
    k = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(folded, axes=-1), axis=-1), axes=-1)
    np.testing.assert_allclose(k, dtft, atol=1e-9)
    vol = simulate_brain_volume(0, size=(64, 48), n_slices=1, n_coils=2, fov_fraction=0.6)
    assert vol["kspace"].shape == (1, 2, 64, 28) and vol["target"].shape == (1, 32, 28)
    assert vol["image"].shape == (1, 64, 48)  # the object's grid
    with pytest.raises(ConfigError, match="fov_fraction"):
        simulate_brain_volume(0, size=(64, 48), n_slices=1, n_coils=2, fov_fraction=1.5)


@pytest.fixture(scope="module")
def cine_tree(tmp_path_factory) -> Path:
    """A simulated CMRxRecon tree: one subject, kx=64 ky=48, 2 slices, 2 frames, 4 coils."""
    root = tmp_path_factory.mktemp("cine")
    simulate_cmrxrecon(
        root, 1, size=(64, 48), n_slices=2, n_frames=2, n_coils=4, undersampled=True, lax=False
    )
    return root


def _evaluate(data, out, *args) -> int:
    base = ["evaluate", "--data", str(data), "--out", str(out), "--quiet", "--no-figures"]
    return main([*base, "--accelerations", "4", "--num-acs", "12", *map(str, args)])


def test_evaluate_runs_the_baselines_without_a_checkpoint(cine_tree, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["--convention", "full-volume", "--model", "zero-filled", "sense", "cs-wavelet"]
    assert _evaluate(cine_tree, out, *args) == 0
    rows = {s["model"]: s for s in json.loads((out / "summary.json").read_text())}
    assert list(rows) == ["zero-filled", "sense", "cs-wavelet"]
    assert {s["weights"] for s in rows.values()} == {"none"}
    for name in ("sense", "cs-wavelet"):
        assert rows[name]["ssim"] > rows["zero-filled"]["ssim"]
        assert rows[name]["psnr"] > rows["zero-filled"]["psnr"]
    assert "sense = no training (none)" in (out / "summary.md").read_text()
    # per file: the maps used and the calibration's eigenvalue summary (classical rows only)
    with open(out / "metrics.csv", newline="") as f:
        per_file = list(csv.DictReader(f))
    assert {r["model"] for r in per_file} == set(rows)
    for r in per_file:
        if r["model"] == "zero-filled":
            assert r["maps"] == r["espirit_eig_median"] == r["espirit_kept"] == ""
            assert r["espirit_eig2_median"] == r["espirit_eig2_kept"] == ""
        else:
            assert float(r["maps"]) == 1.0  # the simulated heart does not wrap
            assert 0.9 < float(r["espirit_eig_median"]) <= 1.0 + 1e-3
            assert 0.0 < float(r["espirit_kept"]) <= 1.0
            assert float(r["espirit_eig2_median"]) < float(r["espirit_eig_median"])
            assert 0.0 <= float(r["espirit_eig2_kept"]) <= 0.1
    # the same rows from a preset's model list
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": ["zero-filled", "sense"], "convention": "fastmri"}))
    assert _evaluate(cine_tree, tmp_path / "p", "--preset", preset) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert [s["model"] for s in summary] == ["zero-filled", "sense"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "sense", "unet"], "--model unet needs --checkpoint"),
        (["--model", "unet", "e2e-varnet", "--checkpoint", "x.ckpt"], "one trained model name"),
        (["--model", "sense", "sense"], "sense given more than once"),
        (["--model", "sense", "--num-acs", "4"], "needs at least 6"),
    ],
)
def test_evaluate_model_errors_are_one_line(cine_tree, tmp_path, capsys, args, message):
    assert _evaluate(cine_tree, tmp_path / "o", *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_reconstruct_with_sense_is_the_model_on_the_file(cine_tree, tmp_path, capsys):
    src = cine_tree / SUB / "AccFactor04" / "P001" / "cine_sax.mat"
    out = tmp_path / "out"
    assert main(["reconstruct", str(src.parent), "--model", "sense", "--out", str(out)]) == 0
    sub = out / SUB / "AccFactor04" / "P001" / "cine_sax.mat"
    from scipy.io import loadmat

    got = loadmat(sub)["img4ranking"]  # (sx, sy, sz, t), as MATLAB and the scorer read it
    provenance = json.loads(sub.with_name(sub.name + ".json").read_text())
    assert provenance["fmrecon_model"] == "sense"
    with h5py.File(src, "r") as f:
        raw = f["kspace_sub04"][()]
    k = torch.from_numpy(np.swapaxes((raw["real"] + 1j * raw["imag"]).astype(np.complex64), -1, -2))
    k = k.reshape(-1, *k.shape[-3:])  # (t * z, c, kx, ky)
    mask = (k.abs().sum(dim=(1, 2)) > 0)[:, None, None, :].expand(-1, 1, k.shape[-2], -1)
    img = create_model("sense")(k, mask).reshape(2, 2, 64, 48)  # (t, z, kx, ky)
    expected = submission_array(img.numpy())  # ranking subset: both slices and frames
    assert got.shape == expected.shape == (21, 24, 2, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.max())


def test_fold_is_exact_for_the_simulated_brain_k_space():
    """The acquired k-space is the object's coil spectra at the coarser spacing:
    its inverse FFT is the folded coil images (noise-free)."""
    vol = simulate_brain_volume(0, size=(64, 48), n_slices=1, n_coils=2, noise=0, fov_fraction=0.5)
    coil = vol["image"][:, None] * vol["maps"]
    np.testing.assert_allclose(vol["kspace"], fft2c(fold_fov(coil, 24)), atol=1e-6)


PAPER_PRESETS = ["arxiv2026-in-distribution", "arxiv2026-crossdomain", "midl2025"]


@pytest.mark.parametrize("paper", PAPER_PRESETS)
def test_classical_presets_are_the_paper_presets_plus_the_baselines(paper):
    root = Path(__file__).resolve().parents[1] / "configs" / "paper" / "evaluation"
    base = yaml.safe_load((root / f"{paper}.yaml").read_text())
    classical = yaml.safe_load((root / f"{paper}-classical.yaml").read_text())
    assert classical == {**base, "model": ["zero-filled", "sense", "cs-wavelet"]}


def test_set_gives_the_classical_models_their_options(cine_tree, tmp_path, capsys, monkeypatch):
    """`--set lamda=... max_iter=...` reaches the models built by name (each
    option to every such model that takes it), the row label says so, and an
    option no such model takes, or --set with a checkpoint, is one line."""
    import fmrecon.models.registry as registry

    built = []
    real = registry.create_model

    def spy(name, **kw):  # the models the verbs build by name (not those built for them)
        if sys._getframe(1).f_globals["__name__"].startswith("fmrecon.commands"):
            built.append((name, kw))
        return real(name, **kw)

    monkeypatch.setattr(registry, "create_model", spy)
    out = tmp_path / "o"
    args = ["--model", "zero-filled", "sense", "cs-wavelet", "--set", "max_iter=3", "lamda=0.05"]
    assert _evaluate(cine_tree, out, *args) == 0
    assert built == [("sense", {"max_iter": 3, "lamda": 0.05})] + [
        ("cs-wavelet", {"max_iter": 3, "lamda": 0.05})
    ]
    summary = json.loads((out / "summary.json").read_text())
    labels = [
        "zero-filled",
        "sense (max_iter=3, lamda=0.05)",
        "cs-wavelet (max_iter=3, lamda=0.05)",
    ]
    assert [s["model"] for s in summary] == labels
    # a wavelet only cs-wavelet takes; the result differs from the default's
    built.clear()
    assert _evaluate(cine_tree, tmp_path / "w", "--model", "sense", "cs-wavelet",
                     "--set", "wavelet=haar") == 0  # fmt: skip
    assert built == [("sense", {}), ("cs-wavelet", {"wavelet": "haar"})]
    capsys.readouterr()
    for argv, message in (
        (["--model", "sense", "--set", "lamdba=0.1"], "--set lamdba: no model built by name"),
        (["--model", "sense", "--set", "lamda"], "--set lamda: expected OPTION=VALUE"),
    ):
        assert _evaluate(cine_tree, tmp_path / "e", *argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    src = cine_tree / SUB / "AccFactor04" / "P001"
    base = ["reconstruct", str(src), "--out", str(tmp_path / "r")]
    built.clear()
    assert main([*base, "--model", "sense", "--set", "max_iter=2"]) == 0
    assert built == [("sense", {"max_iter": 2})]
    capsys.readouterr()
    assert main([*base, "--checkpoint", "x.ckpt", "--set", "max_iter=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not to a checkpoint's" in err


def test_espirit_equals_sigpy_on_a_square_calibration(cine):
    """fmrecon's ESPIRiT (exact per-pixel eigen-decomposition, any calibration
    block) against sigpy's EspiritCalib (power iteration, centred square) on
    the same 16 x 16 block and kernel: the largest eigenvalue agrees to 1e-4
    (300 power iterations; fp32), and the maps to 1e-4 where the two largest
    eigenvalues are 0.2 apart (power iteration converges there); the second
    set is orthogonal to the first."""
    sp = pytest.importorskip("sigpy")
    mr = pytest.importorskip("sigpy.mri")
    from fmrecon.models.espirit import calibration_svd, espirit, kernels

    k = (k_ := cine[0][0].numpy()) / np.abs(k_).max()
    calib = sp.resize(k, (4, 16, 16))
    maps, eig = espirit(kernels(calibration_svd(calib, (6, 6)), 0.02), (64, 48), 2)
    ref, ref_eig = mr.app.EspiritCalib(
        k,
        calib_width=16,
        thresh=0.02,
        kernel_width=6,
        crop=0.0,
        max_iter=300,
        show_pbar=False,
        output_eigenvalue=True,
    ).run()
    assert np.abs(ref_eig.reshape(64, 48) - eig[0]).max() < 1e-4
    gap = eig[0] - eig[1] > 0.2
    assert gap.mean() > 0.3 and np.abs(ref - maps[0])[:, gap].max() < 1e-4
    assert np.abs((maps[0] * maps[1].conj()).sum(0)).max() < 1e-4


@pytest.mark.parametrize("name", ["sense", "cs-wavelet"])
def test_one_set_of_maps_solves_as_sigpys_app(name, cine):
    """With one set, the several-set SENSE operator and solver are sigpy's
    SenseRecon / L1WaveletRecon on the same maps: same image to fp32 rounding
    over the iterations (1e-4 of its peak)."""
    sp = pytest.importorskip("sigpy")
    mr = pytest.importorskip("sigpy.mri")
    from fmrecon.models.espirit import sense_operator

    k, _ = cine
    mask = _mask(4, 12)
    model = create_model(name, maps=1, **FAST[name])
    m2 = mask[0, 0].float().numpy()
    y = (k[0] * mask[0]).numpy() / float(k.abs().max())
    mps, _ = model.maps(y, *model.calibration(mask[0, 0]), sp.cpu_device)
    ours = model._solve(y * m2**0.5, sense_operator(mps, m2), sp.cpu_device)[0]
    app = mr.app.SenseRecon if name == "sense" else mr.app.L1WaveletRecon
    kw = {"lamda": model.lamda, "weights": m2, "max_iter": model.max_iter, "show_pbar": False}
    if name == "cs-wavelet":
        kw["alpha"] = 1.0
    ref = app(y, mps[0], **kw).run()
    assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()
