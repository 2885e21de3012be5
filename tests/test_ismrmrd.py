"""ISMRMRD raw scanner data: the reader (counters, flags, oversampling,
sampling), the same k-space as a fastMRI file giving the same metrics and
reconstructions, training on raw files, the simulator, and bad files.

Test files are written with the ``ismrmrd`` package itself (its Dataset API,
one ``append_acquisition`` per readout, as converters write them)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest
import yaml
from ismrmrd import xsd

from conftest import HEADER, random_kspace
from fmrecon.cli import main
from fmrecon.data import formats
from fmrecon.data.ismrmrd_raw import raw_geometry, readout_oversampling
from fmrecon.data.resize import KspaceResize
from fmrecon.data.slices import SliceDataset
from fmrecon.data.types import NotKspaceFile
from fmrecon.errors import DataError
from fmrecon.physics.masks import create_mask

FLAGS = {
    "noise": ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    "navigator": ismrmrd.ACQ_IS_NAVIGATION_DATA,
    "phase correction": ismrmrd.ACQ_IS_PHASECORR_DATA,
    "dummy scan": ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    "real-time feedback": ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
}


def header(h, w, *, enc_x=None, fov_x=None, limits=None, z=1, trajectory="cartesian", pid="S1"):
    """An ISMRMRD header: recon matrix (h, w), encoded readout ``enc_x`` (default h)
    over ``fov_x`` mm (default enc_x mm); step-1 ``limits`` (min, max, centre)."""
    enc_x = enc_x or h
    lo, hi, c = limits or (0, w - 1, w // 2)

    def space(x, fov):
        return xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=x, y=w, z=z),
            fieldOfView_mm=xsd.fieldOfViewMm(x=fov, y=float(w), z=6.0),
        )

    enc = xsd.encodingType(
        encodedSpace=space(enc_x, float(fov_x or enc_x)),
        reconSpace=space(h, float(h) * (fov_x or enc_x) / enc_x),
        encodingLimits=xsd.encodingLimitsType(
            kspace_encoding_step_1=xsd.limitType(minimum=lo, maximum=hi, center=c)
        ),
        trajectory=xsd.trajectoryType(trajectory),
    )
    return xsd.ismrmrdHeader(
        subjectInformation=xsd.subjectInformationType(patientID=pid),
        measurementInformation=xsd.measurementInformationType(
            patientPosition=xsd.patientPositionType.HFS, protocolName="cine_test"
        ),
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=127_000_000),
        encoding=[enc],
    )


def readout(data, flags=(), centre=None, **idx):
    acq = ismrmrd.Acquisition.from_array(
        np.ascontiguousarray(data, dtype=np.complex64),
        center_sample=data.shape[-1] // 2 if centre is None else centre,
    )
    for flag in flags:
        acq.set_flag(flag)
    for name, value in idx.items():
        setattr(acq.idx, name, int(value))
    return acq


def write_raw(path: Path, hdr, acquisitions) -> Path:
    """An ISMRMRD file with header ``hdr`` (None: none) and ``acquisitions``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    if hdr is not None:
        ds.write_xml_header(xsd.ToXML(hdr))
    for acq in acquisitions:
        ds.append_acquisition(acq)
    ds.close()
    return path


def image_readouts(kspace, lines=None, **fixed):
    """Readouts of k-space (Z, C, H, W), slice by slice, line by line:
    ``lines`` (W,) or (Z, W) bool of the lines written (default all), with
    ky = column; ``fixed`` counters for all of them."""
    z_n, _, _, w = kspace.shape
    lines = np.ones((z_n, w), bool) if lines is None else np.broadcast_to(lines, (z_n, w))
    return [
        readout(kspace[z, :, :, ky], kspace_encode_step_1=ky, slice=z, **fixed)
        for z in range(z_n)
        for ky in np.nonzero(lines[z])[0]
    ]


