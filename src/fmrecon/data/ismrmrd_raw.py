"""ISMRMRD / MRD raw data files (``.h5``), as scanner converters write them
(siemens_to_ismrmrd, ge_to_ismrmrd, ...; format: github.com/ismrmrd/ismrmrd).

A file holds a group (``dataset``, or any root group with both members) with
``xml``, the XML header ((1,) string), and ``data``, one row per acquisition
(one readout): a compound of ``head`` (the AcquisitionHeader: flags, counters
``idx``, ``number_of_samples``, ``active_channels``, ``center_sample``, ...),
``traj`` and ``data`` (float32, the (coils, samples) complex64 readout).
Only the headers are read when a file is opened (one index per file); a
slice reads only its own readouts.

What fmrecon makes of it (2-D Cartesian encoding 0; 3-D and non-Cartesian
files are refused):

- Image readouts are all acquisitions except those flagged (ISMRMRD
  ``ACQ_IS_*``) as noise measurement (noise-adjust scans), navigator, phase
  correction, dummy scan, real-time or high-performance feedback,
  surface-coil correction scan, phase stabilisation (reference), and a
  separate parallel-imaging calibration scan (``ACQ_IS_PARALLEL_CALIBRATION``
  without ``ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING``: reference lines of
  their own, often at another contrast or resolution; embedded ACS lines
  carry both flags and are image lines). Readouts of another encoding
  (``encoding_space_ref`` > 0) are skipped too. :data:`SKIPPED_FLAGS`.
- Counters: ``idx.slice`` gives the slice, (``repetition``, ``set``,
  ``contrast``, ``phase``) the frame (frames sorted in that order, cardiac
  phase fastest), ``idx.kspace_encode_step_1`` the phase-encode column
  ``ky + W // 2 - limits.center`` of the encoded matrix (W = encodedSpace y;
  the centre line lands at W // 2, as fastMRI's and Gadgetron's buffers put
  it). Readouts are placed with their ``center_sample`` at H // 2 of the
  encoded readout (``discard_pre``/``discard_post`` samples dropped);
  ``ACQ_IS_REVERSE`` readouts are flipped. Readouts repeated at one
  (frame, slice, line) (averages, segments) are averaged.
- Readout oversampling is removed when the header says so (encodedSpace
  field of view x an integer f >= 2 times reconSpace's, and the recon matrix
  x smaller than the encoded one; Gadgetron's rule): inverse FFT along the
  readout, central H / f rows, FFT (:class:`fmrecon.data.resize.KspaceResize`).
  Slices are (C, H, W), H = readout, W = phase encode, as everywhere.
- Sampling: a file is fully sampled when every (frame, slice) acquired every
  line between the first and the last line acquired in the file. Lines of
  the encoded matrix outside that range (partial Fourier, phase-encode
  zero padding) stay zero and are never in a mask, as fastMRI treats its
  zero-padded phase encode (``VolumeInfo.acq_limits``); no homodyne or POCS
  completion is done, the target is the RSS of the zero-filled coil images.
  Any other file is undersampled: its mask is the set of lines acquired in
  each (frame, slice) (:func:`read_mask`), its acceleration the number of
  lines within the encoding limits over the mean number acquired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fmrecon.data.h5io import open_h5
from fmrecon.data.ismrmrd_header import FieldOfView, IsmrmrdHeader, MatrixSize, parse_header
from fmrecon.data.resize import KspaceResize
from fmrecon.data.types import NotKspaceFile, VolumeInfo
from fmrecon.errors import DataError, one_line

#: ISMRMRD acquisition flags (``ismrmrd.ACQ_*`` names) of readouts that are not image data
SKIPPED_FLAGS = (
    ("ACQ_IS_NOISE_MEASUREMENT", "noise"),
    ("ACQ_IS_NAVIGATION_DATA", "navigator"),
    ("ACQ_IS_PHASECORR_DATA", "phase correction"),
    ("ACQ_IS_DUMMYSCAN_DATA", "dummy scan"),
    ("ACQ_IS_RTFEEDBACK_DATA", "real-time feedback"),
    ("ACQ_IS_HPFEEDBACK_DATA", "high-performance feedback"),
    ("ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA", "surface-coil correction"),
    ("ACQ_IS_PHASE_STABILIZATION_REFERENCE", "phase stabilisation reference"),
    ("ACQ_IS_PHASE_STABILIZATION", "phase stabilisation"),
)
#: frame counters, slowest first
FRAME_COUNTERS = ("repetition", "set", "contrast", "phase")


@dataclass(frozen=True)
class Readout:
    """Where the samples of every image readout go: ``n_samples`` per coil,
    ``keep`` = slice of the samples kept (discard_pre/post), placed at rows
    ``start``.. of an ``n_rows`` encoded readout."""

    n_coils: int
    n_samples: int
    keep: slice
    start: int
    n_rows: int


@dataclass(frozen=True)
class SliceGeometry:
    """Where a slice is, from its first image readout (ISMRMRD patient
    coordinates, mm): ``position`` of the slice centre, unit vectors of the
    readout (H), phase-encode (W) and slice directions, table position."""

    position: tuple[float, float, float]
    read_dir: tuple[float, float, float]
    phase_dir: tuple[float, float, float]
    slice_dir: tuple[float, float, float]
    patient_table_position: tuple[float, float, float]


@dataclass
class RawIndex:
    """The image readouts of a file, by (frame, slice): rows of ``dataset/data``,
    their phase-encode columns and reverse flags, each sorted by row."""

    lines: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]
    n_frames: int
    n_slices: int
    width: int  # W: encodedSpace matrix y
    readout: Readout
    oversampling: int  # readout oversampling factor removed (1: none)
    skipped: dict[str, int]  # acquisitions skipped, by what they are
    limits: tuple[int, int]  # phase-encode columns within the encoding limits [lo, hi]
    geometry: tuple[SliceGeometry, ...] = ()  # per slice
    # per frame: its (repetition, set, contrast, phase) counters, and the median over
    # its readouts of physiology_time_stamp[0] (the trigger delay, in the vendor's
    # ticks; siemens_to_ismrmrd copies the MDH's 2.5 ms ticks), None where all are 0
    frame_counters: tuple[tuple[int, int, int, int], ...] = ()
    trigger_ticks: tuple[float, ...] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of a slice after oversampling removal."""
        return self.readout.n_rows // self.oversampling, self.width

    def columns(self, t: int, z: int) -> np.ndarray:
        """The distinct phase-encode columns acquired in frame ``t``, slice ``z``."""
        return np.unique(self.lines[(t, z)][1])


