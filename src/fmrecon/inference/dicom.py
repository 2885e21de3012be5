"""A DICOM series of a reconstructed volume (pydicom): MR Image Storage,
one file per slice and frame, written as a folder atomically.

Pixels are 16-bit unsigned: ``stored = round((image - intercept) / slope)``
over the whole series (one scale, so slices and frames compare), and the
Real World Value Mapping Sequence (0040,9096) gives ``slope`` and
``intercept`` back, so ``stored * slope + intercept`` is the model output to
within ``slope / 2``. No Rescale Slope: the classic MR Image IOD has no
Modality LUT, and the window (0 to the series' 99.5th percentile) is in
stored values. Geometry: :mod:`fmrecon.inference.geometry` (assumed 1 mm
voxels are said so in Image Comments). Derived-image tags name the model and
checkpoint: Image Type DERIVED, Derivation Description, Image Comments.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from fmrecon import __version__
from fmrecon.errors import DataError
from fmrecon.inference.geometry import Acquisition, Geometry, image_positions, slice_normal
from fmrecon.inference.writers import display_max, provenance_line

STORED_MAX = 65535  # uint16


@dataclass(frozen=True)
class Series:
    """What a DICOM series says about its images beyond the pixels."""

    patient_id: str  # CMRxRecon subject (P001) or fastMRI patient_id
    description: str  # Series Description, e.g. "fmrecon zero-filled cine_sax"
    frames: Sequence[int]  # source frame index of each image row (axis 0)
    slices: Sequence[int]  # source slice index of axis 1
    temporal: bool = False  # frames are time points (cine): Temporal Position tags
    study_uid: str | None = None  # shared by the series of one subject; new if None
    series_number: int = 1
    acquisition: Acquisition = Acquisition()  # patient position, TR, TE, trigger times


def new_uid() -> str:
    """A new random DICOM UID, ``2.25.<UUID as an integer>`` (PS3.5 B.2)."""
    from pydicom.uid import generate_uid

    return generate_uid(prefix=None)


def dicom_scale(images: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) mapping [min(0, images.min()), images.max()] onto 0..65535."""
    lo = min(0.0, float(images.min()))
    span = float(images.max()) - lo
    return (span / STORED_MAX if span > 0 else 1.0), lo


