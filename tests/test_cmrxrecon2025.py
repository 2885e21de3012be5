"""CMRxRecon 2025: the folder layout, the reader (v7.3 and v5/v7, 4-D and 5-D
modalities, ``_kus_`` files with their masks) and its one-line errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cmrx25_files import (
    full_path,
    kus_path,
    line_mask,
    mask_path,
    small_2025_tree,
    write_kus,
    write_mat,
)
from conftest import random_kspace, write_cmrx
from fmrecon.data import cmrxrecon
from fmrecon.data import cmrxrecon2025 as layout
from fmrecon.data.formats import discover, inspect_file, reader
from fmrecon.data.slices import SliceDataset
from fmrecon.data.types import NotKspaceFile
from fmrecon.errors import DataError


def official_loader_slice(path, key, frame, slc):
    """What the official tutorial (ReconTutorial/ShowCase.ipynb) does: h5py,
    ``kspace["real"] + 1j * kspace["imag"]`` of shape (nframe, nslice, ncoil, ny, nx),
    then ``[frame, slice]`` -> (coil, ny, nx)."""
    with h5py.File(path, "r") as hf:
        ds = hf[key]
        full = ds["real"] + 1j * ds["imag"]
    full = full.reshape((1,) * (5 - full.ndim) + full.shape)
    return full[frame, slc]


@pytest.mark.parametrize(
    ("vendor", "tesla"),
    [
        ("Siemens_30T_Vida", 3.0),
        ("UIH_15T_umr680", 1.5),
        ("UIH_30T_umr880", 3.0),
        ("Siemens_30T_CIMA.X", 3.0),
        ("UIH_50T_umr890", 5.0),
        ("GE_Signa", None),
        ("Philips", None),
        ("Siemens_3T_Prisma", None),  # not the NNT form: unknown, not a guess
    ],
)
def test_field_strength_from_vendor_folder(vendor, tesla):
    assert layout.field_strength(vendor) == tesla


def test_locate_training_validation_and_mask_paths(tmp_path):
    full = full_path(tmp_path, "Cine", "Center005", "Siemens_30T_Vida", "P003", "cine_sax")
    loc = layout.locate(full)
    assert (loc.kind, loc.modality, loc.center, loc.vendor, loc.patient, loc.name) == (
        "full",
        "Cine",
        "Center005",
        "Siemens_30T_Vida",
        "P003",
        "cine_sax",
    )
    assert loc.subject == "Center005/Siemens_30T_Vida/P003" and loc.field_strength == 3.0
    # the tutorial reads the training masks from TrainingSet/Mask_TaskAll/C/V/P
    assert layout.training_mask_path(full, "ktGaussian", 8) == (
        tmp_path
        / "MultiCoil/Cine/TrainingSet/Mask_TaskAll/Center005/Siemens_30T_Vida/P003"
        / "cine_sax_mask_ktGaussian8.mat"
    )
    kus = kus_path(
        tmp_path,
        "TaskR2",
        "Cine",
        "Center004",
        "UIH_15T_umr680",
        "P001",
        "cine_lax_2ch",
        "Uniform",
        16,
    )
    loc = layout.locate(kus)
    assert (loc.kind, loc.task, loc.name, loc.pattern, loc.acceleration) == (
        "kus",
        "TaskR2",
        "cine_lax_2ch",
        "Uniform",
        16,
    )
    assert layout.kus_mask_path(kus) == mask_path(
        tmp_path,
        "TaskR2",
        "Cine",
        "Center004",
        "UIH_15T_umr680",
        "P001",
        "cine_lax_2ch",
        "Uniform",
        16,
    )
    assert cmrxrecon.undersampled_mask_path(kus) == layout.kus_mask_path(kus)
    # the 2023 layout is not the 2025 one, and vice versa
    old = tmp_path / "MultiCoil/Cine/TrainingSet/FullSample/P001/cine_sax.mat"
    assert layout.locate(old) is None and layout.in_2023_layout(old)
    assert not layout.in_2023_layout(full)


def test_reads_v73_and_v5_4d_and_5d_as_the_official_loader(tmp_path):
    files = small_2025_tree(tmp_path)
    infos, skipped = discover(tmp_path)
    assert skipped == []
    by_path = {i.path: i for i in infos}
    for label, (path, arr) in files.items():
        info = by_path[path]
        nx, ny, nc, nz = arr.shape[:4]
        nt = arr.shape[4] if arr.ndim == 5 else 1
        assert (info.shape, info.n_coils, info.n_slices, info.n_frames) == ((nx, ny), nc, nz, nt)
        assert info.fully_sampled and info.key == "kspace"
        fmt = reader(info)
        arr5 = arr.reshape(arr.shape + (1,) * (5 - arr.ndim))
        with fmt.open(info.path) as f:
            for t, z in [(0, 0), (nt - 1, nz - 1)]:
                got = fmt.read_kspace(f, info, t, z)
                assert got.shape == (nc, nx, ny) and got.dtype == np.complex64
                np.testing.assert_array_equal(got, arr5[:, :, :, z, t].transpose(2, 0, 1))
                if label not in ("cine_c", "t2w"):  # v7.3: as the official h5py loader reads
                    ref = official_loader_slice(path, "kspace", t, z)  # (coil, ny, nx)
                    np.testing.assert_array_equal(got, ref.transpose(0, 2, 1))
    # v7.3 as MATLAB writes it: h5py sees the MATLAB axes reversed
    with h5py.File(files["cine_a"][0], "r") as f:
        assert f["kspace"].shape == (4, 3, 3, 24, 32)
        assert f["kspace"].dtype.names == ("real", "imag")


def test_center_vendor_field_modality_on_every_volume_and_slice(tmp_path):
    files = small_2025_tree(tmp_path)
    infos, _ = discover(tmp_path)
    bb = next(i for i in infos if i.path == files["bb"][0])
    assert (bb.center, bb.vendor, bb.field_strength, bb.modality_folder, bb.modality) == (
        "Center001",
        "Siemens_30T_Vida",
        3.0,
        "BlackBlood",
        "blackblood",
    )
    ds = SliceDataset(infos, mask_func=_every_other_line())
    seen = {(s.center, s.vendor, s.field_strength, s.modality_folder) for s in ds}
    assert ("Center002", "Siemens_15T_Aera", 1.5, "Cine") in seen
    assert ("Center002", "UIH_30T_umr880", 3.0, "T2w") in seen
    ds.close()


def test_patient_numbers_repeat_across_vendors(tmp_path):
    files = small_2025_tree(tmp_path)
    infos, _ = discover(tmp_path)
    p004 = [i for i in infos if i.patient == "P004"]
    assert {i.subject for i in p004} == {
        "Center002/UIH_30T_umr880/P004",
        "Center002/Siemens_15T_Aera/P004",
    }
    # one number under two vendors of one center may be one person: one split group
    assert {i.split_group for i in p004} == {"Center002/P004"}
    assert files  # the 2023 layout keeps its subject = the patient folder
    old = write_cmrx(
        tmp_path / "old/MultiCoil/Cine/TrainingSet/FullSample/P004/cine_sax.mat",
        random_kspace((24, 40, 2, 1, 2)),
    )
    info = inspect_file(old)
    assert (info.subject, info.split_group, info.center) == ("P004", "P004", None)


@pytest.mark.parametrize(("kt", "v5"), [(True, False), (False, True), (True, True)])
def test_kus_file_uses_its_mask(tmp_path, kt, v5):
    nx, ny, nt = 32, 24, 5
    full = random_kspace((nx, ny, 3, 2, nt), 3)
    mask = line_mask(nx, ny, nt if kt else None)
    pattern = "ktRadial" if kt else "Uniform"
    kp, mp = write_kus(
        tmp_path,
        "TaskR1",
        "Cine",
        "Center001",
        "UIH_30T_umr780",
        "P007",
        "cine_lax_3ch",
        pattern,
        8,
        full,
        mask,
        v5=v5,
        mask_v5=v5,
    )
    infos, skipped = discover(tmp_path)
    assert skipped == [mp] and len(infos) == 1
    info = infos[0]
    assert (info.acceleration, info.pattern, info.task, info.modality, info.key) == (
        8.0,
        pattern,
        "TaskR1",
        "cine_lax_3ch",
        "kus",
    )
    ds = SliceDataset(infos)
    for idx in range(len(ds)):
        s = ds[idx]
        m = mask[:, :, s.frame] if kt else mask
        np.testing.assert_array_equal(s.mask[0].numpy(), m.astype(bool))
        want = full[:, :, :, s.slice, s.frame].transpose(2, 0, 1) * m
        np.testing.assert_allclose(s.kspace.numpy(), want, rtol=0, atol=0)
        assert s.target.shape == (0, 0)  # no ground truth in a validation file
    ds.close()


def _every_other_line():
    from fmrecon.physics.masks import create_mask

    return create_mask("cmrxrecon-uniform", 4)


# ----------------------------------------------------------------------------- errors


def test_2025_file_in_2023_layout_is_an_error(tmp_path):
    path = write_cmrx(
        tmp_path / "MultiCoil/Cine/TrainingSet/FullSample/P001/cine_sax.mat",
        random_kspace((24, 40, 2, 1, 2)),
        key="kspace",
    )
    with pytest.raises(
        DataError,
        match=r"cine_sax.mat: CMRxRecon 2025 file \(key 'kspace'\) "
        r"in a 2023/2024 folder layout; expected MultiCoil/\{Modality\}/",
    ):
        inspect_file(path)
    write_mat(
        tmp_path / "MultiCoil/Cine/ValidationSet/AccFactor04/P001/cine_sax.mat",
        {"kus": random_kspace((24, 40, 2, 1, 2))},
        v5=True,
    )
    with pytest.raises(DataError, match=r"CMRxRecon 2025 file \(key 'kus'\) in a 2023/2024"):
        discover(tmp_path / "MultiCoil/Cine/ValidationSet")
    loose = write_cmrx(
        tmp_path / "elsewhere" / "cine_sax.mat", random_kspace((24, 40, 2, 1, 2)), key="kspace"
    )
    with pytest.raises(
        DataError,
        match=r"elsewhere/cine_sax.mat: CMRxRecon 2025 file \(key "
        r"'kspace'\) outside the 2025 folder layout; expected MultiCoil/",
    ):
        inspect_file(loose)


def test_2023_file_in_2025_layout_is_an_error(tmp_path):
    path = full_path(tmp_path, "Cine", "Center001", "Siemens_30T_Vida", "P001", "cine_sax")
    write_cmrx(path, random_kspace((24, 40, 2, 1, 2)), key="kspace_sub04")
    with pytest.raises(
        DataError,
        match=r"cine_sax.mat: CMRxRecon 2023 file \(key 'kspace_sub04'\)"
        r" in the 2025 folder layout",
    ):
        inspect_file(path)
    # the older 2025 training key kspace_full is accepted (ChallengeMaskGen_TrainingSet.m)
    write_cmrx(path, random_kspace((24, 40, 2, 1, 2)), key="kspace_full")
    assert inspect_file(path).center == "Center001"


def test_kus_without_mask_and_mask_of_wrong_shape(tmp_path):
    full = random_kspace((32, 24, 2, 1, 4), 0)
    kp, mp = write_kus(
        tmp_path,
        "TaskR1",
        "Cine",
        "Center001",
        "UIH_30T_umr780",
        "P007",
        "cine_sax",
        "ktGaussian",
        16,
        full,
        line_mask(32, 24, 4),
    )
    assert inspect_file(kp).n_frames == 4
    write_mat(mp, {"mask": line_mask(32, 24, 3)})  # 3 frames, k-space 4
    with pytest.raises(
        DataError,
        match=r"cine_sax_mask_ktGaussian16.mat: mask \(nx, ny, nt\) = \(32, 24, 3\) does not "
        r"match the k-space of .*cine_sax_kus_ktGaussian16.mat: \(nx, ny, nt\) = \(32, 24, 4\)",
    ):
        inspect_file(kp)
    write_mat(mp, {"mask": line_mask(24, 32, None)})  # transposed
    with pytest.raises(DataError, match=r"mask \(nx, ny\) = \(24, 32\) does not match"):
        inspect_file(kp)
    mp.unlink()
    with pytest.raises(
        DataError,
        match=r"cine_sax_kus_ktGaussian16.mat: _kus_ file without its "
        r"mask file Mask_TaskR1/Center001/UIH_30T_umr780/P007/"
        r"cine_sax_mask_ktGaussian16.mat$",
    ):
        discover(tmp_path)


def test_missing_key_wrong_name_and_4d_modality_with_time(tmp_path):
    path = full_path(tmp_path, "Cine", "Center001", "Siemens_30T_Vida", "P001", "cine_sax")
    write_mat(path, {"kdata": random_kspace((24, 40, 2, 1, 2))})
    with pytest.raises(DataError, match=r"cine_sax.mat: missing key 'kspace' \(keys: kdata\)"):
        inspect_file(path)
    bad = kus_path(tmp_path, "TaskR1", "Cine", "Center001", "V_30T_x", "P001", "cine", "x", 4)
    bad = write_mat(bad.with_name("cine_kus.mat"), {"kus": random_kspace((24, 40, 2, 1, 2))})
    with pytest.raises(DataError, match=r"must be named \{name\}_kus_\{Pattern\}\{R\}.mat"):
        inspect_file(bad)
    kus = write_mat(bad.with_name("cine_kus_Uniform8.mat"), {"kdata": random_kspace((24, 40, 2))})
    with pytest.raises(DataError, match=r"cine_kus_Uniform8.mat: missing key 'kus'"):
        inspect_file(kus)
    bb = full_path(tmp_path, "BlackBlood", "Center001", "Siemens_30T_Vida", "P001", "blackblood")
    write_mat(bb, {"kspace": random_kspace((24, 40, 2, 2, 3))})
    with pytest.raises(DataError, match=r"BlackBlood k-space is \(nx, ny, nc, nz\) with no time"):
        inspect_file(bb)
    # masks and submissions in the layout are skipped, not errors
    m = write_mat(
        mask_path(tmp_path, "TaskR1", "Cine", "C", "V", "P001", "cine", "Uniform", 8),
        {"mask": line_mask(24, 40, None)},
    )
    with pytest.raises(NotKspaceFile, match="a mask file"):
        inspect_file(m)
