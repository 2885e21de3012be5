"""`reconstruct --format dicom` checked by the tools DICOM users rely on:
Debian's `dciodvfy` (dicom3tools, the standard's validator) finds no error
in any file, and `dcm2niix` converts each series back to a NIfTI whose every
voxel lands where ours does with our value. Raw ISMRMRD input keeps the
scanner's slice positions and orientation and its trigger times. The inputs:
a CMRxRecon cine, a fastMRI brain volume with an ISMRMRD header (simulated
files in those formats) and an oblique raw cine stack.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from fmrecon.cli import main
from fmrecon.data.simulate import (
    raw_header,
    simulate_cmrxrecon,
    simulate_fastmri_brain,
    write_ismrmrd,
)
from fmrecon.data.simulate.raw import SLICE_MM
from fmrecon.physics.fft import fft2c

# an oblique stack: rows = the unit read, phase and slice directions (patient coordinates)
C, S = np.cos(np.radians(30)), np.sin(np.radians(30))
DIRECTIONS = np.array([[C, S, 0.0], [-S * C, C * C, S], [S * S, -S * C, C]])
CENTRE = (12.5, -30.0, 47.0)
# anisotropic pixels (5 x 4 mm) and 3 phases (trigger delays 0, 332.5, 667.5 ms in ticks,
# not the even 333.3 ms spacing assumed without them)
RAW = {"h": 32, "w": 24, "slices": 3, "frames": 3, "fov": (160.0, 96.0)}


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(
            f"{name} not installed: the DICOM check it makes is skipped "
            f"(apt-get install {package}; .ci/run installs it)"
        )
    return found


def _write_raw(path: Path) -> Path:
    """An oblique raw cine: 3 slices x 3 phases, smooth coil images, no oversampling."""
    h, w, nz, nt = RAW["h"], RAW["w"], RAW["slices"], RAW["frames"]
    y, x = np.mgrid[:h, :w]
    images = np.zeros((nt, nz, 2, h, w), dtype=np.complex64)
    for t in range(nt):
        for z in range(nz):
            blob = np.exp(-((y - h / 2 - t) ** 2 + (x - w / 2 + z) ** 2) / 40.0)
            images[t, z, 0] = blob
            images[t, z, 1] = blob * (1 + x / w)
    header = raw_header((h, w), nz, nt, 2, oversampling=1, fov_mm=RAW["fov"], patient_id="R1")
    kspace = fft2c(images).astype(np.complex64)
    return write_ismrmrd(path, kspace, header, directions=DIRECTIONS, centre=CENTRE)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{input kind: (our NIfTI, our DICOM folder)} of the three inputs."""
    root = tmp_path_factory.mktemp("dicom")
    cine = simulate_cmrxrecon(
        root / "cmrx", 1, size=(48, 40), n_slices=2, n_frames=3, n_coils=2, lax=False
    )[0]
    brain = simulate_fastmri_brain(root / "fastmri", 1, size=(48, 40), n_slices=3, n_coils=2)[0]
    raw = _write_raw(root / "raw" / "R1_cine.h5")
    out = root / "out"
    argv = ["reconstruct", "--model", "zero-filled", str(cine), str(brain), str(raw), "--mask"]
    argv += ["equispaced-fraction", "--acceleration", "4", "--center-fraction", "0.08"]
    assert main([*argv, "--format", "dicom,nifti,h5,mat", "--out", str(out), "--quiet"]) == 0
    found = {}
    for kind, src in (("cmrxrecon", cine), ("fastmri", brain), ("raw", raw)):
        (nifti,) = out.rglob(src.stem + ".nii.gz")
        found[kind] = (nifti, nifti.with_name(src.stem + "_dicom"))
    return found


def _series(folder: Path) -> list[pydicom.Dataset]:
    series = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    return sorted(series, key=lambda ds: int(ds.InstanceNumber))


@pytest.mark.parametrize("kind", ["cmrxrecon", "fastmri", "raw"])
def test_every_file_passes_dciodvfy(outputs, kind):
    dciodvfy = _tool("dciodvfy", "dicom3tools")
    files = sorted(outputs[kind][1].glob("*.dcm"))
    assert files
    for f in files:
        done = subprocess.run([dciodvfy, str(f)], capture_output=True, text=True, timeout=60)
        report = done.stdout + done.stderr
        assert "MRImage" in report  # it validated the MR Image IOD
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{f.name}: {errors}"