def write_dicom_series(
    folder: str | os.PathLike,
    images: np.ndarray,
    geometry: Geometry,
    series: Series,
    attrs: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``images`` (T, Z, H, W) as ``folder/z{slice:03d}_t{frame:03d}.dcm``,
    Instance Number slice-major (all frames of the first slice first), so
    Image Position Patient never decreases. Replaces an earlier series in
    ``folder`` (which may hold only ``.dcm`` files). Returns the files."""
    from pydicom.uid import ExplicitVRLittleEndian

    vol = np.asarray(images, dtype=np.float32)
    nt, nz = len(series.frames), len(series.slices)
    if vol.ndim != 4 or vol.shape[:2] != (nt, nz) or vol.size == 0:
        raise DataError(f"DICOM images must be ({nt}, {nz}, H, W), got shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise DataError(f"{folder}: non-finite pixel values (NaN/Inf)")
    slope, intercept = dicom_scale(vol)
    stored = np.round((vol - intercept) / slope).clip(0, STORED_MAX).astype("<u2")
    shared = _series_tags(vol, geometry, series, attrs or {}, slope, intercept)
    positions = image_positions(geometry, vol.shape[2], vol.shape[3], series.slices)
    locations = positions @ slice_normal(geometry)  # Slice Location: along the normal
    names = []
    with atomic_dir(Path(folder)) as tmp:
        for j, z in enumerate(series.slices):
            for i, t in enumerate(series.frames):
                ds = _instance(shared, j * nt + i + 1, positions[j], locations[j], stored[i, j])
                if series.temporal:
                    ds.TemporalPositionIdentifier = i + 1
                    times = series.acquisition.trigger_ms
                    if times is not None:
                        ds.TriggerTime = _ds(times[t])
                ds.ImageComments = f"{shared['ImageComments']}; slice {z}, frame {t}"
                name = f"z{z:03d}_t{t:03d}.dcm"
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.save_as(tmp / name, enforce_file_format=True)
                names.append(name)
    return [Path(folder) / n for n in names]


def _series_tags(vol, geometry: Geometry, series: Series, attrs, slope, intercept) -> dict:
    """Keyword -> value of the tags every image of the series shares."""
    from pydicom.uid import MRImageStorage

    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    lo = (0.0 - intercept) / slope
    hi = (display_max(vol) - intercept) / slope
    size = "voxel size from the file" if geometry.known else "voxel size ASSUMED"
    comments = f"{size}: {geometry.note}"
    acq = series.acquisition
    if series.temporal and acq.timing_note:
        comments += f"; {acq.timing_note}"
    if "fmrecon_warning" in attrs:
        comments += f"; WARNING: {attrs['fmrecon_warning']}"
    source = attrs.get("fmrecon_source", "")
    derivation = provenance_line(attrs) + (f" from {source}" if source else "")
    if attrs.get("fmrecon_mask"):
        derivation += f", mask {attrs['fmrecon_mask']}"
    tags = {
        "SpecificCharacterSet": "ISO_IR 192",
        "ImageType": ["DERIVED", "PRIMARY", "OTHER"],
        "SOPClassUID": MRImageStorage,
        "StudyDate": date,
        "SeriesDate": date,
        "ContentDate": date,
        "StudyTime": time,
        "SeriesTime": time,
        "ContentTime": time,
        "AccessionNumber": "",
        "Modality": "MR",
        "Manufacturer": "fmrecon",
        "ReferringPhysicianName": "",
        "StudyDescription": "fmrecon reconstruction",
        "SeriesDescription": series.description[:64],
        "DerivationDescription": derivation[:1024],
        "PatientName": series.patient_id[:64],
        "PatientID": series.patient_id[:64],
        "PatientBirthDate": "",
        "PatientSex": "",
        # Type 2 / 2C attributes the standard requires present, empty where unknown
        # (dciodvfy checks them): Laterality (paired body parts), Patient Position
        "Laterality": "",
        "PatientPosition": acq.patient_position,
        "ScanningSequence": "RM",  # research mode: the sequence is not in the input files
        "SequenceVariant": "NONE",
        "ScanOptions": "",
        "MRAcquisitionType": "2D",
        "SliceThickness": _ds(geometry.thickness),
        "RepetitionTime": _ds(acq.tr_ms) if acq.tr_ms is not None else "",
        "EchoTime": _ds(acq.te_ms) if acq.te_ms is not None else "",
        "EchoTrainLength": "",
        "SpacingBetweenSlices": _ds(geometry.spacing[2]),
        "SoftwareVersions": f"fmrecon {__version__}",
        "StudyInstanceUID": series.study_uid or new_uid(),
        "SeriesInstanceUID": new_uid(),
        "StudyID": "",
        "SeriesNumber": series.series_number,
        "FrameOfReferenceUID": new_uid(),
        "PositionReferenceIndicator": "",
        "ImageOrientationPatient": [_ds(v) for v in geometry.orientation],
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "Rows": int(vol.shape[2]),
        "Columns": int(vol.shape[3]),
        "PixelSpacing": [_ds(geometry.spacing[0]), _ds(geometry.spacing[1])],
        "BitsAllocated": 16,
        "BitsStored": 16,
        "HighBit": 15,
        "PixelRepresentation": 0,
        "WindowCenter": _ds((lo + hi) / 2),
        "WindowWidth": _ds(max(hi - lo, 1.0)),
        "ImageComments": comments,
        "RealWorldValueMappingSequence": [_value_mapping(slope, intercept)],
    }
    if acq.flip_angle_deg is not None:
        tags["FlipAngle"] = _ds(acq.flip_angle_deg)
    if series.temporal:
        tags["NumberOfTemporalPositions"] = len(series.frames)
        # cine is ECG-gated: Scan Options CG, the condition of Trigger Time (MR Image module)
        tags["ScanOptions"] = "CG"
    return tags


def _value_mapping(slope: float, intercept: float):
    """A Real World Value Mapping item: stored value -> model output (no unit)."""
    from pydicom.dataset import Dataset

    unit = Dataset()
    unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "1", "UCUM", "no units"
    item = Dataset()
    item.add_new(0x00409216, "US", 0)  # RealWorldValueFirstValueMapped
    item.add_new(0x00409211, "US", STORED_MAX)  # RealWorldValueLastValueMapped
    item.RealWorldValueIntercept = float(intercept)
    item.RealWorldValueSlope = float(slope)
    item.LUTExplanation = "fmrecon model output magnitude"
    item.LUTLabel = "fmrecon"
    item.MeasurementUnitsCodeSequence = [unit]
    return item


def _instance(shared: dict, number: int, position, slice_location: float, pixels: np.ndarray):
    """One image's dataset: the shared tags, a new SOP Instance UID, its
    number, position and pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    for keyword, value in shared.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = new_uid()
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.SliceLocation = _ds(slice_location)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    return ds


def _ds(value: float):
    """A Decimal String of at most 16 characters."""
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


@contextmanager
def atomic_dir(folder: Path):
    """Yield an empty temporary folder beside ``folder``; on success it
    replaces ``folder`` (an earlier series: ``.dcm`` files only, else
    DataError), so no half-written series stays under the final name."""
    check_series_folder(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_series_folder(folder: Path) -> None:
    """A DICOM output folder may be replaced only if it holds nothing but
    ``.dcm`` files (an earlier series): a one-line DataError otherwise."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DataError(f"{folder}: exists and is not a folder; the DICOM series goes there")
    other = [p.name for p in folder.iterdir() if not (p.is_file() and p.suffix == ".dcm")]
    if other:
        raise DataError(
            f"{folder}: holds files other than a DICOM series ({', '.join(sorted(other)[:3])}); "
            "remove them or choose another --out"
        )
