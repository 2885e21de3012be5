"""The table of file formats, the ISMRMRD header record, and the mask
interface shared by every mask function (kinds, MaskChoice, StoredMask)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import HEADER, random_kspace, write_cmrx, write_fastmri
from fmrecon.data import fastmri, formats
from fmrecon.data.ismrmrd_header import parse_header
from fmrecon.data.resize import KspaceResize, check_official_masks
from fmrecon.data.types import NotKspaceFile
from fmrecon.errors import ConfigError, DataError, MaskError
from fmrecon.physics.masks import MaskChoice, MaskFunc, StoredMask, create_mask


def test_readers_import_no_table():
    """The readers and the types import nothing that imports them back."""
    code = (
        "import sys; import fmrecon.data.cmrxrecon, fmrecon.data.fastmri, fmrecon.data.types; "
        "import fmrecon.data.ismrmrd_raw; "
        "assert 'fmrecon.data.formats' not in sys.modules; "
        "assert 'fmrecon.data.volumes' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_table_dispatch(tmp_path):
    cmrx = write_cmrx(tmp_path / "P001" / "cine_sax.mat", random_kspace((24, 40, 2, 1, 2)))
    fm = write_fastmri(tmp_path / "file1.h5", random_kspace((2, 2, 32, 24), 1))
    names = [formats.reader(formats.inspect_file(p)).name for p in (cmrx, fm)]
    assert names == ["cmrxrecon", "fastmri"]
    assert {f.name for f in formats.FORMATS} == {"cmrxrecon", "fastmri", "ismrmrd"}
    info = formats.inspect_file(cmrx)
    fmt = formats.reader(info)
    with fmt.open(info.path) as f:
        assert fmt.read_kspace(f, info, 1, 0).shape == (2, 24, 40)
        assert fmt.read_target(f, info, 0) is None  # CMRxRecon stores no reference
    with pytest.raises(DataError, match=r"unsupported file type '.txt' \(expected .mat or .h5\)"):
        formats.inspect_file(tmp_path / "notes.txt")


def test_formats_sharing_a_suffix_are_tried_in_order(tmp_path, monkeypatch):
    (tmp_path / "raw.h5").write_bytes(b"")
    seen = []

    def not_mine(path):
        seen.append("first")
        raise NotKspaceFile(f"{path}: first")

    def mine(path):
        seen.append("second")
        return "described"

    rows = (
        formats.Format("a", (".h5",), "a", not_mine, None, None),
        formats.Format("b", (".h5",), "b", mine, None, None),
    )
    monkeypatch.setattr(formats, "FORMATS", rows)
    assert formats.inspect_file(tmp_path / "raw.h5") == "described"
    assert seen == ["first", "second"]
    monkeypatch.setattr(formats, "FORMATS", rows[:1])
    with pytest.raises(NotKspaceFile, match="first"):
        formats.inspect_file(tmp_path / "raw.h5")


def test_ismrmrd_header_record():
    text = HEADER.format(h=64, w=40, rh=32, rw=40, maximum=35, center=18)
    hdr = parse_header(text.encode())
    assert (hdr.encoded_matrix.x, hdr.encoded_matrix.y, hdr.encoded_matrix.z) == (64, 40, 1)
    assert (hdr.recon_matrix.x, hdr.recon_matrix.y) == (32, 40)
    assert hdr.kspace_encoding_step_1.maximum == 35 and hdr.kspace_encoding_step_1.center == 18
    assert fastmri.acq_limits(hdr, 40) == (2, 38)  # fastMRI: 40 // 2 - 18, + 35 + 1
    assert fastmri.acq_limits(hdr, 37) is None  # does not fit
    broken = parse_header(text.replace("<center>18</center>", "<center>x</center>"))
    assert broken.kspace_encoding_step_1.center is None and fastmri.acq_limits(broken, 40) is None
    assert parse_header("not xml <") is None and parse_header(b"\xff\xfe") is None


def test_fastmri_recon_size(tmp_path):
    k = random_kspace((2, 2, 32, 24), 1)
    with_header = formats.inspect_file(write_fastmri(tmp_path / "a.h5", k, crop=(10, 10)))
    assert fastmri.recon_size(with_header) == (16, 24)  # reconSpace (H/2, W)
    no_header = formats.inspect_file(write_fastmri(tmp_path / "b.h5", k, (10, 12), header=False))
    assert fastmri.recon_size(no_header) == (10, 12)  # the stored target's size


def test_every_mask_function_has_choices_and_a_pattern():
    single = create_mask("kt-gaussian", 8)
    assert single.choices == (single,) and single.choose((1, 2)) is single
    assert single.official_pattern == "ktGaussian"
    assert create_mask("random", 4, center_fraction=0.08).official_pattern is None
    funcs = [create_mask("cmrxrecon24-uniform", r) for r in (4, 8, 10)]
    choice = MaskChoice(funcs)
    assert isinstance(choice, MaskFunc) and choice.choices == tuple(funcs)
    assert (choice.kind, choice.acceleration, choice.official_pattern) == (
        "cmrxrecon24-uniform",
        4.0,
        "Uniform",
    )
    picked = choice.choose((0, 1, 2))
    assert picked in funcs and choice.choose((0, 1, 2)) is picked
    assert np.array_equal(choice((2, 8, 40), seed=(0, 1, 2)), picked((2, 8, 40), seed=(0, 1, 2)))
    with pytest.raises(MaskError, match="at least one"):
        MaskChoice([])


def test_stored_mask_is_a_mask_function():
    lines = np.zeros(16, dtype=bool)
    lines[6:10] = True
    stored = StoredMask(lines, source="f.h5")
    assert isinstance(stored, MaskFunc) and stored.seed is None and stored.acceleration == 4.0
    assert stored((2, 3, 16), seed=5).sum() == 2 * 3 * 4
    assert stored.num_center_lines(16) == 4 and stored.choices == (stored,)
    assert StoredMask(np.ones(8, dtype=bool)).acceleration == 1.0  # every line: R = 1
    with pytest.raises(DataError, match="f.h5: 'mask' has 16 lines, k-space W = 12"):
        stored((3, 12))


def test_official_masks_and_a_resize_are_one_check():
    resize = KspaceResize(size=(224, 224))
    check_official_masks(resize, False, "x")
    check_official_masks(None, True, "x")
    check_official_masks(KspaceResize(), True, "x")  # native size: nothing to refuse
    with pytest.raises(ConfigError, match=r"^--image-size \(224x224 .* native size only"):
        check_official_masks(resize, True, "--image-size")


def test_matlab_v7_files_in_a_data_folder_are_skipped(tmp_path):
    """A submission written as the official tools write it (MATLAB v7, scipy's
    savemat) beside the k-space: a folder scan skips it, naming it is an error."""
    from scipy.io import savemat

    write_cmrx(tmp_path / "P001" / "cine_sax.mat", random_kspace((24, 20, 3, 2, 1)))
    sub = tmp_path / "submission" / "cine_sax.mat"
    sub.parent.mkdir()
    savemat(sub, {"img4ranking": np.zeros((8, 10, 2, 1), dtype=np.float32)})
    infos, skipped = formats.discover(tmp_path)
    assert [i.path.name for i in infos] == ["cine_sax.mat"] and skipped == [sub]
    with pytest.raises(NotKspaceFile, match=r"cine_sax.mat: MATLAB v5/v7 .mat file"):
        formats.discover(sub)