@pytest.mark.parametrize("kind", ["cmrxrecon", "fastmri", "raw"])
def test_dcm2niix_converts_the_series_back_to_our_nifti(outputs, kind, tmp_path):
    """Every voxel of dcm2niix's NIfTI sits at the world point of one of ours
    (an exact permutation and flip of the axes: dcm2niix stores columns first
    and rows bottom-up) and holds our value within half a quantisation step
    (dcm2niix keeps the stored uint16; the Real World Value Mapping gives the
    values back)."""
    dcm2niix = _tool("dcm2niix", "dcm2niix")
    nifti, folder = outputs[kind]
    cmd = [dcm2niix, "-z", "n", "-f", "back", "-o", str(tmp_path), str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ours, theirs = nib.load(nifti), nib.load(tmp_path / "back.nii")
    assert ours.shape == theirs.shape[1::-1] + theirs.shape[2:]
    index_map = np.linalg.inv(theirs.affine) @ ours.affine
    # float32 affines: 1e-4 voxels is far above their rounding, far below a voxel
    np.testing.assert_allclose(index_map, np.round(index_map), atol=1e-4)
    index_map = np.round(index_map).astype(int)
    assert sorted(np.abs(index_map[:3, :3]).sum(axis=0)) == [1, 1, 1]  # a permutation
    item = _series(folder)[0].RealWorldValueMappingSequence[0]
    slope, intercept = float(item.RealWorldValueSlope), float(item.RealWorldValueIntercept)
    a = ours.get_fdata(dtype=np.float32)
    b = np.asarray(theirs.dataobj, dtype=np.float64) * slope + intercept
    ijk = np.indices(a.shape[:3]).reshape(3, -1)
    i, j, k = index_map[:3, :3] @ ijk + index_map[:3, 3:]
    got = b[i, j, k].reshape(a.shape)
    # half a step of rounding, plus float32 storage of ours (2^-24 relative of up to
    # 65535 steps)
    assert np.abs(got - a).max() <= slope * (0.5 + 65535 * 2.0**-23)


@pytest.mark.parametrize("kind", ["cmrxrecon", "fastmri", "raw"])
def test_h5_and_mat_of_any_input_hold_the_nifti_images(outputs, kind):
    """h5 (fastMRI's layout, (frames,) slices, h, w) and mat (img4ranking, MATLAB
    (sx, sy, sz, t)) are written for every input kind and hold the same images as
    the NIfTI (x, y, z[, t]); the CMRxRecon mat is the ranking crop of them."""
    import h5py
    from scipy.io import loadmat

    nifti, _ = outputs[kind]
    name = nifti.name.removesuffix(".nii.gz")
    vol = nib.load(nifti).get_fdata(dtype=np.float32)
    vol = vol if vol.ndim == 4 else vol[..., None]  # (x, y, z, t)
    with h5py.File(nifti.with_name(name + ".h5"), "r") as f:
        rec = f["reconstruction"][()]
    rec = rec[None] if rec.ndim == 3 else rec  # (t, z, h, w)
    np.testing.assert_array_equal(rec.transpose(2, 3, 1, 0), vol)
    mat = loadmat(nifti.with_name(name + ".mat"))["img4ranking"]
    if kind == "cmrxrecon":  # the ranking subset: every frame of 3 and both slices, cropped
        h, w = vol.shape[:2]
        ch, cw = round(h / 3), round(w / 2)
        r0, c0 = (h - ch + 1) // 2, (w - cw + 1) // 2  # crop.m's placement
        vol = vol[r0 : r0 + ch, c0 : c0 + cw]
    np.testing.assert_array_equal(mat, vol)


def test_raw_series_keep_the_scanners_geometry_and_timing(outputs):
    nifti, folder = outputs["raw"]
    series = _series(folder)
    h, w, nz, nt = RAW["h"], RAW["w"], RAW["slices"], RAW["frames"]
    assert len(series) == nz * nt
    dr, dc = RAW["fov"][0] / h, RAW["fov"][1] / w
    read, phase, normal = DIRECTIONS
    img = nib.load(nifti)
    assert int(img.header["sform_code"]) == 1  # scanner coordinates
    for n, ds in enumerate(series):
        z, t = divmod(n, nt)  # slice-major
        # rows run along W (phase_dir), columns along H (read_dir)
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        np.testing.assert_allclose(iop, np.concatenate([phase, read]), atol=1e-6)
        centre = np.array(CENTRE) + (z - (nz - 1) / 2) * SLICE_MM * normal
        corner = centre - (w - 1) / 2 * dc * phase - (h - 1) / 2 * dr * read
        np.testing.assert_allclose(np.array(ds.ImagePositionPatient, float), corner, atol=1e-4)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([dr, dc])
        assert float(ds.SpacingBetweenSlices) == pytest.approx(SLICE_MM, abs=1e-4)
        # the simulator's trigger delays: phases evenly over 1000 ms, in 2.5 ms ticks
        assert float(ds.TriggerTime) == pytest.approx(round(t * 1000 / nt / 2.5) * 2.5)
        assert ds.TemporalPositionIdentifier == t + 1 and ds.ScanOptions == "CG"
        assert ds.PatientPosition == "HFS" and float(ds.RepetitionTime) == 40.0
        assert float(ds.EchoTime) == 1.5 and float(ds.FlipAngle) == 60.0
        assert "from the acquisition headers" in ds.ImageComments
        # the NIfTI affine puts the grid's centre at the slice centre (RAS = LPS with x, y negated)
        ras = img.affine @ [(h - 1) / 2, (w - 1) / 2, z, 1]
        np.testing.assert_allclose(ras[:3], centre * [-1, -1, 1], atol=1e-4)


def test_cine_without_timing_says_its_trigger_times_are_assumed(outputs):
    """CMRxRecon files carry no frame timing: frames evenly over 1000 ms, said so;
    a fastMRI volume has no frames and no Trigger Time."""
    series = _series(outputs["cmrxrecon"][1])
    nt = 3
    for n, ds in enumerate(series):
        t = n % nt
        assert float(ds.TriggerTime) == pytest.approx(t * 1000 / nt)
        assert "trigger times ASSUMED" in ds.ImageComments and ds.ScanOptions == "CG"
        assert ds.PatientPosition == "" and ds.Laterality == ""
    for ds in _series(outputs["fastmri"][1]):
        assert "TriggerTime" not in ds and "TemporalPositionIdentifier" not in ds
        assert float(ds.RepetitionTime) > 0  # from the simulated header's TR
