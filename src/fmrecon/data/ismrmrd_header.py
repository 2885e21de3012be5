"""The ISMRMRD XML header (``ismrmrd_header`` in fastMRI files), parsed once.

Only what fmrecon reads from it: the encoded and reconstruction matrix sizes
and the ``kspace_encoding_step_1`` (phase-encode) limits of the first
``<encoding>``, as the ISMRMRD schema names them
(github.com/ismrmrd/ismrmrd, ``schema/ismrmrd.xsd``). Elements that are
missing or not integers are None; a header that is not XML parses to None.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

_NS = {"m": "http://www.ismrm.org/ISMRMRD"}


@dataclass(frozen=True)
class MatrixSize:
    """``<matrixSize>``: x = readout, y = phase encode, z = partitions."""

    x: int | None = None
    y: int | None = None
    z: int | None = None


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


def _int(parent: ET.Element | None, path: str) -> int | None:
    el = None if parent is None else parent.find(path, _NS)
    try:
        return int(el.text)
    except (AttributeError, ValueError, TypeError):
        return None


def _matrix(enc: ET.Element | None, space: str) -> MatrixSize:
    el = None if enc is None else enc.find(f"m:{space}/m:matrixSize", _NS)
    return MatrixSize(_int(el, "m:x"), _int(el, "m:y"), _int(el, "m:z"))


def parse_header(raw: bytes | str) -> IsmrmrdHeader | None:
    """The header record of the XML text ``raw``, or None if it is not XML."""
    try:
        root = ET.fromstring(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (ValueError, ET.ParseError):  # UnicodeDecodeError is a ValueError
        return None
    enc = root.find("m:encoding", _NS)
    lim = None if enc is None else enc.find("m:encodingLimits/m:kspace_encoding_step_1", _NS)
    return IsmrmrdHeader(
        encoded_matrix=_matrix(enc, "encodedSpace"),
        recon_matrix=_matrix(enc, "reconSpace"),
        kspace_encoding_step_1=EncodingLimit(
            _int(lim, "m:minimum"), _int(lim, "m:maximum"), _int(lim, "m:center")
        ),
    )


def read_header(f, key: str = "ismrmrd_header") -> IsmrmrdHeader | None:
    """The parsed header stored under ``key`` of an open HDF5 file, or None
    when the file has none or it is not XML."""
    if key not in f:
        return None
    return parse_header(f[key][()])


def field_of_view_mm(
    raw: bytes | str, space: str = "reconSpace"
) -> tuple[float | None, float | None, float | None] | None:
    """``<fieldOfView_mm>`` (x, y, z) in mm of ``space`` ("reconSpace" or
    "encodedSpace") of the first ``<encoding>`` in the XML text ``raw``:
    x = readout, y = phase encode, z = slice thickness for 2-D acquisitions.
    Values that are missing or not positive numbers are None; None when the
    text is not XML or has no such element."""
    try:
        root = ET.fromstring(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (ValueError, ET.ParseError):
        return None
    el = root.find(f"m:encoding/m:{space}/m:fieldOfView_mm", _NS)
    if el is None:
        return None

    def number(tag: str) -> float | None:
        child = el.find(f"m:{tag}", _NS)
        try:
            value = float(child.text)
        except (AttributeError, ValueError, TypeError):
            return None
        return value if math.isfinite(value) and value > 0 else None

    return number("x"), number("y"), number("z")
