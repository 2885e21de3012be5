"""Readers, the slice dataset and subject-level splits on real-format files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import oracles
from conftest import random_kspace, write_cmrx, write_fastmri
from fmrecon.data import cmrxrecon, h5io
from fmrecon.data import split as splits
from fmrecon.data.formats import discover, inspect_file
from fmrecon.data.h5io import write_mat73
from fmrecon.data.slices import SliceDataset, collate, fastmri_seed
from fmrecon.data.types import NotKspaceFile
from fmrecon.errors import ConfigError, DataError
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c
from fmrecon.physics.masks import create_mask


def test_mat73_layout_seen_by_h5py(tmp_path):
    k = random_kspace((24, 40, 3, 2, 4))  # MATLAB (kx, ky, coil, slice, time)
    path = write_cmrx(tmp_path / "cine_sax.mat", k)
    with open(path, "rb") as fh:
        assert fh.read(19) == b"MATLAB 7.3 MAT-file"
    with h5py.File(path, "r") as f:
        ds = f["kspace_full"]
        assert ds.shape == (4, 2, 3, 40, 24)  # reversed: (t, slice, coil, ky, kx)
        assert ds.dtype.names == ("real", "imag")
        assert ds.attrs["MATLAB_class"] == b"single"
        np.testing.assert_array_equal(ds[1, 0, 2]["real"], k[:, :, 2, 0, 1].real.T)


def test_cmrxrecon_reader_reads_one_slice_in_package_order(tmp_path):
    k = random_kspace((24, 40, 3, 2, 4))
    path = write_cmrx(tmp_path / "FullSample" / "P007" / "cine_sax.mat", k)
    info = inspect_file(path)
    assert (info.n_frames, info.n_slices, info.n_coils, info.shape) == (4, 2, 3, (24, 40))
    assert (info.subject, info.modality, info.format, info.fully_sampled) == (
        "P007",
        "cine_sax",
        "cmrxrecon",
        True,
    )
    with h5py.File(path, "r") as f:
        sl = cmrxrecon.read_kspace(f, info, frame=3, slc=1)
    assert sl.shape == (3, 24, 40) and sl.dtype == np.complex64  # (coil, kx, ky)
    np.testing.assert_array_equal(sl, k[:, :, :, 1, 3].transpose(2, 0, 1))


@pytest.mark.parametrize(
    "shape,expect",
    [((24, 40, 3, 2), (1, 2)), ((24, 40, 3), (1, 1))],  # MATLAB drops trailing singleton axes
)
def test_cmrxrecon_reader_accepts_dropped_singleton_axes(tmp_path, shape, expect):
    path = write_cmrx(tmp_path / "P001" / "T2map.mat", random_kspace(shape))
    info = inspect_file(path)
    assert (info.n_frames, info.n_slices) == expect
    with h5py.File(path, "r") as f:
        assert cmrxrecon.read_kspace(f, info, 0, expect[1] - 1).shape == (3, 24, 40)


def test_cmrxrecon_mask_files_2023_and_2024(tmp_path):
    m = np.zeros((24, 40))
    m[:, ::4] = 1
    write_mat73(tmp_path / "cine_sax_mask.mat", {"mask04": m})
    got = cmrxrecon.read_mask(tmp_path / "cine_sax_mask.mat")
    assert got.dtype == bool and got.shape == (24, 40)
    np.testing.assert_array_equal(got, m.astype(bool))
    kt = np.zeros((24, 40, 5))  # Task 2 k-t mask (nx, ny, nt)
    kt[:, 3, 2] = 1
    write_mat73(tmp_path / "cine_sax_mask_ktUniform8.mat", {"mask": kt})
    got = cmrxrecon.read_mask(tmp_path / "cine_sax_mask_ktUniform8.mat")
    assert got.shape == (5, 24, 40) and got[2, :, 3].all() and got.sum() == 24


def test_official_mask_path_both_layouts(tmp_path):
    full = tmp_path / "Cine/TrainingSet/FullSample/P001/cine_sax.mat"
    m23 = tmp_path / "Cine/TrainingSet/AccFactor08/P001/cine_sax_mask.mat"
    m24 = tmp_path / "Cine/TrainingSet/Mask_Task2/P001/cine_sax_mask_ktRadial8.mat"
    for p in (m23, m24):
        p.parent.mkdir(parents=True)
        p.touch()
    assert cmrxrecon.official_mask_path(full, 8) == m23
    assert cmrxrecon.official_mask_path(full, 8, "ktRadial") == m24
    with pytest.raises(DataError, match="no official mask for R=4"):
        cmrxrecon.official_mask_path(full, 4)


def test_fastmri_reader_and_fastmri_padding(tmp_path):
    k = random_kspace((3, 4, 32, 16))
    path = write_fastmri(tmp_path / "file_brain_AXT1_001.h5", k, crop=(16, 16), patient_id="pA")
    info = inspect_file(path)
    assert (info.format, info.n_slices, info.n_coils, info.shape) == ("fastmri", 3, 4, (32, 16))
    assert (info.subject, info.modality, info.target_key) == ("pA", "AXT1", "reconstruction_rss")
    assert info.acq_limits == (0, 16)
    with h5py.File(path, "a") as f:  # an encoded range narrower than W: lines 2..13
        del f["ismrmrd_header"]
        from conftest import HEADER

        f["ismrmrd_header"] = HEADER.format(h=32, w=16, rh=16, rw=16, maximum=11, center=6).encode()
    info = inspect_file(path)
    assert info.acq_limits == (2, 14)
    ds = SliceDataset([info], create_mask("equispaced", 2, center_fraction=0.25))
    mask = ds[0].mask[0, 0].numpy()
    assert not mask[:2].any() and not mask[14:].any() and mask[2:14].any()


def test_discover_skips_masks_and_other_files(cmrx_tree):
    (cmrx_tree / "notes.mat").write_bytes(b"")  # not HDF5 at all -> error, not silent
    with pytest.raises(DataError, match="notes.mat: not an HDF5 file"):
        discover(cmrx_tree)
    (cmrx_tree / "notes.mat").unlink()
    write_mat73(cmrx_tree / "other.mat", {"something": np.zeros(3)})
    infos, skipped = discover(cmrx_tree)
    assert len(infos) == 5  # 3 cine + T1map + undersampled cine
    assert {p.name for p in skipped} == {"cine_sax_mask.mat", "other.mat"}
    sub = [i for i in infos if not i.fully_sampled]
    assert len(sub) == 1 and sub[0].acceleration == 4 and sub[0].key == "kspace_sub04"
    with pytest.raises(NotKspaceFile, match="a mask file"):
        inspect_file(skipped[0] if skipped[0].name.endswith("mask.mat") else skipped[1])


def test_slice_dataset_items_targets_and_masks(cmrx_tree):
    infos, _ = discover(cmrx_tree)
    full = [i for i in infos if i.fully_sampled and i.modality == "cine_sax"]
    ds = SliceDataset(full, create_mask("cmrxrecon-uniform", 4))
    assert len(ds) == 3 * 2 * 4
    s = ds[5]  # file 0, frame 2, slice 1
    assert (s.frame, s.slice, s.subject, s.modality) == (2, 1, "P001", "cine_sax")
    assert s.kspace.shape == (3, 24, 40) and s.kspace.dtype == torch.complex64
    assert s.mask.shape == (1, 24, 40) and s.mask.dtype == torch.bool
    k = random_kspace((24, 40, 3, 2, 4), 0)[:, :, :, 1, 2].transpose(2, 0, 1)
    np.testing.assert_allclose(s.target.numpy(), rss(ifft2c(k)), rtol=1e-5)
    np.testing.assert_array_equal(s.kspace.numpy(), k * s.mask.numpy())
    assert s.max_value.item() == pytest.approx(s.target.max().item())
    assert s.num_low_frequencies.item() == 25  # ACS 8..31 plus the uniform line 32
    batch = collate([ds[0], ds[1]])
    assert batch.kspace.shape == (2, 3, 24, 40) and batch.fname == ["cine_sax.mat"] * 2


def test_slice_dataset_reads_only_one_slice(cmrx_tree, monkeypatch):
    infos, _ = discover(cmrx_tree)
    seen = []
    real = h5io.read_complex

    def spy(ds, index=()):
        seen.append(index)
        return real(ds, index)

    monkeypatch.setattr(cmrxrecon, "read_complex", spy)
    ds = SliceDataset([i for i in infos if i.fully_sampled], create_mask("cmrxrecon-uniform", 8))
    # items of a file in (frame, slice) order: item 5 of P001 (4 frames x 2 slices) is
    # frame 2, slice 1; h5py sees (t, slice, coil, ky, kx), so the read is [2, 1]
    s = ds[5]
    assert seen == [(2, 1)]
    assert (s.subject, s.frame, s.slice) == ("P001", 2, 1)
    k = random_kspace((24, 40, 3, 2, 4), 0)[:, :, :, 1, 2].transpose(2, 0, 1)  # P001's data
    rss_numpy = oracles.np_zero_filled(k, np.ones(40, dtype=bool), coil_axis=0)
    np.testing.assert_allclose(s.target.numpy(), rss_numpy, rtol=1e-5)


def test_undersampled_files_use_their_mask_file(cmrx_tree):
    infos, _ = discover(cmrx_tree)
    sub = [i for i in infos if not i.fully_sampled]
    s = SliceDataset(sub)[0]
    assert s.target.numel() == 0 and s.acceleration == 4
    assert s.mask[0, 0, ::4].all() and s.mask.sum() == 24 * 10


def test_fastmri_file_seed_gives_same_mask_per_file(tmp_path):
    p1 = write_fastmri(tmp_path / "file1000001.h5", random_kspace((2, 2, 16, 64)))
    p2 = write_fastmri(tmp_path / "file1000002.h5", random_kspace((2, 2, 16, 64), 1))
    mf = create_mask("random", 4, center_fraction=0.08)
    ds = SliceDataset([inspect_file(p1), inspect_file(p2)], mf)
    m0, m1, m2 = ds[0].mask, ds[1].mask, ds[2].mask
    assert torch.equal(m0, m1)  # same file, same mask on every slice
    assert not torch.equal(m0, m2)
    # fastMRI's own RandomMaskFunc with its per-file seed tuple(map(ord, fname))
    assert fastmri_seed("file1000001.h5") == tuple(map(ord, "file1000001.h5"))
    lines = oracles.fastmri_lines("random", 4, 0.08, 64, tuple(map(ord, "file1000001.h5")), 16)
    np.testing.assert_array_equal(m0[0].numpy(), np.broadcast_to(lines, (16, 64)))
    assert ds[0].max_value.item() == pytest.approx(h5py.File(p1)["reconstruction_rss"][()].max())


def test_random_mask_seed_draws_new_masks(tmp_path):
    p = write_fastmri(tmp_path / "f.h5", random_kspace((1, 2, 16, 64)))
    ds = SliceDataset([inspect_file(p)], create_mask("random", 4, center_fraction=0.08), "random")
    assert not all(torch.equal(ds[0].mask, ds[0].mask) for _ in range(5))


def test_bad_inputs_give_one_line_errors(tmp_path):
    def error(call, match: str, path) -> None:
        """``call()`` raises a DataError matching ``match``, one line naming ``path``."""
        with pytest.raises(DataError, match=match) as err:
            call()
        assert "\n" not in str(err.value) and str(path) in str(err.value), str(err.value)

    error(lambda: inspect_file(tmp_path / "nope.mat"), "file not found", tmp_path / "nope.mat")
    good = write_cmrx(tmp_path / "a" / "cine_sax.mat", random_kspace((24, 40, 3, 2, 4)))
    trunc = tmp_path / "b" / "cine_sax.mat"
    trunc.parent.mkdir()
    trunc.write_bytes(good.read_bytes()[:3000])
    error(lambda: inspect_file(trunc), "truncated or corrupt HDF5", trunc)
    write_mat73(tmp_path / "c.mat", {"kspace_ful": random_kspace((24, 40, 3))})
    error(lambda: inspect_file(tmp_path / "c.mat"), "missing key 'kspace_full'", tmp_path / "c.mat")
    write_mat73(tmp_path / "d.mat", {"kspace_full": random_kspace((24, 40))})
    error(lambda: inspect_file(tmp_path / "d.mat"), "2 dimensions", tmp_path / "d.mat")
    write_mat73(tmp_path / "e.mat", {"kspace_full": np.ones((24, 40, 3))})
    error(lambda: inspect_file(tmp_path / "e.mat"), "expected complex", tmp_path / "e.mat")
    k = random_kspace((24, 40, 3, 1, 1))
    k[3, 4, 0] = np.nan
    nan = write_cmrx(tmp_path / "f" / "cine_sax.mat", k)
    ds = SliceDataset([inspect_file(nan)], create_mask("cmrxrecon-uniform", 4))
    error(lambda: ds[0], "non-finite", nan)
    (tmp_path / "g.txt").write_text("x")
    error(lambda: inspect_file(tmp_path / "g.txt"), "unsupported file type", tmp_path / "g.txt")


def test_split_is_reproducible_subject_level_and_shared(tmp_path, cmrx_tree):
    subjects = [f"P{i:03d}" for i in range(1, 101)]
    a = splits.make_split(subjects, seed=3)
    b = splits.make_split(reversed(subjects), seed=3)
    assert a == b
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (70, 10, 20)
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(subjects)
    assert splits.make_split(subjects, seed=4) != a
    path = tmp_path / "split.json"
    splits.save_split(path, a)
    assert splits.load_split(path) == a
    infos, _ = discover(cmrx_tree)
    s = splits.load_or_create_split(tmp_path / "s2.json", infos, seed=0)
    assert json.loads((tmp_path / "s2.json").read_text()) == s
    # every file of a subject is in the same part
    for name in splits.SPLIT_NAMES:
        chosen = splits.select(infos, s, name) if s[name] else []
        assert {v.subject for v in chosen} <= set(s[name])
    small = splits.make_split(["A", "B", "C"], seed=0)
    assert all(len(small[n]) == 1 for n in splits.SPLIT_NAMES)


def _multi_file_tree(root):
    """A CMRxRecon tree of 8 subjects, each with several files and modalities:
    cine SAX (full and x4), cine LAX, T1 and T2 maps (odd subjects only)."""
    files: dict[str, set] = {}
    for i in range(1, 9):
        subj = f"P{i:03d}"
        cine = root / "MultiCoil" / "Cine" / "TrainingSet"
        maps = root / "MultiCoil" / "Mapping" / "TrainingSet" / "FullSample" / subj
        names = [
            (cine / "FullSample" / subj / "cine_sax.mat", "kspace_full"),
            (cine / "FullSample" / subj / "cine_lax.mat", "kspace_full"),
            (cine / "AccFactor04" / subj / "cine_sax.mat", "kspace_sub04"),
        ]
        if i % 2:
            names += [(maps / "T1map.mat", "kspace_full"), (maps / "T2map.mat", "kspace_full")]
        for j, (path, key) in enumerate(names):
            write_cmrx(path, random_kspace((12, 16, 2, 1, 2), 10 * i + j), key)
        files[subj] = {p for p, _ in names}
    return files


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_never_puts_a_subject_in_two_parts(tmp_path, seed):
    """Subject-level split of a tree where every subject has several files and
    modalities: each subject is listed in exactly one part, the split read back
    is the one made, and every file lands in exactly one part, together with
    all the other files of its subject."""
    files = _multi_file_tree(tmp_path / "data")
    infos, _ = discover(tmp_path / "data")
    assert {v.path for v in infos} == set().union(*files.values())
    assert {v.subject for v in infos} == set(files)
    assert {v.modality for v in infos if v.subject == "P001"} == {
        "cine_sax",
        "cine_lax",
        "T1map",
        "T2map",
    }
    path = tmp_path / "split.json"
    s = splits.load_or_create_split(path, infos, seed=seed)
    listed = [subj for name in splits.SPLIT_NAMES for subj in s[name]]
    assert sorted(listed) == sorted(files)  # every subject once, in one part only
    assert splits.load_split(path) == s
    part_of = {}
    for name in splits.SPLIT_NAMES:
        if not s[name]:
            continue
        for v in splits.select(infos, s, name):
            assert v.path not in part_of, f"{v.path} selected by two parts"
            part_of[v.path] = name
    assert set(part_of) == {v.path for v in infos}
    for subj, paths in files.items():
        parts = {part_of[p] for p in paths}
        assert parts == {next(n for n in splits.SPLIT_NAMES if subj in s[n])}, subj


def test_split_errors(tmp_path):
    with pytest.raises(ConfigError, match="summing to 1"):
        splits.make_split(["a"], fractions=(0.5, 0.5, 0.5))
    bad = tmp_path / "s.json"
    bad.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        splits.load_split(bad)
    bad.write_text(json.dumps({"train": ["a"], "val": ["a"], "test": []}))
    with pytest.raises(DataError, match="both 'train' and 'val'"):
        splits.load_split(bad)
    bad.write_text(json.dumps({"train": []}))
    with pytest.raises(DataError, match="lacks"):
        splits.load_split(bad)


def _coil_kspace(shape, seed=0):
    """(C, H, W) k-space of random coil images."""
    return random_kspace(shape, seed)


def test_kspace_resize_crop_gives_the_centre_block_of_the_coil_images():
    from fmrecon.data.resize import KspaceResize

    k = _coil_kspace((3, 40, 36))
    out = KspaceResize((24, 20), method="crop")(k)
    assert out.shape == (3, 24, 20) and out.dtype == np.complex64
    # fastMRI's centre, start (H - h) // 2: rows 8..31, cols 8..27 (NumPy FFT)
    want = oracles.np_zero_filled(k, np.ones(36, dtype=bool), coil_axis=0)[8:32, 8:28]
    np.testing.assert_allclose(rss(ifft2c(out)), want, rtol=1e-4, atol=1e-6)
    # padding: the coil images sit in the middle of a zero border
    big = KspaceResize((48, 40), method="crop")(k)
    img = ifft2c(big)
    np.testing.assert_allclose(img[:, 4:44, 2:38], ifft2c(k), rtol=1e-4, atol=1e-5)
    assert np.abs(img[:, :4]).max() < 1e-5


def test_kspace_resize_kspace_keeps_central_samples_and_intensity():
    from fmrecon.data.resize import KspaceResize

    k = _coil_kspace((2, 40, 36), 1)
    out = KspaceResize((24, 20))(k)  # default method: central k-space
    scale = np.sqrt(24 * 20 / (40 * 36))
    np.testing.assert_allclose(out, k[:, 8:32, 8:28] * scale, rtol=1e-6)
    # a constant image keeps its value (orthonormal FFT, intensity-preserving factor)
    flat = np.fft.fftshift(np.fft.fft2(np.ones((40, 36)), norm="ortho"))[None].astype(np.complex64)
    np.testing.assert_allclose(np.abs(ifft2c(KspaceResize((24, 20))(flat))), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.abs(ifft2c(KspaceResize((64, 50))(flat))), 1.0, atol=1e-5)


def test_readout_oversampling_removal_keeps_the_central_half_of_the_readout():
    from fmrecon.data.resize import KspaceResize
    from fmrecon.physics.fft import fft2c

    rng = np.random.default_rng(2)
    img = np.zeros((2, 48, 20), dtype=np.complex64)
    img[:, 12:36] = rng.standard_normal((2, 24, 20)) + 1j * rng.standard_normal((2, 24, 20))
    resize = KspaceResize(readout_oversampling=2)
    out = resize(fft2c(img))
    assert out.shape == (2, 24, 20) and resize.shape(48, 20) == (24, 20)
    np.testing.assert_allclose(ifft2c(out), img[:, 12:36], atol=1e-5)
    both = KspaceResize((16, 16), readout_oversampling=2)
    assert both(fft2c(img)).shape == (2, 16, 16) and both.shape(48, 20) == (16, 16)


def test_slice_dataset_with_image_size_masks_and_targets_at_that_size(cmrx_tree):
    from fmrecon.data.resize import KspaceResize

    volumes, _ = discover(cmrx_tree)
    full = [v for v in volumes if v.fully_sampled]
    func = create_mask("cmrxrecon-uniform", 4)
    resize = KspaceResize((16, 32))
    ds = SliceDataset(full, func, resize=resize)
    s = ds[0]
    i, t, z = ds.index[0]
    assert s.kspace.shape[-2:] == (16, 32) and s.target.shape == (16, 32)
    assert s.mask.shape == (1, 16, 32) and ds.image_shape(i) == (16, 32)
    lines = oracles.cmrx_uniform_lines(32, 4)  # the 2023 rule at the new width 32
    np.testing.assert_array_equal(s.mask[0].numpy(), np.broadcast_to(lines, (16, 32)))
    with h5py.File(full[i].path) as f:
        k = cmrxrecon.read_kspace(f, full[i], t, z)
    np.testing.assert_allclose(s.target.numpy(), rss(ifft2c(resize(k))), rtol=1e-5)
    np.testing.assert_allclose(s.kspace.numpy(), resize(k) * lines, rtol=1e-6)
    assert float(s.max_value) == pytest.approx(float(s.target.max()))
    with pytest.raises(ConfigError, match="mask files are .* native size"):
        SliceDataset(full, func, official_masks=True, resize=resize)
    for bad in ([224], [0, 8], "big", [8.5, 8]):
        with pytest.raises(ConfigError, match="image size must be null or two integers"):
            KspaceResize(bad)
    with pytest.raises(ConfigError, match="resize method must be one of kspace, crop"):
        KspaceResize((8, 8), method="bilinear")