def _read(info, frame=0, slc=0):
    fmt = formats.reader(info)
    f = fmt.open(info.path)
    try:
        return fmt.read_kspace(f, info, frame, slc), f.index
    finally:
        f.close()


# ----------------------------------------------------------------------------- reading


def test_counters_frames_flags_averages_and_reversed_readouts(tmp_path):
    z_n, c_n, h, w = 2, 3, 16, 12
    k = random_kspace((3, z_n, c_n, h, w), 1)  # (phase, slice, coil, H, W)
    # noise-adjust readouts first, of another length
    acqs = [readout(random_kspace((c_n, 40), 9), [FLAGS["noise"]]) for _ in range(3)]
    for t in (2, 0, 1):  # frames written out of order
        acqs += image_readouts(k[t], phase=t)
    for what, flag in FLAGS.items():
        if what != "noise":
            acqs.append(readout(random_kspace((c_n, h), 5), [flag], kspace_encode_step_1=3))
    # a separate calibration scan (not image data) and embedded ACS lines (image data)
    acqs.append(
        readout(
            random_kspace((c_n, h), 6),
            [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION],
            kspace_encode_step_1=4,
            slice=1,
        )  # fmt: skip
    )
    both = [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION, ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING]
    extra = random_kspace((c_n, h), 7)
    acqs.append(readout(extra, both, kspace_encode_step_1=5, slice=1, phase=2, average=1))
    # a readout acquired with a negative gradient, stored in acquisition order
    acqs.append(
        readout(k[1, 0, :, ::-1, 7], [ismrmrd.ACQ_IS_REVERSE], kspace_encode_step_1=7, phase=1)
    )
    path = write_raw(tmp_path / "scan.h5", header(h, w), acqs)

    info = formats.inspect_file(path)
    assert (info.format, info.n_frames, info.n_slices, info.n_coils) == ("ismrmrd", 3, 2, 3)
    assert (info.shape, info.subject, info.modality) == ((h, w), "S1", "cine_test")
    assert info.fully_sampled and info.acq_limits is None
    got, index = _read(info, 1, 0)
    expected = k[1, 0].copy()
    expected[:, :, 7] = (k[1, 0, :, :, 7] + k[1, 0, :, :, 7]) / 2  # the line and its reversed copy
    np.testing.assert_array_equal(got, expected)
    assert index.skipped == {
        "noise": 3,
        "navigator": 1,
        "phase correction": 1,
        "dummy scan": 1,
        "real-time feedback": 1,
        "separate calibration": 1,
    }
    # the second average of line 5 (slice 1, phase 2) is averaged with the first
    got, _ = _read(info, 2, 1)
    np.testing.assert_allclose(got[:, :, 5], (k[2, 1, :, :, 5] + extra) / 2, rtol=1e-6)
    np.testing.assert_array_equal(got[:, :, 4], k[2, 1, :, :, 4])  # calibration scan not mixed in


def _without_readout_oversampling(k: np.ndarray, f: int) -> np.ndarray:
    """(C, f H, W) k-space -> (C, H, W), from the definition, in float64 NumPy:
    centred orthonormal inverse DFT along the readout (axis -2), the central H
    rows of the coil images (start (f H - H) // 2, fastMRI's centre), forward DFT."""
    n = k.shape[-2]
    h = n // f
    s = (n - h) // 2
    img = np.fft.ifft(np.fft.ifftshift(k.astype(np.complex128), axes=-2), axis=-2, norm="ortho")
    img = np.fft.fftshift(img, axes=-2)[..., s : s + h, :]
    k = np.fft.fft(np.fft.ifftshift(img, axes=-2), axis=-2, norm="ortho")
    return np.fft.fftshift(k, axes=-2)


