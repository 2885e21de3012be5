"""Simulated raw scanner data: ISMRMRD ``.h5`` files laid out as a scanner
converter (siemens_to_ismrmrd) writes them, written with the ``ismrmrd``
package: the XML header (encoded and recon space with fields of view,
encoding limits, parallel imaging), noise-adjust readouts first (flagged
``ACQ_IS_NOISE_MEASUREMENT``), then one acquisition per readout line with
its counters (``kspace_encode_step_1``, ``slice``, ``phase``), echo position
(``center_sample``), first/last flags and slice geometry, readout
oversampled 2x by default as Siemens scanners record it (encoded x = 2 x
recon x, encoded field of view twice the recon one). An undersampled scan
writes only the lines it acquires; its fully sampled central lines carry
``ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING`` (embedded ACS)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmrecon.data.h5io import atomic_path
from fmrecon.data.resize import crop_or_pad
from fmrecon.data.simulate.acquisition import simulate_cardiac_subject
from fmrecon.data.simulate.common import (
    CARDIAC_COILS,
    CARDIAC_FOV_CM,
    CARDIAC_FRAMES,
    CARDIAC_SIZE,
    CARDIAC_SLICES,
    CARDIAC_SUBJECTS,
    CMRX_ACS_LINES,
    IMAGE_SCALE,
    NOISE,
    Progress,
    _check_positive,
    _check_size,
    _rng,
)
from fmrecon.errors import ConfigError
from fmrecon.physics.fft import fft2c, ifft2c
from fmrecon.physics.masks import create_mask

#: noise-adjust readouts written before the image readouts
NOISE_READOUTS = 16
#: slice thickness and gap of the simulated short-axis stack (mm)
SLICE_MM = 8.0
RR_MS = 1000.0  # simulated R-R interval (60 beats per minute)
TICK_MS = 2.5  # Siemens time-stamp tick, as siemens_to_ismrmrd copies it
#: readout dwell time per sample (us), for the header only
DWELL_US = 2.8


def raw_header(
    size: Sequence[int],
    n_slices: int,
    n_frames: int,
    n_coils: int,
    *,
    oversampling: int = 2,
    fov_mm: Sequence[float] = (CARDIAC_FOV_CM * 10.0, CARDIAC_FOV_CM * 10.0),
    patient_id: str = "",
    protocol: str = "cine_sax",
    acceleration: int | None = None,
):
    """An ISMRMRD header (``ismrmrd.xsd.ismrmrdHeader``) of a 2-D Cartesian
    multi-slice cine: recon matrix ``size`` (H, W) over ``fov_mm``, encoded
    readout ``oversampling`` x longer; ``acceleration`` (embedded ACS) adds
    ``<parallelImaging>``."""
    from ismrmrd import xsd

    h, w = (int(s) for s in size)
    fx, fy = (float(v) for v in fov_mm)

    def space(x: int, fov_x: float):
        return xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=x, y=w, z=1),
            fieldOfView_mm=xsd.fieldOfViewMm(x=fov_x, y=fy, z=SLICE_MM),
        )

    def limit(n: int, centre: int = 0):
        return xsd.limitType(minimum=0, maximum=n - 1, center=centre)

    encoding = xsd.encodingType(
        encodedSpace=space(h * oversampling, fx * oversampling),
        reconSpace=space(h, fx),
        encodingLimits=xsd.encodingLimitsType(
            kspace_encoding_step_1=limit(w, w // 2),
            kspace_encoding_step_2=limit(1),
            slice=limit(n_slices),
            phase=limit(n_frames),
            average=limit(1),
            contrast=limit(1),
            repetition=limit(1),
            set=limit(1),
            segment=limit(1),
        ),
        trajectory=xsd.trajectoryType.CARTESIAN,
    )
    if acceleration is not None:
        encoding.parallelImaging = xsd.parallelImagingType(
            accelerationFactor=xsd.accelerationFactorType(
                kspace_encoding_step_1=int(acceleration), kspace_encoding_step_2=1
            ),
            calibrationMode=xsd.calibrationModeType.EMBEDDED,
        )
    return xsd.ismrmrdHeader(
        subjectInformation=xsd.subjectInformationType(patientID=patient_id or None),
        measurementInformation=xsd.measurementInformationType(
            patientPosition=xsd.patientPositionType.HFS, protocolName=protocol
        ),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(
            systemVendor="fmrecon simulation", systemFieldStrength_T=1.5, receiverChannels=n_coils
        ),
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        encoding=[encoding],
        sequenceParameters=xsd.sequenceParametersType(TR=[40.0], TE=[1.5], flipAngle_deg=[60.0]),
    )


def _acquisition(data: np.ndarray, flags: Sequence[int], **idx):
    """One ``ismrmrd.Acquisition`` of a (coils, samples) readout."""
    import ismrmrd

    acq = ismrmrd.Acquisition.from_array(
        np.ascontiguousarray(data, dtype=np.complex64),
        center_sample=data.shape[-1] // 2,
        sample_time_us=DWELL_US,
    )
    for flag in flags:
        acq.set_flag(flag)
    for name, value in idx.items():
        setattr(acq.idx, name, int(value))
    return acq


def write_ismrmrd(
    path: str | Path,
    kspace: np.ndarray,
    header,
    *,
    lines: np.ndarray | None = None,
    acs: np.ndarray | None = None,
    noise: np.ndarray | None = None,
    directions: np.ndarray | None = None,
    centre: Sequence[float] = (0.0, 0.0, 0.0),
) -> Path:
    """Write k-space (T, Z, C, H_enc, W) complex64 (T = cardiac phases, Z =
    slices, H_enc = encoded readout) as an ISMRMRD file, atomically: the
    ``header``, the ``noise`` readouts (N, C, H_enc) flagged as noise
    measurement, then a readout per acquired line, slice by slice, line by
    line, phase by phase. ``lines`` (W,) bool: the lines acquired (default
    all); ``acs`` (W,) bool: the embedded calibration lines among them.
    Geometry: ``directions`` (3, 3), rows = the unit read, phase and slice
    directions in patient coordinates (default the identity: axial), slice
    ``z`` centred at ``centre + (z - (Z - 1) / 2) * SLICE_MM * slice_dir``."""
    import ismrmrd

    t_n, z_n, _, _, w = kspace.shape
    lines = np.ones(w, dtype=bool) if lines is None else np.asarray(lines, dtype=bool)
    acs = np.zeros(w, dtype=bool) if acs is None else np.asarray(acs, dtype=bool)
    acquired = np.nonzero(lines)[0]
    dirs = np.eye(3) if directions is None else np.asarray(directions, dtype=np.float64)
    offsets = (np.arange(z_n) - (z_n - 1) / 2) * SLICE_MM
    where = np.asarray(centre, dtype=np.float64)[None, :] + offsets[:, None] * dirs[2][None, :]
    noise = [] if noise is None else noise
    acqs = [_acquisition(n, [ismrmrd.ACQ_IS_NOISE_MEASUREMENT]) for n in noise]
    for z in range(z_n):
        for j, ky in enumerate(acquired):
            for t in range(t_n):
                flags = []
                if j == 0:
                    flags += [ismrmrd.ACQ_FIRST_IN_SLICE, ismrmrd.ACQ_FIRST_IN_PHASE]
                if j == len(acquired) - 1:
                    flags += [ismrmrd.ACQ_LAST_IN_SLICE, ismrmrd.ACQ_LAST_IN_PHASE]
                if acs[ky]:
                    flags += [
                        ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,
                        ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING,
                    ]
                acq = _acquisition(
                    kspace[t, z, :, :, ky], flags, kspace_encode_step_1=ky, slice=z, phase=t
                )
                acq.scan_counter = len(acqs)
                acq.acquisition_time_stamp = len(acqs)  # 2.5 ms ticks, as Siemens counts
                # trigger delay of cardiac phase t (2.5 ms ticks): phases evenly over a
                # 1000 ms R-R interval
                acq.physiology_time_stamp[0] = round(t * RR_MS / t_n / TICK_MS)
                for k in range(3):
                    acq.read_dir[k], acq.phase_dir[k], acq.slice_dir[k] = dirs[:, k]
                    acq.position[k] = where[z, k]
                acqs.append(acq)
    acqs[-1].set_flag(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
    path = Path(path)
    with atomic_path(path) as tmp:
        with ismrmrd.File(str(tmp), "w") as f:
            f["dataset"].header = header
            f["dataset"].acquisitions = acqs
    return path


def central_run(lines: np.ndarray) -> np.ndarray:
    """The contiguous run of acquired lines (W,) around the centre line W // 2
    (the fully sampled calibration region of a mask)."""
    lines = np.asarray(lines, dtype=bool)
    run = np.zeros_like(lines)
    c = lines.size // 2
    if not lines[c]:
        return run
    lo, hi = c, c
    while lo > 0 and lines[lo - 1]:
        lo -= 1
    while hi < lines.size - 1 and lines[hi + 1]:
        hi += 1
    run[lo : hi + 1] = True
    return run


def oversampled_kspace(kspace: np.ndarray, factor: int) -> np.ndarray:
    """k-space (..., H, W) of the same coil images in a field of view ``factor``
    times longer along the readout (the outer part empty): (..., factor H, W)."""
    if factor == 1:
        return np.asarray(kspace, dtype=np.complex64)
    h, w = kspace.shape[-2:]
    return fft2c(crop_or_pad(ifft2c(kspace), (factor * h, w))).astype(np.complex64)


def simulate_ismrmrd(
    out_dir: str | Path,
    n_subjects: int = CARDIAC_SUBJECTS,
    seed: int = 0,
    *,
    size: Sequence[int] = CARDIAC_SIZE,
    n_slices: int = CARDIAC_SLICES,
    n_frames: int = CARDIAC_FRAMES,
    n_coils: int = CARDIAC_COILS,
    noise: float = NOISE,
    oversampling: int = 2,
    accelerations: Sequence[int] = (),
    progress: Progress = None,
) -> list[Path]:
    """Write ``n_subjects`` short-axis cine scans as ISMRMRD raw data:
    ``out_dir/ismrmrd/FullSample/P001_cine_sax.h5`` (every line) and, for each
    R in ``accelerations``, ``out_dir/ismrmrd/AccFactorRR/P001_cine_sax.h5``
    (every R-th line and 24 central lines, the CMRxRecon 2023 pattern, as an
    accelerated scan acquires them). ``size`` (H, W) is the image matrix;
    the readout is recorded ``oversampling`` x longer. The phantom and coils
    are the cardiac simulator's; complex Gaussian noise of std ``noise`` x
    IMAGE_SCALE per sample, also in the noise-adjust readouts."""
    h, w = _check_size(size, "ismrmrd")
    _rng(seed)  # validates the seed
    n_subjects = _check_positive(n_subjects, "subjects")
    n_slices = _check_positive(n_slices, "slices")
    n_frames = _check_positive(n_frames, "frames")
    n_coils = _check_positive(n_coils, "coils")
    oversampling = _check_positive(oversampling, "readout oversampling")
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    patterns = {}
    for r in accelerations:
        if int(r) != r or not 2 <= r <= w // 2:
            raise ConfigError(f"acceleration must be an integer in 2..{w // 2}, got {r!r}")
        patterns[int(r)] = create_mask("cmrxrecon-uniform", int(r))((1, w))[0].astype(bool)
    if patterns and w < CMRX_ACS_LINES + 2:
        raise ConfigError(f"W = {w} too small for {CMRX_ACS_LINES} ACS lines")
    base = Path(out_dir) / "ismrmrd"
    fov = (CARDIAC_FOV_CM * 10.0, CARDIAC_FOV_CM * 10.0 * w / h)  # square pixels
    written: list[Path] = []
    for i in range(n_subjects):
        subject = f"P{i + 1:03d}"
        sim = simulate_cardiac_subject(
            i, seed, size=(h, w), n_slices=n_slices, n_frames=n_frames, n_coils=n_coils, noise=0.0
        )
        kspace = oversampled_kspace(sim.pop("kspace"), oversampling)
        rng = _rng(seed, "ismrmrd", i, "noise")
        sigma = np.float32(noise * IMAGE_SCALE / np.sqrt(2.0))
        noisy = (rng.standard_normal((*kspace.shape, 2), dtype=np.float32) * sigma).view(
            np.complex64
        )[..., 0]
        kspace += noisy
        adjust = rng.standard_normal((NOISE_READOUTS, n_coils, h * oversampling, 2), np.float32)
        adjust = (adjust * sigma).view(np.complex64)[..., 0]
        common = dict(oversampling=oversampling, fov_mm=fov, patient_id=subject)
        runs = [("FullSample", None, None)] + [
            (f"AccFactor{r:02d}", r, lines) for r, lines in patterns.items()
        ]
        for folder, r, lines in runs:
            header = raw_header((h, w), n_slices, n_frames, n_coils, acceleration=r, **common)
            path = base / folder / f"{subject}_cine_sax.h5"
            acs = None if lines is None else central_run(lines)
            write_ismrmrd(path, kspace, header, lines=lines, acs=acs, noise=adjust)
            written.append(path)
            if progress is not None:
                progress(path)
    return written
