"""Simulated data sets written in the real file formats: CMRxRecon 2023
cine ``.mat`` files with the official masks, and fastMRI multi-coil brain
``.h5`` files with an ISMRMRD header."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from fmrecon.data.h5io import atomic_path, write_mat73
from fmrecon.data.simulate.acquisition import simulate_brain_volume, simulate_cardiac_subject
from fmrecon.data.simulate.brain import mni_template
from fmrecon.data.simulate.common import (
    ACCELERATIONS,
    BRAIN_COILS,
    BRAIN_FOV_MM,
    BRAIN_SIZE,
    BRAIN_SLICES,
    BRAIN_VOLUMES,
    CARDIAC_COILS,
    CARDIAC_FRAMES,
    CARDIAC_SIZE,
    CARDIAC_SLICES,
    CARDIAC_SUBJECTS,
    CMRX_ACS_LINES,
    NOISE,
    Progress,
    _check_positive,
    _check_size,
    _rng,
)
from fmrecon.errors import ConfigError
from fmrecon.physics.masks import create_mask


def cmrxrecon_mask(nx: int, ny: int, acceleration: int) -> np.ndarray:
    """The official CMRxRecon 2023 mask as its mask file stores it: MATLAB
    order (kx, ky), float64 (see ``fmrecon.physics.masks.CMRxReconUniformMask``)."""
    return create_mask("cmrxrecon-uniform", acceleration)((nx, ny)).astype(np.float64)


def _matlab_view(stored: np.ndarray) -> np.ndarray:
    """A C-contiguous array in HDF5 order (what the file stores) as a view in
    MATLAB order (all axes reversed), so write_mat73 stores it without a copy."""
    return stored.transpose(tuple(range(stored.ndim))[::-1])


def simulate_cmrxrecon(
    out_dir: str | Path,
    n_subjects: int = CARDIAC_SUBJECTS,
    seed: int = 0,
    *,
    size: Sequence[int] = CARDIAC_SIZE,
    n_slices: int = CARDIAC_SLICES,
    n_frames: int = CARDIAC_FRAMES,
    n_coils: int = CARDIAC_COILS,
    accelerations: Sequence[int] = ACCELERATIONS,
    noise: float = NOISE,
    lax: bool = True,
    undersampled: bool = False,
    progress: Progress = None,
) -> list[Path]:
    """Write ``n_subjects`` cine subjects in the CMRxRecon 2023 layout under
    ``out_dir/MultiCoil/Cine/TrainingSet``: ``FullSample/P001/cine_sax.mat``
    (key ``kspace_full``, MATLAB dims (kx, ky, coil, slice, time) complex64,
    kx = size[0], ky = size[1]) and, for each R, ``AccFactorRR/P001/cine_sax.mat``
    (key ``kspace_subRR`` = kspace_full * mask, only with ``undersampled``) and
    ``cine_sax_mask.mat`` (key ``maskRR``, (kx, ky) float64); the same for ``cine_lax`` (3 long-axis
    views) when ``lax``. Returns the paths written; ``progress(path)`` is
    called after each file."""
    h, w = _check_size(size, "cmrxrecon")
    _rng(seed)  # validates the seed
    n_subjects = _check_positive(n_subjects, "subjects")
    n_slices = _check_positive(n_slices, "slices")
    n_frames = _check_positive(n_frames, "frames")
    n_coils = _check_positive(n_coils, "coils")
    accelerations = _check_accelerations(accelerations, w)
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    base = Path(out_dir) / "MultiCoil" / "Cine" / "TrainingSet"
    masks = {r: cmrxrecon_mask(h, w, r) for r in accelerations}
    written: list[Path] = []

    def emit(path: Path, arrays: dict, compression=None) -> None:
        write_mat73(path, arrays, compression=compression)
        written.append(path)
        if progress is not None:
            progress(path)

    for i in range(n_subjects):
        subject = f"P{i + 1:03d}"
        for view in ("sax", "lax") if lax else ("sax",):
            sim = simulate_cardiac_subject(
                i,
                seed,
                size=(h, w),
                n_slices=n_slices,
                n_frames=n_frames,
                n_coils=n_coils,
                noise=noise,
                view=view,
            )
            # HDF5 order (T, Z, C, ky, kx) = MATLAB (kx, ky, coil, slice, time) reversed
            full = np.ascontiguousarray(np.swapaxes(sim.pop("kspace"), -1, -2))
            emit(
                base / "FullSample" / subject / f"cine_{view}.mat",
                {"kspace_full": _matlab_view(full)},
            )
            for r in accelerations:
                sub = (
                    full * masks[r].T.astype(np.float32) if undersampled else None
                )  # mask (kx, ky) -> (ky, kx)
                folder = base / f"AccFactor{r:02d}" / subject
                # MATLAB's save -v7.3 compresses; the masked copies shrink ~R-fold
                if undersampled:
                    emit(
                        folder / f"cine_{view}.mat",
                        {f"kspace_sub{r:02d}": _matlab_view(sub)},
                        compression="gzip",
                    )
                del sub
                emit(folder / f"cine_{view}_mask.mat", {f"mask{r:02d}": masks[r]}, "gzip")
    return written


def _check_accelerations(accelerations: Sequence[int], ny: int) -> tuple[int, ...]:
    out = []
    for r in accelerations:
        if int(r) != r or not 2 <= r <= 99:
            raise ConfigError(f"acceleration must be an integer in 2..99, got {r!r}")
        out.append(int(r))
    if ny < CMRX_ACS_LINES + 2:
        raise ConfigError(f"ky = {ny} too small for {CMRX_ACS_LINES} ACS lines")
    return tuple(dict.fromkeys(out))


_ISMRMRD = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
 <subjectInformation><patientID>{pid}</patientID></subjectInformation>
 <acquisitionSystemInformation>
  <systemVendor>fmrecon simulation</systemVendor>
  <receiverChannels>{coils}</receiverChannels>
 </acquisitionSystemInformation>
 <experimentalConditions><H1resonanceFrequency_Hz>123000000</H1resonanceFrequency_Hz>
 </experimentalConditions>
 <encoding>
  <encodedSpace>
   <matrixSize><x>{H}</x><y>{W}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{fov_h:.1f}</x><y>{fov_w:.1f}</y><z>5.0</z></fieldOfView_mm>
  </encodedSpace>
  <reconSpace>
   <matrixSize><x>{h}</x><y>{W}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{fov_r:.1f}</x><y>{fov_w:.1f}</y><z>5.0</z></fieldOfView_mm>
  </reconSpace>
  <trajectory>cartesian</trajectory>
  <encodingLimits>
   <kspace_encoding_step_1><minimum>0</minimum><maximum>{wmax}</maximum><center>{wc}</center>
   </kspace_encoding_step_1>
   <kspace_encoding_step_2><minimum>0</minimum><maximum>0</maximum><center>0</center>
   </kspace_encoding_step_2>
   <slice><minimum>0</minimum><maximum>{zmax}</maximum><center>{zc}</center></slice>
  </encodingLimits>
 </encoding>
 <sequenceParameters><TR>250</TR><TE>2.64</TE><flipAngle_deg>70</flipAngle_deg>
 </sequenceParameters>
</ismrmrdHeader>
"""