def test_readout_oversampling_removed_as_the_resize_code_does(tmp_path):
    z_n, c_n, h, w = 1, 2, 16, 12
    k = random_kspace((z_n, c_n, 2 * h, w), 2)
    path = write_raw(tmp_path / "os.h5", header(h, w, enc_x=2 * h), image_readouts(k))
    info = formats.inspect_file(path)
    assert info.shape == (h, w)
    got, index = _read(info)
    assert index.oversampling == 2
    np.testing.assert_array_equal(got, KspaceResize(readout_oversampling=2)(k[0]))
    # ... and that is oversampling removal: against an independent float64 computation.
    # fp32 FFT error grows as eps x log2(N) of the rms (Higham, Accuracy and Stability,
    # sec. 24.1); the code's four 2-D transforms (2h x w, h x w) give the bound below,
    # 4x the sum (measured: 4.9 eps x rms over 30 random inputs of 3 sizes)
    want = _without_readout_oversampling(k[0], 2)
    eps = np.finfo(np.float32).eps
    rms = np.sqrt(np.mean(np.abs(want) ** 2))
    bound = 4 * eps * (np.log2(2 * h * w) + np.log2(h * w)) * rms
    np.testing.assert_allclose(got, want, rtol=0, atol=bound)
    # recon matrix x < encoded x but the same field of view: an interpolated recon, kept
    hdr = header(h, w, enc_x=2 * h, fov_x=float(h))
    hdr.encoding[0].reconSpace.fieldOfView_mm.x = float(h)
    path = write_raw(tmp_path / "same_fov.h5", hdr, image_readouts(k))
    assert formats.inspect_file(path).shape == (2 * h, w)


def test_asymmetric_echo_is_placed_by_its_centre_sample(tmp_path):
    c_n, h, w = 2, 16, 10
    k = random_kspace((1, c_n, h, w), 3)
    # partial echo: the first 4 samples not acquired, the echo at sample 4 of 12
    acqs = [readout(k[0, :, 4:, ky], centre=4, kspace_encode_step_1=ky) for ky in range(w)]
    info = formats.inspect_file(write_raw(tmp_path / "echo.h5", header(h, w), acqs))
    got, _ = _read(info)
    assert np.all(got[:, :4] == 0)
    np.testing.assert_array_equal(got[:, 4:], k[0, :, 4:])


