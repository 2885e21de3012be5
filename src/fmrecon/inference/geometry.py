"""Where the pixels of a reconstructed volume are: voxel size and a patient
coordinate frame shared by the NIfTI and DICOM outputs.

The size comes from the file where it is known (fastMRI: the ISMRMRD
header's ``reconSpace`` field of view over its matrix, x = readout = H,
y = phase encode = W, z = slice thickness; ISMRMRD raw data: the same of
``encodedSpace``, slice spacing from the acquisitions' slice positions) and
is otherwise assumed, 1 mm, and said so (CMRxRecon ``.mat`` files carry no
field of view). The position and orientation are not in the CMRxRecon and
fastMRI formats (raw data has them in its acquisition headers,
:func:`fmrecon.data.ismrmrd_raw.raw_geometry`, not used here yet), so both
outputs use one stated convention: DICOM ``ImageOrientationPatient`` ``[1, 0, 0, 0, 1, 0]``
(rows = H along +y, columns = W along +x, LPS), slices along +z, the volume
centred on the origin; the NIfTI affine is the same geometry in RAS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fmrecon.data.h5io import open_h5
from fmrecon.data.ismrmrd_header import field_of_view_mm, parse_header
from fmrecon.data.ismrmrd_raw import raw_geometry
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import DataError

DEFAULT_SPACING_MM = 1.0
#: DICOM ImageOrientationPatient of every output: row direction, column direction (LPS)
ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


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
    return Geometry((dx, dy, spacing), thickness, info.n_slices, True, note)


def slice_positions(geometry: Geometry, slices: Sequence[int]) -> np.ndarray:
    """z (mm) of each slice index, the acquisition's slices centred on 0."""
    centre = (geometry.n_slices - 1) / 2
    return (np.asarray(slices, dtype=np.float64) - centre) * geometry.spacing[2]


def first_pixel(geometry: Geometry, h: int, w: int) -> tuple[float, float]:
    """LPS (x, y) of pixel (row 0, column 0) of an (h, w) image centred on 0."""
    dr, dc = geometry.spacing[:2]
    return -(w - 1) / 2 * dc, -(h - 1) / 2 * dr


def image_positions(geometry: Geometry, h: int, w: int, slices: Sequence[int]) -> np.ndarray:
    """DICOM ImagePositionPatient (LPS, mm) of each slice: (len(slices), 3)."""
    x0, y0 = first_pixel(geometry, h, w)
    z = slice_positions(geometry, slices)
    return np.stack([np.full_like(z, x0), np.full_like(z, y0), z], axis=1)


def nifti_affine(geometry: Geometry, h: int, w: int, slices: Sequence[int]) -> np.ndarray:
    """The RAS affine of a NIfTI array (H, W, Z[, T]) holding ``slices``
    (contiguous, ascending): the DICOM geometry above with x, y negated."""
    slices = [int(s) for s in slices]
    if not slices or slices != list(range(slices[0], slices[0] + len(slices))):
        raise DataError(f"a NIfTI volume needs contiguous ascending slices, got {slices}")
    dr, dc, dz = geometry.spacing
    x0, y0 = first_pixel(geometry, h, w)
    affine = np.zeros((4, 4))
    affine[0, 1] = -dc  # column index j -> LPS +x -> RAS -x
    affine[1, 0] = -dr  # row index i -> LPS +y -> RAS -y
    affine[2, 2] = dz
    affine[:3, 3] = (-x0, -y0, slice_positions(geometry, slices[:1])[0])
    affine[3, 3] = 1.0
    return affine