def ismrmrd_header(kspace_shape: Sequence[int], patient_id: str = "") -> str:
    """A minimal ISMRMRD XML header for fastMRI k-space (slices, coils, H, W)
    with 2x readout oversampling (reconSpace (H/2, W))."""
    z, coils, hh, ww = (int(s) for s in kspace_shape)
    pixel = BRAIN_FOV_MM / (hh // 2)
    return _ISMRMRD.format(
        pid=patient_id,
        coils=coils,
        H=hh,
        W=ww,
        h=hh // 2,
        fov_h=pixel * hh,
        fov_r=pixel * (hh // 2),
        fov_w=pixel * ww,
        wmax=ww - 1,
        wc=ww // 2,
        zmax=z - 1,
        zc=z // 2,
    )


def simulate_fastmri_brain(
    out_dir: str | Path,
    n_volumes: int = BRAIN_VOLUMES,
    seed: int = 0,
    *,
    size: Sequence[int] = BRAIN_SIZE,
    n_slices: int = BRAIN_SLICES,
    n_coils: int = BRAIN_COILS,
    noise: float = NOISE,
    folder: str = "multicoil_val",
    progress: Progress = None,
    fov_fraction: float = 1.0,
) -> list[Path]:
    """Write ``n_volumes`` axial T1 brain volumes as fastMRI multi-coil files
    ``out_dir/multicoil_val/file_brain_AXT1_sim_0001.h5``: ``kspace`` (slices,
    coils, H, W) complex64 with H = size[0] including 2x readout
    oversampling, ``reconstruction_rss`` (slices, H/2, W) float32, ``ismrmrd_header``,
    attrs ``max``, ``norm``, ``acquisition`` = "AXT1", ``patient_id``.
    ``fov_fraction`` < 1: a phase-encode field of view smaller than the head
    (see :func:`simulate_brain_volume`)."""
    h, w = _check_size(size, "fastmri")
    _rng(seed)  # validates the seed
    if h % 2:
        raise ConfigError(f"fastmri: H = {h} must be even (2x readout oversampling)")
    n_volumes = _check_positive(n_volumes, "subjects")
    n_slices = _check_positive(n_slices, "slices")
    n_coils = _check_positive(n_coils, "coils")
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    mni_template()  # fail early, with a DataError, if the template is missing
    written: list[Path] = []
    for i in range(n_volumes):
        sim = simulate_brain_volume(
            i,
            seed,
            size=(h, w),
            n_slices=n_slices,
            n_coils=n_coils,
            noise=noise,
            fov_fraction=fov_fraction,
        )
        target = sim["target"]
        pid = hashlib.sha256(f"fmrecon-sim-brain-{seed}-{i}".encode()).hexdigest()
        path = Path(out_dir) / folder / f"file_brain_AXT1_sim_{i + 1:04d}.h5"
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=sim["kspace"])
            f.create_dataset("reconstruction_rss", data=target)
            f.create_dataset(
                "ismrmrd_header", data=np.bytes_(ismrmrd_header(sim["kspace"].shape, pid))
            )
            f.attrs["max"] = float(target.max())
            f.attrs["norm"] = float(np.linalg.norm(target))
            f.attrs["acquisition"] = "AXT1"
            f.attrs["patient_id"] = pid
        written.append(path)
        if progress is not None:
            progress(path)
    return written