def test_discarded_samples_are_dropped_and_the_echo_stays_in_place(tmp_path):
    """Readouts with ``discard_pre`` / ``discard_post`` samples (ADC samples the
    converter flags as not to be used; ISMRMRD AcquisitionHeader) filled with
    garbage, and an asymmetric echo: the same k-space as the readouts without
    them. ``center_sample`` counts from the first stored sample, discarded ones
    included (ISMRMRD; Gadgetron's BucketToBufferGadget places sample
    ``center_sample - discard_pre`` of the kept ones at the encoded centre)."""
    c_n, h, w = 2, 16, 10
    pre, post, first = 5, 3, 4  # pre != post: swapping them must show
    k = random_kspace((c_n, h, w), 12)
    rng = np.random.default_rng(13)

    def garbage(n):
        return 1e3 * random_kspace((c_n, n), int(rng.integers(1 << 30)))

    plain, padded, swapped = [], [], []
    for ky in range(w):
        # partial echo: encoded rows first.. acquired, the echo at row h // 2
        line = k[:, first:, ky]
        plain.append(readout(line, centre=h // 2 - first, kspace_encode_step_1=ky))
        data = np.concatenate([garbage(pre), line, garbage(post)], axis=-1)
        for out, (dp, dq) in ((padded, (pre, post)), (swapped, (post, pre))):
            acq = readout(data, centre=pre + h // 2 - first, kspace_encode_step_1=ky)
            acq.discard_pre, acq.discard_post = dp, dq
            out.append(acq)
    got = {}
    for name, acqs in (("plain", plain), ("padded", padded), ("swapped", swapped)):
        info = formats.inspect_file(write_raw(tmp_path / f"{name}.h5", header(h, w), acqs))
        assert info.shape == (h, w)
        got[name], _ = _read(info)
    want = k.copy()
    want[:, :first] = 0
    np.testing.assert_array_equal(got["plain"], want)
    np.testing.assert_array_equal(got["padded"], want)
    # the same samples read with pre and post swapped: the garbage comes in, the echo moves
    assert np.abs(got["swapped"] - want).max() > 100


def test_undersampled_scan_keeps_the_lines_each_slice_acquired(tmp_path):
    z_n, c_n, h, w = 2, 2, 16, 16
    k = random_kspace((z_n, c_n, h, w), 4)
    lines = np.zeros((z_n, w), bool)
    lines[0, 0::4] = lines[1, 1::4] = True
    lines[:, 7:10] = True  # ACS
    path = write_raw(tmp_path / "r4.h5", header(h, w), image_readouts(k, lines))
    info = formats.inspect_file(path)
    assert not info.fully_sampled
    assert info.acceleration == pytest.approx(w / lines.sum(1).mean())
    ds = SliceDataset([info])  # no mask function needed: the file has its own
    for z in range(z_n):
        s = ds[z]
        assert s.slice == z and s.target.shape == (0, 0)
        np.testing.assert_array_equal(s.mask[0, 0].numpy(), lines[z])
        np.testing.assert_array_equal(s.kspace.numpy(), k[z] * lines[z])
        assert s.acceleration == pytest.approx(info.acceleration)
    ds.close()


def test_partial_fourier_is_fully_sampled_over_the_lines_acquired(tmp_path):
    c_n, h, w = 2, 16, 16
    k = random_kspace((1, c_n, h, w), 5)
    lines = np.zeros(w, bool)
    lines[: w * 5 // 8 + 2] = True  # 5/8 partial Fourier (plus 2): the top lines never acquired
    path = write_raw(tmp_path / "pf.h5", header(h, w), image_readouts(k, lines))
    info = formats.inspect_file(path)
    assert info.fully_sampled and info.acq_limits == (0, int(lines.sum()))
    func = create_mask("equispaced-fraction", 2, center_fraction=0.25)
    s = SliceDataset([info], mask_func=func)[0]
    assert not s.mask[0, 0, lines.sum() :].any()  # never masked in where nothing was encoded
    np.testing.assert_array_equal(s.kspace.numpy(), k[0] * lines * s.mask[0].numpy())


def test_oversampling_rule_follows_the_header():
    from fmrecon.data.ismrmrd_header import parse_header

    def factor(**kw):
        return readout_oversampling(parse_header(xsd.ToXML(header(16, 12, **kw))))

    assert factor() == 1 and factor(enc_x=32) == 2 and factor(enc_x=48) == 3
    assert factor(enc_x=24) == 1  # 1.5: not an oversampling factor


# ----------------------------------------------------------------------------- same as fastMRI


def _fastmri_and_raw(tmp_path, seed=6):
    """The same multi-coil k-space (2 slices, lines 2..21 of 24 encoded) as a
    fastMRI file and as an ISMRMRD file of the same name in two folders."""
    z_n, c_n, h, w = 2, 2, 32, 24
    x, y = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    img = (x**2 / 0.6 + y**2 / 0.4 < 1) + 0.5 * (x**2 + y**2 < 0.1)
    coils = np.stack([np.exp(-((x - np.cos(c)) ** 2 + (y - np.sin(c)) ** 2)) for c in range(c_n)])
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img * coils, axes=(-2, -1)), norm="ortho"),
                        axes=(-2, -1))  # fmt: skip
    k = np.stack([k * (1 + 0.1 * z) for z in range(z_n)])
    k = (k + 0.01 * random_kspace((z_n, c_n, h, w), seed)).astype(np.complex64)
    k[..., :2] = k[..., 22:] = 0  # encoded lines 2..21 (fastMRI zero-pads the rest)
    fm = tmp_path / "fastmri" / "scan.h5"
    fm.parent.mkdir(parents=True)
    with h5py.File(fm, "w") as f:
        f.create_dataset("kspace", data=k)
        f["ismrmrd_header"] = HEADER.format(h=h, w=w, rh=h // 2, rw=w, maximum=19, center=10)
        f.attrs.update(patient_id="S1", acquisition="cine_test")  # the raw header's names
    hdr = header(h, w, limits=(0, 19, 10))
    hdr.encoding[0].reconSpace.matrixSize.x = h // 2
    acqs = [
        readout(k[z, :, :, col], kspace_encode_step_1=col - 2, slice=z)
        for z in range(z_n)
        for col in range(2, 22)
    ]
    raw = write_raw(tmp_path / "raw" / "scan.h5", hdr, acqs)
    return fm, raw


def test_same_kspace_as_fastmri_and_ismrmrd_gives_identical_metrics(tmp_path):
    fm, raw = _fastmri_and_raw(tmp_path)
    a, b = formats.inspect_file(fm), formats.inspect_file(raw)
    assert (a.format, b.format) == ("fastmri", "ismrmrd")
    assert a.acq_limits == b.acq_limits == (2, 22) and a.shape == b.shape
    rows = {}
    for name, path in (("fastmri", fm), ("raw", raw)):
        out = tmp_path / f"eval_{name}"
        args = ["evaluate", "--model", "zero-filled", "--data", str(path.parent), "--mask",
                "equispaced-fraction", "--accelerations", "4", "--center-fractions", "0.08",
                "--out", str(out), "--quiet", "--no-figures"]  # fmt: skip
        assert main(args) == 0
        rows[name] = [
            {k: v for k, v in r.items() if k != "file"}
            for r in csv.DictReader(open(out / "metrics.csv"))
        ]
    assert rows["raw"] == rows["fastmri"] and rows["raw"]
    assert 0 < float(rows["raw"][0]["ssim"]) < 1


def test_reconstruct_reads_raw_files_like_fastmri_files(tmp_path, capsys):
    fm, raw = _fastmri_and_raw(tmp_path)
    mask = ["--mask", "equispaced-fraction", "--acceleration", "4", "--center-fraction", "0.08"]
    out = {}
    for name, path in (("fastmri", fm), ("raw", raw)):
        args = ["reconstruct", str(path), "--model", "zero-filled", "--out",
                str(tmp_path / f"rec_{name}"), "--quiet", *mask]  # fmt: skip
        assert main(args) == 0
        with h5py.File(tmp_path / f"rec_{name}" / "scan.h5") as f:
            out[name] = f["reconstruction"][()]
    assert out["raw"].shape == (2, 16, 24)  # (slices, h, w): the reconSpace matrix
    np.testing.assert_array_equal(out["raw"], out["fastmri"])
    # a fully sampled raw file without --mask: one line naming the file
    capsys.readouterr()
    assert main(["reconstruct", str(raw), "--model", "zero-filled", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(raw) in err and "needs a mask" in err and "\n" not in err


# ----------------------------------------------------------------------------- simulator, training


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    args = ["simulate", "--format", "ismrmrd", "--out", str(root), "--subjects", "3",
            "--size", "32", "32", "--slices", "1", "--frames", "2", "--coils", "2",
            "--undersampled", "--accelerations", "4", "--noise", "0"]  # fmt: skip
    assert main(args) == 0
    return root


def test_simulated_raw_files_are_what_a_converter_writes(simulated):
    from fmrecon.data.simulate import simulate_cardiac_subject

    full = simulated / "ismrmrd" / "FullSample" / "P001_cine_sax.h5"
    sub = simulated / "ismrmrd" / "AccFactor04" / "P001_cine_sax.h5"
    meta = json.loads((simulated / "simulation.json").read_text())["formats"]["ismrmrd"]
    assert meta["oversampling"] == 2 and len(meta["files"]) == 6
    ds = ismrmrd.Dataset(str(full), "dataset", create_if_needed=False)
    hdr = xsd.CreateFromDocument(ds.read_xml_header())  # the package's strict schema parse
    enc = hdr.encoding[0]
    assert (enc.encodedSpace.matrixSize.x, enc.reconSpace.matrixSize.x) == (64, 32)
    assert enc.encodedSpace.fieldOfView_mm.x == 2 * enc.reconSpace.fieldOfView_mm.x
    n = ds.number_of_acquisitions()
    first, last = ds.read_acquisition(0), ds.read_acquisition(n - 1)
    ds.close()
    assert first.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    assert last.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT) and last.data.shape == (2, 64)
    assert n == 16 + 2 * 32  # noise readouts, then one per line and frame
    # read back: oversampling removed, the noise-free k-space of the phantom
    info = formats.inspect_file(full)
    assert (info.n_frames, info.n_slices, info.shape, info.subject) == (2, 1, (32, 32), "P001")
    got, _ = _read(info, 1, 0)
    ref = simulate_cardiac_subject(0, 0, size=(32, 32), n_slices=1, n_frames=2, n_coils=2,
                                   noise=0.0)["kspace"][1, 0]  # fmt: skip
    np.testing.assert_allclose(got, ref, atol=1e-6 * np.abs(ref).max())
    geo = raw_geometry(info)  # for image outputs: fields of view, slice placement
    assert (geo.recon_fov_mm.x, geo.encoded_fov_mm.x, geo.oversampling) == (400.0, 800.0, 2)
    assert geo.slices[0].read_dir == (1.0, 0.0, 0.0) and geo.slices[0].slice_dir == (0, 0, 1)
    # the accelerated scan: the CMRxRecon pattern's lines, its ACS flagged as embedded
    info = formats.inspect_file(sub)
    lines = create_mask("cmrxrecon-uniform", 4)((1, 32))[0].astype(bool)
    s = SliceDataset([info])[1]
    np.testing.assert_array_equal(s.mask[0, 0].numpy(), lines)
    with h5py.File(sub) as f:
        heads = f["dataset/data"].fields("head")[:]
    both = 1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING - 1)
    acs = heads["idx"]["kspace_encode_step_1"][(heads["flags"] & both) != 0]
    assert acs.size > 0 and set(acs) < set(np.nonzero(lines)[0])


def test_reconstruct_raw_scans_to_every_output_format(simulated, tmp_path, capsys):
    import nibabel as nib
    import pydicom

    sub = simulated / "ismrmrd" / "AccFactor04"
    out = tmp_path / "rec"
    args = ["reconstruct", str(sub), "--model", "zero-filled", "--out", str(out), "--quiet",
            "--format", "h5,nifti,dicom"]  # fmt: skip
    assert main(args) == 0  # undersampled scans: their own lines, no --mask
    lines = capsys.readouterr().out
    assert "acquired lines R=" in lines and "voxels 12.5 x 12.5 x 8 mm" in lines
    with h5py.File(out / "P001_cine_sax.h5") as f:
        assert f["reconstruction"].shape == (2, 1, 32, 32)  # (frames, slices, h, w)
        h5 = f["reconstruction"][()]
    nii = nib.load(out / "P001_cine_sax.nii.gz")
    assert nii.shape == (32, 32, 1, 2) and nii.header.get_zooms()[:3] == (12.5, 12.5, 8.0)
    np.testing.assert_allclose(np.asarray(nii.dataobj)[:, :, 0, 1], h5[1, 0], rtol=1e-6)
    dcm = sorted((out / "P001_cine_sax_dicom").iterdir())
    assert len(dcm) == 2 and pydicom.dcmread(dcm[0]).PatientID == "P001"


def test_training_and_evaluation_read_a_folder_of_raw_files(simulated, tmp_path, capsys):
    cfg = {
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "e2e-varnet", "options": {"num_cascades": 1, "chans": 4, "pools": 2,
                                                    "sens_chans": 4, "sens_pools": 2}},
        "data": {"root": str(simulated / "ismrmrd"), "num_workers": 0,
                 "split_fractions": [0.34, 0.33, 0.33],
                 "mask": {"kind": "equispaced-fraction", "center_fractions": [0.08]}},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False},
    }  # fmt: skip
    path = tmp_path / "raw.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "name=raw"]) == 0
    summary = json.loads((tmp_path / "runs/raw/train_summary.json").read_text())
    assert summary["global_step"] == 2  # 1 training subject x 2 frames (undersampled skipped)
    out = tmp_path / "eval"
    args = ["evaluate", "--model", "zero-filled", "--data", str(simulated / "ismrmrd"),
            "--mask", "cmrxrecon-uniform", "--accelerations", "4", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "3 undersampled files without ground truth skipped" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())[0]["n_files"] == 3