class RawFile:
    """An open ISMRMRD file (the handle :data:`fmrecon.data.formats.FORMATS`
    opens): the HDF5 file, its header and the index of its readouts."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.h5 = open_h5(self.path)
        try:
            group = _find_group(self.h5, self.path)
            self.key = f"{group}/data"
            self.header = _read_xml(self.h5, group, self.path)
            self.data = self.h5[self.key]
            self.index = build_index(self.path, self.header, _read_heads(self.data, self.path))
        except BaseException:
            self.h5.close()
            raise

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> RawFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _find_group(f: h5py.File, path: Path) -> str:
    """The ISMRMRD group: ``dataset``, else the one root group with ``xml`` and
    ``data``. A file without one is not ISMRMRD raw data (NotKspaceFile)."""
    groups = [k for k in f if isinstance(f[k], h5py.Group)]
    if "dataset" in groups:
        group = "dataset"
    else:
        found = [g for g in groups if "xml" in f[g] and "data" in f[g]]
        if len(found) != 1:
            keys = ", ".join(sorted(f.keys())) or "none"
            raise NotKspaceFile(
                f"{path}: not an ISMRMRD dataset (no group 'dataset' with 'xml' and 'data'; "
                f"keys: {keys})"
            )
        group = found[0]
    members = set(f[group].keys())
    if "data" not in members or not isinstance(f[group]["data"], h5py.Dataset):
        what = "images only" if any(isinstance(f[group][k], h5py.Group) for k in members) else ""
        raise NotKspaceFile(
            f"{path}: ISMRMRD dataset '{group}' without acquisitions ('{group}/data' missing"
            + (f"; {what}" if what else "")
            + ")"
        )
    names = f[group]["data"].dtype.names or ()
    if not {"head", "data"} <= set(names):
        raise NotKspaceFile(
            f"{path}: '{group}/data' is not an ISMRMRD acquisition table "
            f"(fields {', '.join(names) or 'none'}; expected head, traj, data)"
        )
    if "xml" not in members:
        raise DataError(f"{path}: ISMRMRD dataset without its XML header ('{group}/xml' missing)")
    return group


def _read_xml(f: h5py.File, group: str, path: Path) -> IsmrmrdHeader:
    try:
        raw = f[group]["xml"][()]
    except OSError as err:
        raise DataError(f"{path}: cannot read the ISMRMRD header ({one_line(err)})") from None
    if getattr(raw, "shape", ()) and np.size(raw) >= 1:
        raw = np.ravel(raw)[0]
    header = parse_header(raw if isinstance(raw, bytes | str) else bytes(raw))
    if header is None:
        raise DataError(f"{path}: the ISMRMRD header '{group}/xml' is not XML")
    if header.n_encodings == 0:
        raise DataError(f"{path}: the ISMRMRD header has no <encoding>")
    if header.encoded_matrix.y is None:
        raise DataError(f"{path}: the ISMRMRD header lacks <encodedSpace><matrixSize><y>")
    return header


def _read_heads(ds: h5py.Dataset, path: Path) -> np.ndarray:
    try:
        return ds.fields("head")[:]
    except OSError as err:
        raise DataError(f"{path}: truncated or corrupt acquisitions ({one_line(err)})") from None


def _flag(flags: np.ndarray, bit: int) -> np.ndarray:
    """Acquisitions with ISMRMRD flag ``bit`` (1-based, as ``ismrmrd.ACQ_*``)."""
    return (flags >> np.uint64(bit - 1)) & np.uint64(1) == 1


def image_rows(heads: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Rows of the image readouts among acquisition headers ``heads``, and
    the number of acquisitions skipped by kind (see the module doc)."""
    import ismrmrd  # the flag numbers of the format's own package

    flags = heads["flags"].astype(np.uint64)
    keep = np.ones(len(heads), dtype=bool)
    skipped: dict[str, int] = {}

    def drop(mask: np.ndarray, what: str) -> None:
        nonlocal keep
        mask = mask & keep
        if mask.any():
            skipped[what] = int(mask.sum())
            keep &= ~mask

    for name, what in SKIPPED_FLAGS:
        drop(_flag(flags, getattr(ismrmrd, name)), what)
    calibration = _flag(flags, ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
    both = _flag(flags, ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
    drop(calibration & ~both, "separate calibration")
    drop(heads["encoding_space_ref"] != 0, "other encoding")
    return np.nonzero(keep)[0], skipped


def _uniform(heads: np.ndarray, field: str, path: Path) -> int:
    values = np.unique(heads[field])
    if values.size != 1:
        raise DataError(
            f"{path}: image readouts differ in {field} ({', '.join(map(str, values[:4]))}"
            f"{', ...' if values.size > 4 else ''}); fmrecon needs one readout geometry"
        )
    return int(values[0])


def _readout(heads: np.ndarray, header: IsmrmrdHeader, path: Path) -> Readout:
    """The readout geometry shared by all image readouts ``heads``."""
    ns = _uniform(heads, "number_of_samples", path)
    nc = _uniform(heads, "active_channels", path)
    pre = _uniform(heads, "discard_pre", path)
    post = _uniform(heads, "discard_post", path)
    centre = _uniform(heads, "center_sample", path)
    n_keep = ns - pre - post
    if nc < 1 or n_keep < 1:
        raise DataError(f"{path}: image readouts of {nc} coils x {ns} samples ({pre}+{post} "
                        "discarded): no data")  # fmt: skip
    n_rows = header.encoded_matrix.x or n_keep
    # the echo (center_sample) at row n_rows // 2; no centre given: a centred readout
    start = n_rows // 2 - (centre - pre) if centre > 0 else (n_rows - n_keep) // 2
    if start < 0 or start + n_keep > n_rows:
        raise DataError(
            f"{path}: inconsistent readout: {n_keep} samples with the echo at sample {centre} "
            f"do not fit the encoded matrix x = {n_rows}"
        )
    return Readout(nc, ns, slice(pre, ns - post), start, n_rows)


def readout_oversampling(header: IsmrmrdHeader) -> int:
    """The readout oversampling factor the header describes (1: none): the
    encoded over the recon field of view x (the matrix ratio when the header
    has no fields of view), when an integer >= 2 and the recon matrix x is
    smaller than the encoded one (Gadgetron's ``RemoveROOversamplingGadget``
    condition: encoded FOV > recon FOV and recon x < encoded x)."""
    enc, rec = header.encoded_matrix.x, header.recon_matrix.x
    if enc is None or rec is None or not 0 < rec < enc:
        return 1
    efov = header.encoded_fov_mm.x if header.encoded_fov_mm else None
    rfov = header.recon_fov_mm.x if header.recon_fov_mm else None
    ratio = efov / rfov if efov and rfov else enc / rec
    f = round(ratio)
    return f if f >= 2 and abs(ratio - f) < 0.01 * f else 1


def _columns(ky: np.ndarray, rows: np.ndarray, header: IsmrmrdHeader, path: Path):
    """Phase-encode columns of counters ``ky`` and the columns within the
    encoding limits [lo, hi] (clipped to the matrix; they only scale the
    acceleration); DataError when a readout falls outside the matrix."""
    w = int(header.encoded_matrix.y)
    lim = header.limit("kspace_encoding_step_1")
    offset = w // 2 - lim.center if lim.center is not None else 0
    lo = max((lim.minimum if lim.minimum is not None else 0) + offset, 0)
    hi = min((lim.maximum if lim.maximum is not None else w - 1) + offset, w - 1)
    what = f"limits {lim.minimum}..{lim.maximum} centre {lim.center}"
    columns = ky.astype(np.int64) + offset
    bad = np.nonzero((columns < 0) | (columns >= w))[0]
    if bad.size:
        i = bad[0]
        raise DataError(
            f"{path}: inconsistent encoding limits: acquisition {rows[i]} has "
            f"kspace_encode_step_1 = {ky[i]}, line {columns[i]} of an encoded matrix y = {w} "
            f"(kspace_encoding_step_1 {what} at line {w // 2}; "
            f"{bad.size} readout{'s' if bad.size > 1 else ''} outside)"
        )
    return columns, (min(lo, int(columns.min())), max(hi, int(columns.max())))


def _check_2d_cartesian(header: IsmrmrdHeader, idx: np.ndarray, path: Path) -> None:
    traj = (header.trajectory or "cartesian").lower()
    if traj != "cartesian":
        raise DataError(
            f"{path}: {traj} trajectory; fmrecon reads Cartesian ISMRMRD data only "
            "(grid non-Cartesian data first)"
        )
    nz = header.encoded_matrix.z or 1
    kz = int(np.max(idx["kspace_encode_step_2"]))
    if nz > 1 or kz > 0:
        raise DataError(
            f"{path}: 3-D encoding (encoded matrix z = {nz}, kspace_encode_step_2 up to {kz}); "
            "fmrecon reconstructs 2-D multi-slice data only"
        )


def build_index(path: Path, header: IsmrmrdHeader, heads: np.ndarray) -> RawIndex:
    """Index the image readouts of a file from its header and acquisition
    headers (see the module doc for the rules); one-line DataErrors for files
    that cannot be read as 2-D Cartesian k-space."""
    rows, skipped = image_rows(heads)
    if rows.size == 0:
        what = ", ".join(f"{n} {k}" for k, n in skipped.items()) or "none"
        raise DataError(f"{path}: no image acquisitions ({len(heads)} acquisitions: {what})")
    heads = heads[rows]
    idx = heads["idx"]
    _check_2d_cartesian(header, idx, path)
    readout = _readout(heads, header, path)
    columns, limits = _columns(idx["kspace_encode_step_1"], rows, header, path)
    _, slc = np.unique(idx["slice"], return_inverse=True)
    keys = np.stack([idx[c].astype(np.int64) for c in FRAME_COUNTERS], axis=1)
    frame_keys, frame = np.unique(keys, axis=0, return_inverse=True)
    slc, frame = slc.reshape(-1), frame.reshape(-1)
    n_frames, n_slices = len(frame_keys), int(slc.max()) + 1
    counts = np.zeros((n_frames, n_slices), dtype=np.int64)
    np.add.at(counts, (frame, slc), 1)
    if not counts.all():
        t, z = np.argwhere(counts == 0)[0]
        names = ", ".join(f"{c} {v}" for c, v in zip(FRAME_COUNTERS, frame_keys[t], strict=True))
        slice_value = np.unique(idx["slice"])[z]
        raise DataError(
            f"{path}: no image readouts for slice {slice_value} at {names} "
            f"({int((counts == 0).sum())} (frame, slice) pairs empty)"
        )
    reverse = _flag(heads["flags"].astype(np.uint64), _reverse_bit())
    first = np.unique(slc, return_index=True)[1]  # rows are in file order: the first readout
    geometry = tuple(_geometry(heads[i]) for i in first)
    stamps = heads["physiology_time_stamp"][:, 0].astype(np.float64)
    trigger = None
    if np.any(stamps):
        trigger = tuple(float(np.median(stamps[frame == t])) for t in range(n_frames))
    order = np.lexsort((rows, slc, frame))
    bounds = np.cumsum(counts.reshape(-1))[:-1]
    lines = {}
    for k, part in enumerate(np.split(order, bounds)):
        t, z = divmod(k, n_slices)
        lines[(t, z)] = (rows[part], columns[part], reverse[part])
    return RawIndex(
        lines=lines,
        n_frames=n_frames,
        n_slices=n_slices,
        width=int(header.encoded_matrix.y),
        readout=readout,
        oversampling=readout_oversampling(header),
        skipped=skipped,
        limits=limits,
        geometry=geometry,
        frame_counters=tuple(tuple(int(v) for v in k) for k in frame_keys),
        trigger_ticks=trigger,
    )


def _geometry(head) -> SliceGeometry:
    def vec(name):
        return tuple(float(v) for v in head[name])

    return SliceGeometry(
        vec("position"),
        vec("read_dir"),
        vec("phase_dir"),
        vec("slice_dir"),
        vec("patient_table_position"),
    )


def _reverse_bit() -> int:
    import ismrmrd

    return ismrmrd.ACQ_IS_REVERSE


def sampling(index: RawIndex) -> tuple[float | None, tuple[int, int] | None]:
    """(acceleration, acquired range) of an indexed file: acceleration None
    and the phase-encode range [start, end) every image acquired when fully
    sampled (None when that is the whole matrix); else the acceleration
    (lines within the encoding limits / mean lines acquired) and None."""
    acquired = [index.columns(t, z) for (t, z) in index.lines]
    lo = min(int(c[0]) for c in acquired)
    hi = max(int(c[-1]) for c in acquired)
    if all(c.size == hi - lo + 1 for c in acquired):
        return None, (None if (lo, hi + 1) == (0, index.width) else (lo, hi + 1))
    n_encoded = index.limits[1] - index.limits[0] + 1
    return n_encoded / float(np.mean([c.size for c in acquired])), None


def inspect(path: Path) -> VolumeInfo:
    """Describe an ISMRMRD raw data file (reads its header and acquisition headers)."""
    with RawFile(path) as f:
        index, header, key = f.index, f.header, f.key
    h, w = index.shape
    if min(h, w) < 8:
        raise DataError(f"{path}: {h} x {w} k-space (readout x phase encode), too small an image")
    acceleration, limits = sampling(index)
    return VolumeInfo(
        path=Path(path),
        format="ismrmrd",
        key=key,
        n_frames=index.n_frames,
        n_slices=index.n_slices,
        n_coils=index.readout.n_coils,
        shape=(h, w),
        subject=header.patient_id or Path(path).stem,
        modality=header.protocol_name or "raw",
        acceleration=acceleration,
        acq_limits=limits,
    )


def read_kspace(f: RawFile, info: VolumeInfo, frame: int, slc: int) -> np.ndarray:
    """One slice, complex64 (C, H, W), from only its own readouts; lines not
    acquired are exactly zero."""
    index = f.index
    rows, columns, reverse = index.lines[(frame, slc)]
    ro = index.readout
    try:
        raw = f.data.fields("data")[rows]
    except OSError as err:
        raise DataError(
            f"{f.path}: cannot read the readouts of frame {frame} slice {slc} ({one_line(err)})"
        ) from None
    size = 2 * ro.n_coils * ro.n_samples
    if any(r.size != size for r in raw):
        raise DataError(
            f"{f.path}: frame {frame} slice {slc}: a readout does not hold "
            f"{ro.n_coils} coils x {ro.n_samples} samples (truncated or inconsistent data)"
        )
    data = np.stack(raw).view(np.complex64).reshape(len(rows), ro.n_coils, ro.n_samples)
    data = data[:, :, ro.keep]
    data[reverse] = data[reverse, :, ::-1]
    lines, where, counts = np.unique(columns, return_inverse=True, return_counts=True)
    acc = np.zeros((lines.size, *data.shape[1:]), dtype=np.complex64)
    if lines.size == len(rows):
        acc[where.reshape(-1)] = data
    else:  # averages of repeated lines
        np.add.at(acc, where.reshape(-1), data)
        acc /= counts[:, None, None].astype(np.float32)
    k = np.zeros((ro.n_coils, ro.n_rows, index.width), dtype=np.complex64)
    k[:, ro.start : ro.start + data.shape[-1], lines] = acc.transpose(1, 2, 0)
    if index.oversampling > 1:
        k = KspaceResize(readout_oversampling=index.oversampling)(k)
        missing = np.ones(index.width, dtype=bool)
        missing[lines] = False
        k[:, :, missing] = 0  # exact zeros where nothing was acquired
    return k


def read_target(f: RawFile, info: VolumeInfo, slc: int) -> None:
    """Raw data store no reference image (the target is the RSS of the
    fully sampled k-space): always None."""
    return None


def read_mask(f: RawFile, info: VolumeInfo, frame: int, slc: int) -> np.ndarray:
    """The acquired phase-encode lines of frame ``frame``, slice ``slc``: bool (W,)."""
    mask = np.zeros(info.shape[1], dtype=bool)
    mask[f.index.columns(frame, slc)] = True
    return mask


@dataclass(frozen=True)
class RawGeometry:
    """The geometry of a raw data file for image outputs (NIfTI, DICOM): the
    header's fields of view (mm; ``recon_fov_mm`` covers the (H, W) slices
    after oversampling removal, z = slice thickness), the readout
    oversampling removed and each slice's position and orientation."""

    encoded_fov_mm: FieldOfView | None  # None: not in the header
    recon_fov_mm: FieldOfView | None
    encoded_matrix: MatrixSize
    recon_matrix: MatrixSize
    oversampling: int
    slices: tuple[SliceGeometry, ...]
    frame_counters: tuple[tuple[int, int, int, int], ...] = ()  # FRAME_COUNTERS per frame
    trigger_ticks: tuple[float, ...] | None = None  # per frame (RawIndex.trigger_ticks)
    patient_position: str | None = None  # header: HFS, FFS, ...
    tr_ms: float | None = None
    te_ms: float | None = None
    flip_angle_deg: float | None = None

    @property
    def cardiac_phases(self) -> bool:
        """True when the frames differ in the cardiac ``phase`` counter only (cine)."""
        keys = np.array(self.frame_counters).reshape(-1, len(FRAME_COUNTERS))
        varies = [len(np.unique(keys[:, i])) > 1 for i in range(len(FRAME_COUNTERS))]
        return len(keys) > 1 and varies == [c == "phase" for c in FRAME_COUNTERS]


def raw_geometry(info: VolumeInfo) -> RawGeometry:
    """The :class:`RawGeometry` of a described ISMRMRD file."""
    with RawFile(info.path) as f:
        h = f.header
        return RawGeometry(
            h.encoded_fov_mm,
            h.recon_fov_mm,
            h.encoded_matrix,
            h.recon_matrix,
            f.index.oversampling,
            f.index.geometry,
            f.index.frame_counters,
            f.index.trigger_ticks,
            h.patient_position,
            h.tr_ms,
            h.te_ms,
            h.flip_angle_deg,
        )


def recon_size(info: VolumeInfo) -> tuple[int, int]:
    """The (h, w) a reconstruction is cropped to: the header's reconSpace
    matrix (x, y), never larger than (H, W)."""
    h, w = info.shape
    with open_h5(info.path) as f:
        header = _read_xml(f, _find_group(f, info.path), info.path)
    x, y = header.recon_matrix.x, header.recon_matrix.y
    if not x or not y or x < 1 or y < 1:
        return h, w
    return min(x, h), min(y, w)
