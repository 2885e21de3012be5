"""Where the pixels of a reconstructed volume are: voxel size and a patient
coordinate frame shared by the NIfTI and DICOM outputs.

The size comes from the file where it is known (fastMRI: the ISMRMRD
header's ``reconSpace`` field of view over its matrix, x = readout = H,
y = phase encode = W, z = slice thickness; ISMRMRD raw data: the same of
``encodedSpace``, slice spacing from the acquisitions' slice positions) and
is otherwise assumed, 1 mm, and said so (CMRxRecon ``.mat`` files carry no
field of view). Position and orientation: ISMRMRD raw data carry them in
every acquisition header (:func:`fmrecon.data.ismrmrd_raw.raw_geometry`:
each slice's ``position``, the centre of its field of view, and the unit
vectors ``read_dir``, ``phase_dir`` in the patient coordinate system, which
ISMRMRD defines as DICOM's, LPS); our images are (H = readout, W = phase
encode), so DICOM ``ImageOrientationPatient`` is (row direction = along W =
``phase_dir``, column direction = along H = ``read_dir``) and the slice
centre sits at the centre of the pixel grid. The CMRxRecon and fastMRI
formats carry neither, so their outputs use one stated convention:
``ImageOrientationPatient`` ``[1, 0, 0, 0, 1, 0]`` (rows = H along +y,
columns = W along +x, LPS), slices along +z, the volume centred on the
origin. The NIfTI affine is the same geometry in RAS.

What the DICOM series also says about the acquisition (:class:`Acquisition`):
patient position, TR, TE and flip angle from the ISMRMRD header where it has
them, and for cine the trigger time of each frame: raw data's physiology time
stamps (the trigger delay, Siemens' 2.5 ms ticks) where recorded, else frames
evenly spaced over an assumed 1000 ms R-R interval (CMRxRecon ``.mat`` files
carry no timing), stated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from fmrecon.data.h5io import open_h5
from fmrecon.data.ismrmrd_header import field_of_view_mm, parse_header
from fmrecon.data.ismrmrd_raw import raw_geometry
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import DataError
from fmrecon.metrics import is_mapping_modality

DEFAULT_SPACING_MM = 1.0
#: DICOM ImageOrientationPatient where the input has none: row direction, column direction (LPS)
ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: R-R interval assumed for cine frames without timing (60 beats per minute)
ASSUMED_RR_MS = 1000.0
#: ISMRMRD physiology time-stamp tick: Siemens' 2.5 ms (siemens_to_ismrmrd copies the MDH's)
TICK_MS = 2.5


@dataclass(frozen=True)
class Geometry:
    """Voxel geometry in mm: ``spacing`` = (between rows (H), between
    columns (W), between slices), ``thickness`` of a slice, ``n_slices`` of
    the acquisition (slice positions are centred on it). ``known`` is False
    when the size is assumed; ``note`` says where it comes from."""

    spacing: tuple[float, float, float]
    thickness: float
    n_slices: int
    known: bool
    note: str
    #: DICOM ImageOrientationPatient (row direction = along W, column direction = along H)
    orientation: tuple[float, ...] = ORIENTATION
    #: LPS centre (mm) of every slice of the acquisition, by slice index; None: the
    #: stated convention (centred on the origin, slices along the normal)
    centres: tuple[tuple[float, float, float], ...] | None = None


@dataclass(frozen=True)
class Acquisition:
    """What the DICOM output says about how the images were acquired: from the
    ISMRMRD header where present, else empty (DICOM Type 2: known to be unknown)."""

    patient_position: str = ""  # HFS, FFS, ...
    tr_ms: float | None = None
    te_ms: float | None = None
    flip_angle_deg: float | None = None
    temporal: bool = False  # frames are cardiac phases (cine)
    trigger_ms: tuple[float, ...] | None = None  # per source frame, for temporal frames
    timing_note: str = ""


def volume_geometry(info: VolumeInfo) -> Geometry:
    """The geometry of ``info``'s images: from the ISMRMRD header of a fastMRI
    or raw data file when it gives a field of view, else 1 mm voxels, stated."""
    if info.format == "ismrmrd":
        found = _raw_geometry(info)
        if found is not None:
            return found
        note = "no field of view in the ISMRMRD header: 1 mm voxels assumed"
    elif info.format == "fastmri":
        found = _ismrmrd_geometry(info)
        if found is not None:
            return found
        note = "no field of view in the ISMRMRD header: 1 mm voxels assumed"
    else:
        note = "CMRxRecon .mat files carry no field of view: 1 mm voxels assumed"
    d = DEFAULT_SPACING_MM
    return Geometry((d, d, d), d, info.n_slices, False, note)


def _ismrmrd_geometry(info: VolumeInfo) -> Geometry | None:
    """Pixel size = field of view / matrix of reconSpace (else encodedSpace,
    whose readout oversampling doubles both and leaves the size unchanged)."""
    with open_h5(info.path) as f:
        if "ismrmrd_header" not in f:
            return None
        raw = f["ismrmrd_header"][()]
    header = parse_header(raw)
    if header is None:
        return None
    for space, matrix in (
        ("reconSpace", header.recon_matrix),
        ("encodedSpace", header.encoded_matrix),
    ):
        fov = field_of_view_mm(raw, space)
        if fov is None or None in fov[:2] or not matrix.x or not matrix.y:
            continue
        dx, dy = fov[0] / matrix.x, fov[1] / matrix.y
        thickness = fov[2]
        note = (
            f"ISMRMRD {space}: field of view {fov[0]:g} x {fov[1]:g} mm over "
            f"{matrix.x} x {matrix.y}"
        )
        if thickness is None:
            thickness = DEFAULT_SPACING_MM
            note += "; no slice thickness in the header: 1 mm assumed"
        else:
            note += f", slice thickness {thickness:g} mm"
        note += "; slice spacing = thickness (the header gives no gap)"
        return Geometry((dx, dy, thickness), thickness, info.n_slices, True, note)
    return None


def _raw_geometry(info: VolumeInfo) -> Geometry | None:
    """Raw data: pixel size = encodedSpace field of view / matrix (the grid of
    the reconstructed images; readout oversampling halves both), slice
    thickness = its z, slice spacing = the distance between the slice centres
    of the acquisition headers (else the thickness)."""
    raw = raw_geometry(info)
    fov, matrix = raw.encoded_fov_mm, raw.encoded_matrix
    if fov is None or fov.x is None or fov.y is None or not matrix.x or not matrix.y:
        return None
    dx, dy = fov.x / matrix.x, fov.y / matrix.y
    note = f"ISMRMRD encodedSpace: field of view {fov.x:g} x {fov.y:g} mm over "
    note += f"{matrix.x} x {matrix.y}"
    thickness = fov.z
    if thickness is None:
        thickness = DEFAULT_SPACING_MM
        note += "; no slice thickness in the header: 1 mm assumed"
    else:
        note += f", slice thickness {thickness:g} mm"
    centres = np.array([g.position for g in raw.slices], dtype=np.float64)
    gaps = np.linalg.norm(np.diff(centres, axis=0), axis=1) if len(centres) > 1 else []
    if len(gaps) and np.all(gaps > 0):
        spacing = float(np.median(gaps))
        note += f"; slice spacing {spacing:g} mm from the slice positions"
    else:
        spacing = thickness
        note += "; slice spacing = thickness (no slice positions in the data)"
    orientation, placed = _raw_orientation(raw.slices)
    if placed:
        note += "; position and orientation from the acquisition headers"
    else:
        note += "; no slice orientation in the data: the axial convention, centred on 0"
    return Geometry(
        (dx, dy, spacing),
        thickness,
        info.n_slices,
        True,
        note,
        orientation=orientation,
        centres=tuple(tuple(c) for c in centres.tolist()) if placed else None,
    )


def _raw_orientation(slices) -> tuple[tuple[float, ...], bool]:
    """(ImageOrientationPatient, True) from the slices' phase_dir (rows) and
    read_dir (columns) when every slice has the same unit, orthogonal pair;
    else (the convention, False)."""
    if not slices:
        return ORIENTATION, False
    pairs = np.array([g.phase_dir + g.read_dir for g in slices], dtype=np.float64)
    row, col = pairs[0, :3], pairs[0, 3:]
    unit = abs(np.linalg.norm(row) - 1) < 1e-3 and abs(np.linalg.norm(col) - 1) < 1e-3
    # the headers store float32 direction cosines: 1e-3 is far above their rounding
    same = np.allclose(pairs, pairs[0], atol=1e-3)
    if not (unit and same and abs(float(row @ col)) < 1e-3):
        return ORIENTATION, False
    return tuple(float(v) for v in np.concatenate([row, col])), True


def volume_acquisition(info: VolumeInfo) -> Acquisition:
    """The :class:`Acquisition` of ``info``: ISMRMRD header values (fastMRI's
    ``ismrmrd_header``, raw data's ``xml``), and cine frame timing."""
    if info.format == "ismrmrd":
        raw = raw_geometry(info)
        acq = Acquisition(raw.patient_position or "", raw.tr_ms, raw.te_ms, raw.flip_angle_deg)
        if not raw.cardiac_phases:
            return acq
        if raw.trigger_ticks is not None:
            times = tuple(t * TICK_MS for t in raw.trigger_ticks)
            note = "trigger times from the physiology time stamps (2.5 ms ticks)"
            return replace(acq, temporal=True, trigger_ms=times, timing_note=note)
        return replace(acq, temporal=True, **_even_timing(info.n_frames))
    if info.format == "fastmri":
        with open_h5(info.path) as f:
            header = parse_header(f["ismrmrd_header"][()]) if "ismrmrd_header" in f else None
        if header is None:
            return Acquisition()
        return Acquisition(
            header.patient_position or "", header.tr_ms, header.te_ms, header.flip_angle_deg
        )
    if info.n_frames > 1 and not is_mapping_modality(info.modality):
        return Acquisition(temporal=True, **_even_timing(info.n_frames))
    return Acquisition()


def _even_timing(n_frames: int) -> dict:
    step = ASSUMED_RR_MS / n_frames
    return {
        "trigger_ms": tuple(t * step for t in range(n_frames)),
        "timing_note": f"trigger times ASSUMED: the file has no frame timing; frames evenly "
        f"spaced over a {ASSUMED_RR_MS:g} ms R-R interval ({step:.4g} ms apart)",
    }


def slice_centres(geometry: Geometry, slices: Sequence[int]) -> np.ndarray:
    """LPS centre (mm) of each slice index: (len(slices), 3). The convention:
    the acquisition's slices centred on 0 along the slice normal."""
    if geometry.centres is not None:
        return np.array([geometry.centres[int(z)] for z in slices], dtype=np.float64)
    centre = (geometry.n_slices - 1) / 2
    offsets = (np.asarray(slices, dtype=np.float64) - centre) * geometry.spacing[2]
    return offsets[:, None] * slice_normal(geometry)[None, :]


def slice_normal(geometry: Geometry) -> np.ndarray:
    """The unit normal of the slices: row direction x column direction (LPS)."""
    o = np.asarray(geometry.orientation, dtype=np.float64)
    return np.cross(o[:3], o[3:])


def image_positions(geometry: Geometry, h: int, w: int, slices: Sequence[int]) -> np.ndarray:
    """DICOM ImagePositionPatient (LPS, mm) of each slice, the centre of pixel
    (row 0, column 0): the slice centre less half the grid along the row
    direction (W) and the column direction (H). (len(slices), 3)."""
    o = np.asarray(geometry.orientation, dtype=np.float64)
    dr, dc = geometry.spacing[:2]
    shift = (w - 1) / 2 * dc * o[:3] + (h - 1) / 2 * dr * o[3:]
    return slice_centres(geometry, slices) - shift[None, :]


def nifti_affine(geometry: Geometry, h: int, w: int, slices: Sequence[int]) -> np.ndarray:
    """The RAS affine of a NIfTI array (H, W, Z[, T]) holding ``slices``
    (contiguous, ascending): the DICOM geometry above with x, y negated
    (index i along H = column direction, j along W = row direction, k from
    one slice's position to the next)."""
    slices = [int(s) for s in slices]
    if not slices or slices != list(range(slices[0], slices[0] + len(slices))):
        raise DataError(f"a NIfTI volume needs contiguous ascending slices, got {slices}")
    dr, dc, dz = geometry.spacing
    o = np.asarray(geometry.orientation, dtype=np.float64)
    positions = image_positions(geometry, h, w, slices)
    step = positions[1] - positions[0] if len(slices) > 1 else slice_normal(geometry) * dz
    affine = np.eye(4)
    affine[:3, 0] = o[3:] * dr
    affine[:3, 1] = o[:3] * dc
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    affine[:2] *= -1  # LPS -> RAS
    return affine