# ----------------------------------------------------------------------------- bad files


def _bad(tmp_path, name):
    k = random_kspace((1, 2, 16, 12), 8)
    hdr = header(16, 12)
    if name == "missing header":
        return write_raw(tmp_path / "nohdr.h5", None, image_readouts(k)), "without its XML header"
    if name == "no image acquisitions":
        acqs = [readout(k[0, :, :, 0], [FLAGS["noise"]]) for _ in range(4)]
        return write_raw(tmp_path / "noise.h5", hdr, acqs), r"no image acquisitions \(4 .* 4 noise"
    if name == "ky beyond the matrix":
        acqs = image_readouts(k) + [readout(k[0, :, :, 0], kspace_encode_step_1=12)]
        return write_raw(tmp_path / "ky.h5", hdr, acqs), "kspace_encode_step_1 = 12, line 12 of"
    if name == "limits beyond the matrix":
        hdr = header(16, 12, limits=(0, 15, 8))
        return write_raw(tmp_path / "lim.h5", hdr, image_readouts(k)), "= 0, line -2 of"
    if name == "truncated":
        path = write_raw(tmp_path / "cut.h5", hdr, image_readouts(k))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "truncated or corrupt"
    if name == "radial":
        hdr = header(16, 12, trajectory="radial")
        return write_raw(tmp_path / "radial.h5", hdr, image_readouts(k)), "radial trajectory"
    if name == "3-D":
        hdr = header(16, 12, z=4)
        return write_raw(tmp_path / "3d.h5", hdr, image_readouts(k)), "3-D encoding"
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name",
    [
        "missing header",
        "no image acquisitions",
        "ky beyond the matrix",
        "limits beyond the matrix",
        "truncated",
        "radial",
        "3-D",
    ],  # fmt: skip
)
def test_bad_files_are_one_line_naming_the_file(tmp_path, capsys, name):
    path, message = _bad(tmp_path, name)
    with pytest.raises(DataError, match=message) as err:
        formats.inspect_file(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    args = ["evaluate", "--model", "zero-filled", "--data", str(tmp_path), "--mask",
            "equispaced-fraction", "--accelerations", "4", "--center-fractions", "0.08",
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and "\n" not in err


def test_other_h5_files_are_not_kspace_for_either_format(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["notes"] = np.arange(3)
    with pytest.raises(NotKspaceFile, match="missing key 'kspace'.*; not an ISMRMRD dataset"):
        formats.inspect_file(path)
    images = tmp_path / "images.h5"  # an ISMRMRD file with images only (a reconstruction)
    with h5py.File(images, "w") as f:
        f["dataset/xml"] = np.array([b"<ismrmrdHeader/>"], dtype=h5py.special_dtype(vlen=bytes))
        f.create_group("dataset/image_0")
    with pytest.raises(NotKspaceFile, match="without acquisitions"):
        formats.inspect_file(images)
    fm, _ = _fastmri_and_raw(tmp_path / "d")
    infos, skipped = formats.discover(tmp_path)
    assert sorted(skipped) == sorted([path, images]) and len(infos) == 2
