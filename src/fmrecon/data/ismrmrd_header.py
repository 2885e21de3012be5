"""The ISMRMRD XML header, parsed once: ``ismrmrd_header`` in fastMRI files,
``dataset/xml`` in ISMRMRD raw data files.

Only what fmrecon reads from it, from the first ``<encoding>`` as the ISMRMRD
schema names it (github.com/ismrmrd/ismrmrd, ``schema/ismrmrd.xsd``): the
encoded and reconstruction matrix sizes and fields of view (mm), the
``<encodingLimits>`` of every counter (``kspace_encoding_step_1`` is the
phase encode), the trajectory, the number of encodings, and the subject's
and protocol's names. Elements that are missing or not numbers are None; a
header that is not XML parses to None. The parser is lenient (unknown
elements are ignored, the ISMRMRD namespace may be missing), as headers
written by scanner converters vary.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NAMESPACE = "http://www.ismrm.org/ISMRMRD"

#: the counters of ``<encodingLimits>`` (acquisition header ``idx`` fields)
LIMIT_NAMES = (
    "kspace_encoding_step_0",
    "kspace_encoding_step_1",
    "kspace_encoding_step_2",
    "average",
    "slice",
    "contrast",
    "phase",
    "repetition",
    "set",
    "segment",
)


@dataclass(frozen=True)
class MatrixSize:
    """``<matrixSize>``: x = readout, y = phase encode, z = partitions."""

    x: int | None = None
    y: int | None = None
    z: int | None = None


@dataclass(frozen=True)
class FieldOfView:
    """``<fieldOfView_mm>`` (mm): x = readout, y = phase encode, z = slice thickness
    (2-D) or slab (3-D); values missing or not positive are None."""

    x: float | None = None
    y: float | None = None
    z: float | None = None


@dataclass(frozen=True)
class EncodingLimit:
    """One ``<encodingLimits>`` entry (0-based indices)."""

    minimum: int | None = None
    maximum: int | None = None
    center: int | None = None


@dataclass(frozen=True)
class IsmrmrdHeader:
    encoded_matrix: MatrixSize  # <encodedSpace><matrixSize>
    recon_matrix: MatrixSize  # <reconSpace><matrixSize>
    kspace_encoding_step_1: EncodingLimit  # <encodingLimits><kspace_encoding_step_1>
    encoded_fov_mm: FieldOfView | None = None  # <encodedSpace><fieldOfView_mm>, None: absent
    recon_fov_mm: FieldOfView | None = None  # <reconSpace><fieldOfView_mm>, None: absent
    limits: dict[str, EncodingLimit] = field(default_factory=dict)  # LIMIT_NAMES present
    trajectory: str | None = None  # <trajectory>: cartesian, epi, radial, spiral, ...
    n_encodings: int = 0  # number of <encoding> elements
    patient_id: str | None = None  # <subjectInformation><patientID>
    protocol_name: str | None = None  # <measurementInformation><protocolName>
    patient_position: str | None = None  # <measurementInformation><patientPosition>: HFS, ...
    tr_ms: float | None = None  # <sequenceParameters><TR> (the first), ms
    te_ms: float | None = None  # <sequenceParameters><TE> (the first), ms
    flip_angle_deg: float | None = None  # <sequenceParameters><flipAngle_deg> (the first)

    def limit(self, name: str) -> EncodingLimit:
        """The limits of counter ``name`` (all None when the header has none)."""
        return self.limits.get(name, EncodingLimit())


class _Finder:
    """``find`` with or without the ISMRMRD namespace, as the root has it."""

    def __init__(self, root: ET.Element):
        self.ns = f"{{{NAMESPACE}}}" if root.tag.startswith(f"{{{NAMESPACE}}}") else ""

    def find(self, parent: ET.Element | None, path: str) -> ET.Element | None:
        if parent is None:
            return None
        return parent.find("/".join(self.ns + p for p in path.split("/")))

    def text(self, parent: ET.Element | None, path: str) -> str | None:
        el = self.find(parent, path)
        text = None if el is None or el.text is None else el.text.strip()
        return text or None

    def integer(self, parent: ET.Element | None, path: str) -> int | None:
        try:
            return int(self.text(parent, path))
        except (ValueError, TypeError):
            return None

    def number(self, parent: ET.Element | None, path: str) -> float | None:
        try:
            return float(self.text(parent, path))
        except (ValueError, TypeError):
            return None


def parse_header(raw: bytes | str) -> IsmrmrdHeader | None:
    """The header record of the XML text ``raw``, or None if it is not XML.
    Bytes are read in their declared encoding (UTF-8 by default), else as
    Latin-1 (names with accents in headers that do not declare it)."""
    texts = [raw, raw.decode("latin-1")] if isinstance(raw, bytes) else [str(raw)]
    for text in texts:
        try:
            root = ET.fromstring(text)
            break
        except (ValueError, ET.ParseError):
            continue
    else:
        return None
    m = _Finder(root)
    n_encodings = len(root.findall(m.ns + "encoding"))
    enc = m.find(root, "encoding")

    def matrix(space: str) -> MatrixSize:
        el = m.find(enc, f"{space}/matrixSize")
        return MatrixSize(m.integer(el, "x"), m.integer(el, "y"), m.integer(el, "z"))

    def fov(space: str) -> FieldOfView | None:
        el = m.find(enc, f"{space}/fieldOfView_mm")
        if el is None:
            return None
        values = (m.number(el, a) for a in "xyz")
        return FieldOfView(*(v if v is not None and math.isfinite(v) and v > 0 else None
                             for v in values))  # fmt: skip

    limits = {}
    for name in LIMIT_NAMES:
        el = m.find(enc, f"encodingLimits/{name}")
        if el is not None:
            limits[name] = EncodingLimit(
                m.integer(el, "minimum"), m.integer(el, "maximum"), m.integer(el, "center")
            )
    return IsmrmrdHeader(
        encoded_matrix=matrix("encodedSpace"),
        recon_matrix=matrix("reconSpace"),
        kspace_encoding_step_1=limits.get("kspace_encoding_step_1", EncodingLimit()),
        encoded_fov_mm=fov("encodedSpace"),
        recon_fov_mm=fov("reconSpace"),
        limits=limits,
        trajectory=m.text(enc, "trajectory"),
        n_encodings=n_encodings,
        patient_id=m.text(root, "subjectInformation/patientID"),
        protocol_name=m.text(root, "measurementInformation/protocolName"),
        patient_position=m.text(root, "measurementInformation/patientPosition"),
        tr_ms=_positive(m.number(root, "sequenceParameters/TR")),
        te_ms=_positive(m.number(root, "sequenceParameters/TE")),
        flip_angle_deg=_positive(m.number(root, "sequenceParameters/flipAngle_deg")),
    )


def _positive(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) and x > 0 else None


def read_header(f, key: str = "ismrmrd_header") -> IsmrmrdHeader | None:
    """The parsed header stored under ``key`` of an open HDF5 file, or None
    when the file has none or it is not XML. A (1,) array of strings (how
    ISMRMRD stores ``dataset/xml``) is read as its one element."""
    if key not in f:
        return None
    raw = f[key][()]
    if getattr(raw, "shape", ()) == (1,):
        raw = raw[0]
    return parse_header(raw)


def field_of_view_mm(
    raw: bytes | str, space: str = "reconSpace"
) -> tuple[float | None, float | None, float | None] | None:
    """``<fieldOfView_mm>`` (x, y, z) in mm of ``space`` ("reconSpace" or
    "encodedSpace") of the first ``<encoding>`` in the XML text ``raw``:
    x = readout, y = phase encode, z = slice thickness for 2-D acquisitions.
    Values that are missing or not positive numbers are None; None when the
    text is not XML or has no such element."""
    header = parse_header(raw)
    if header is None:
        return None
    fov = header.recon_fov_mm if space == "reconSpace" else header.encoded_fov_mm
    return None if fov is None else (fov.x, fov.y, fov.z)
