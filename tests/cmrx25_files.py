"""CMRxRecon 2025 files written by hand in the real formats (MATLAB v7.3 = HDF5
with the axes reversed and complex as real/imag compounds, as ``save -v7.3``
writes them; MATLAB v5/v7 through ``scipy.io.savemat``, as plain ``save``
writes them), in the layout of ``Submission/Format_TaskR1.txt``, so the 2025
reader is tested against known content independently of the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import savemat

from conftest import random_kspace
from fmrecon.data.h5io import write_mat73


def full_path(root: Path, modality: str, center: str, vendor: str, patient: str, name: str):
    return (
        root
        / "MultiCoil"
        / modality
        / "TrainingSet"
        / "FullSample"
        / center
        / vendor
        / patient
        / f"{name}.mat"
    )


def kus_path(root, task, modality, center, vendor, patient, name, pattern, r):
    return (
        root
        / task
        / "MultiCoil"
        / modality
        / "ValidationSet"
        / f"UnderSample_{task}"
        / center
        / vendor
        / patient
        / f"{name}_kus_{pattern}{r}.mat"
    )


def mask_path(root, task, modality, center, vendor, patient, name, pattern, r):
    return (
        root
        / task
        / "MultiCoil"
        / modality
        / "ValidationSet"
        / f"Mask_{task}"
        / center
        / vendor
        / patient
        / f"{name}_mask_{pattern}{r}.mat"
    )


def write_mat(path: Path, arrays: dict, v5: bool = False) -> Path:
    """``arrays`` in MATLAB order; v7.3 (HDF5) or v5/v7 (compressed, as MATLAB's v7)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if v5:
        with open(path, "wb") as fh:
            savemat(fh, arrays, format="5", do_compression=True)
    else:
        write_mat73(path, arrays)
    return path


def write_kus(
    root,
    task,
    modality,
    center,
    vendor,
    patient,
    name,
    pattern,
    r,
    full,
    mask,
    v5=False,
    mask_v5=False,
):
    """The undersampled file ``kus = full .* mask`` (mask (nx, ny) or (nx, ny, nt),
    broadcast as ``Format_TaskR1.txt`` part 3 does) and its mask file; returns both paths."""
    m = np.asarray(mask, dtype=np.float64)
    full = np.asarray(full)
    # MATLAB broadcasts from the leading axes: (nx, ny) -> (nx, ny, 1, 1[, 1]);
    # k-t (nx, ny, nt) -> reshape(mask, [nx, ny, 1, 1, nt])
    if m.ndim == 2:
        m5 = m.reshape(m.shape + (1,) * (full.ndim - 2))
    else:
        m5 = m[:, :, None, None, :]
    kus = (full * m5).astype(np.complex64)
    kp = write_mat(
        kus_path(root, task, modality, center, vendor, patient, name, pattern, r), {"kus": kus}, v5
    )
    mp = write_mat(
        mask_path(root, task, modality, center, vendor, patient, name, pattern, r),
        {"mask": m},
        mask_v5,
    )
    return kp, mp


def line_mask(nx: int, ny: int, nt: int | None, step: int = 4, acs: int = 4) -> np.ndarray:
    """Every ``step``-th ky line plus ``acs`` central ones, shifted by one line per
    frame for k-t masks: (nx, ny) or (nx, ny, nt) float64."""
    frames = 1 if nt is None else nt
    m = np.zeros((nx, ny, frames))
    for t in range(frames):
        m[:, (t % step) :: step, t] = 1
        m[:, ny // 2 - acs // 2 : ny // 2 + acs // 2, t] = 1
    return m[..., 0] if nt is None else m


def small_2025_tree(root: Path) -> dict:
    """Training files of two centers (Center002 has P004 under two vendors),
    4-D and 5-D modalities, v7.3 and v5; returns {label: (path, MATLAB array)}."""
    files = {}
    s30, u30, s15 = "Siemens_30T_Vida", "UIH_30T_umr880", "Siemens_15T_Aera"
    specs = [
        ("cine_a", "Cine", "Center001", s30, "P001", "cine_sax", (32, 24, 3, 3, 4), False),
        ("cine_b", "Cine", "Center002", u30, "P004", "cine_lax_4ch", (36, 28, 2, 1, 5), False),
        ("cine_c", "Cine", "Center002", s15, "P004", "cine_sax", (32, 24, 2, 2, 4), True),
        ("t1map", "Mapping", "Center001", s30, "P001", "T1map", (32, 24, 2, 2, 9), False),
        ("bb", "BlackBlood", "Center001", s30, "P001", "blackblood", (32, 24, 3, 2), False),
        ("t2w", "T2w", "Center002", u30, "P004", "T2w", (32, 24, 2, 3), True),
    ]
    for i, (label, mod, c, v, p, name, shape, v5) in enumerate(specs):
        arr = random_kspace(shape, i)
        files[label] = (write_mat(full_path(root, mod, c, v, p, name), {"kspace": arr}, v5), arr)
    return files
