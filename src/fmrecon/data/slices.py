"""A slice dataset over k-space files (CMRxRecon, fastMRI, ISMRMRD): one item per
(file, frame, slice), reading only that slice from disk.

Each item is a :class:`Sample`: masked k-space (coil, H, W) complex64, the
mask (1, H, W) bool, the reference image (RSS of the fully sampled slice,
or fastMRI's stored ``reconstruction_rss``), the scaling value ``max_value``
(the data range for metrics and the SSIM loss) and metadata. File formats
are read through the table of :mod:`fmrecon.data.formats`.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from fmrecon.data import cmrxrecon
from fmrecon.data.formats import reader
from fmrecon.data.h5io import check_finite
from fmrecon.data.resize import KspaceResize, check_official_masks
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError, DataError
from fmrecon.physics.coils import num_low_frequencies, rss
from fmrecon.physics.fft import ifft2c
from fmrecon.physics.masks import MaskFunc, mask_frames
from fmrecon.utils import tensor_bytes


@dataclass
class Sample:
    """One slice, or a batch of them (see :func:`collate`).

    kspace: (C, H, W) complex64, already masked; mask: (1, H, W) bool;
    target: (h, w) float32, empty (0, 0) when the file has no ground truth.
    content_key: :func:`content_key` of (kspace, mask) when the dataset was asked
    for it (``content_keys=True``, for FM-UNETR's feature cache), else "".
    """

    kspace: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    max_value: torch.Tensor  # scalar float32
    num_low_frequencies: torch.Tensor  # scalar int64
    fname: str = ""
    slice: int = 0
    frame: int = 0
    subject: str = ""
    modality: str = ""
    acceleration: float = 0.0
    # CMRxRecon 2025: center, vendor, field strength (T; None unknown), modality folder
    center: str = ""
    vendor: str = ""
    field_strength: float | None = None
    modality_folder: str = ""
    content_key: str = ""

    def pin_memory(self) -> Sample:
        """The sample with every tensor in page-locked memory, for the DataLoader's
        ``pin_memory=True`` (torch calls a batch's own ``pin_memory()``; without it a
        dataclass comes back unpinned and non-blocking copies to the GPU come from
        pageable memory). Metadata stay as they are. Without CUDA there is nothing to
        pin for (``Tensor.pin_memory`` raises): the sample itself."""
        if not torch.cuda.is_available():
            return self
        pinned = {
            f.name: v.pin_memory()
            for f in fields(self)
            if isinstance(v := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **pinned)


def collate(samples: Sequence[Sample]) -> Sample:
    """Stack samples of equal size into a batch: tensors gain a leading
    batch axis, metadata become lists."""
    first = samples[0]
    for s in samples[1:]:
        if s.kspace.shape != first.kspace.shape or s.target.shape != first.target.shape:
            raise DataError(
                f"cannot batch {s.fname} {tuple(s.kspace.shape)} with {first.fname} "
                f"{tuple(first.kspace.shape)}: use batch size 1 or crop/pad to one size"
            )
    return Sample(
        kspace=torch.stack([s.kspace for s in samples]),
        mask=torch.stack([s.mask for s in samples]),
        target=torch.stack([s.target for s in samples]),
        max_value=torch.stack([s.max_value for s in samples]),
        num_low_frequencies=torch.stack([s.num_low_frequencies for s in samples]),
        fname=[s.fname for s in samples],
        slice=[s.slice for s in samples],
        frame=[s.frame for s in samples],
        subject=[s.subject for s in samples],
        modality=[s.modality for s in samples],
        acceleration=[s.acceleration for s in samples],
        center=[s.center for s in samples],
        vendor=[s.vendor for s in samples],
        field_strength=[s.field_strength for s in samples],
        modality_folder=[s.modality_folder for s in samples],
        content_key=[s.content_key for s in samples],
    )


def content_key(kspace: torch.Tensor, mask: torch.Tensor) -> str:
    """SHA-256 of one item's masked k-space (C, H, W) and mask (1, H, W): shapes,
    dtypes and bytes. Computed on the loader side, where the data are on the CPU
    already (``SliceDataset(content_keys=True)``), so a model on a GPU never
    copies its input back to hash it (:mod:`fmrecon.models.feature_cache`)."""
    mask = mask.bool()
    h = hashlib.sha256(f"{tuple(kspace.shape)}|{kspace.dtype}|{tuple(mask.shape)}|".encode())
    h.update(tensor_bytes(kspace))
    h.update(tensor_bytes(mask))
    return h.hexdigest()


def fastmri_seed(fname: str) -> tuple[int, ...]:
    """fastMRI's validation transforms seed a file's mask with
    ``tuple(map(ord, fname))`` of the file name, so every slice of a file
    gets the same mask, and the same one as in fastMRI-based work."""
    return tuple(map(ord, fname))


class SliceDataset(Dataset):
    """Items over ``volumes`` (from :func:`fmrecon.data.formats.discover`).

    Masks for fully sampled files come from ``mask_func`` (seeded per
    ``mask_seed``: ``"file"`` = fastMRI's per-file seed, an int = that seed
    for every file, ``"random"`` = a fresh draw per item, for training) or,
    with ``official_masks=True``, from the challenge's mask files of the
    item's acceleration. A ``mask_func`` with several ``choices`` (a
    :class:`fmrecon.physics.masks.MaskChoice`) picks one per item with
    ``choose(seed)`` and the item's seed; official mask files without an
    explicit seed (validation, evaluation) use a fixed acceleration per file,
    ``choices[i % len(choices)]`` for the dataset's file ``i``, so the
    accelerations alternate over the files and every epoch sees the same
    masks. Already undersampled files always use their own mask (CMRxRecon
    ``kspace_subXX``: the mask file beside them; raw scanner data: the lines
    each slice acquired, the format's ``read_mask``) and have no target.

    ``content_keys``: give every item its :func:`content_key` (~5 ms per 10 MB
    slice; only FM-UNETR's feature cache reads it).

    ``items``: ``"all"`` (every frame and slice) or a callable
    ``(info) -> list[(frame, slice)]`` (e.g. the CMRxRecon ranking subset).

    ``resize`` (a :class:`fmrecon.data.resize.KspaceResize`, e.g. MIDL 2025's
    224 x 224) transforms the fully sampled k-space before masking: the mask is
    made at the new size and the target is the RSS of the transformed coil
    images (also for fastMRI files, whose stored ``reconstruction_rss`` no
    longer matches; ``max_value`` is then the slice's target max). The
    challenge's mask files exist at the native size only, so ``resize`` with
    ``official_masks`` is an error (generate the same kind at the new size).
    """

    def __init__(
        self,
        volumes: Sequence[VolumeInfo],
        mask_func: MaskFunc | None = None,
        mask_seed: str | int = "file",
        official_masks: bool = False,
        items="all",
        max_open_files: int = 32,
        resize: KspaceResize | None = None,
        content_keys: bool = False,
    ):
        if not volumes:
            raise DataError("no k-space files to build a dataset from")
        if isinstance(mask_seed, str) and mask_seed not in ("file", "random"):
            raise ConfigError(f"mask_seed must be 'file', 'random' or an int, got '{mask_seed}'")
        needs_mask = any(v.fully_sampled for v in volumes)
        if needs_mask and mask_func is None:
            raise ConfigError("fully sampled files need a mask: pass mask_func")
        self.volumes = list(volumes)
        self.resize = resize if resize is not None and resize.active else None
        if self.resize is not None:
            _check_resizable(self.volumes, self.resize, official_masks)
        self.mask_func = mask_func
        self.mask_seed = mask_seed
        self.official_masks = official_masks
        self.max_open_files = max_open_files
        self.content_keys = bool(content_keys)
        self.index: list[tuple[int, int, int]] = []
        for i, v in enumerate(self.volumes):
            pairs = (
                [(t, z) for t in range(v.n_frames) for z in range(v.n_slices)]
                if items == "all"
                else items(v)
            )
            self.index.extend((i, t, z) for t, z in pairs)
        self._handles: OrderedDict = OrderedDict()
        self._pid = os.getpid()
        self._masks: dict[int, tuple[np.ndarray, float]] = {}
        self._mask_files: dict = {}  # official mask file path -> (T, H, W) bool

    def __len__(self) -> int:
        return len(self.index)

    def image_shape(self, i: int) -> tuple[int, int]:
        """(H, W) of the items of volume ``i`` (after ``resize``)."""
        h, w = self.volumes[i].shape
        return self.resize.shape(h, w) if self.resize is not None else (h, w)

    # h5py handles are not fork-safe: each worker process opens its own
    def _file(self, i: int):
        if self._pid != os.getpid():
            self._handles = OrderedDict()
            self._pid = os.getpid()
        f = self._handles.get(i)
        if f is None:
            f = reader(self.volumes[i]).open(self.volumes[i].path)
            self._handles[i] = f
            if len(self._handles) > self.max_open_files:
                _, old = self._handles.popitem(last=False)
                old.close()
        else:
            self._handles.move_to_end(i)
        return f

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles.clear()

    def _choose(self, i: int, seed) -> MaskFunc:
        """The mask function of an item of volume ``i`` (see the class doc)."""
        funcs = self.mask_func.choices
        if len(funcs) == 1:
            return funcs[0]
        if seed is None and self.official_masks:
            return funcs[i % len(funcs)]  # fixed per file, alternating over the files
        return self.mask_func.choose(seed)

    def _official_mask(self, v: VolumeInfo, func: MaskFunc) -> np.ndarray:
        acc = int(round(func.acceleration))
        pattern = func.official_pattern or self.mask_func.official_pattern or "Uniform"
        path = cmrxrecon.official_mask_path(v.path, acc, pattern)
        mask = self._mask_files.get(path)
        if mask is None:  # each file read once per process
            mask = _as_frames(cmrxrecon.read_mask(path), v, path)
            self._mask_files[path] = mask
        return mask

    def _volume_mask(self, i: int, seed=None) -> tuple[np.ndarray, float]:
        """(mask (T, H, W), the acceleration it was made for) of volume ``i``."""
        explicit = seed is not None
        if not explicit and i in self._masks:
            return self._masks[i]
        v = self.volumes[i]
        h, w = self.image_shape(i)
        if not v.fully_sampled:
            path = _sub_mask_path(v)
            out = (_as_frames(cmrxrecon.read_mask(path), v, path), float(v.acceleration))
        elif self.official_masks:
            func = self._choose(i, seed)
            out = (self._official_mask(v, func), float(func.acceleration))
            if explicit:
                return out
        else:
            if seed is None:
                if self.mask_seed == "file":
                    seed = fastmri_seed(v.path.name)
                elif self.mask_seed != "random":
                    seed = int(self.mask_seed)
            func = self._choose(i, seed)
            mask = func((v.n_frames, h, w), seed=seed)
            if v.acq_limits is not None:
                # fastMRI zeroes the mask outside the encoded phase-encode range
                start, end = v.acq_limits
                mask = mask.copy()
                mask[..., :start] = False
                mask[..., end:] = False
            out = (mask, float(func.acceleration))
            if self.mask_seed == "random" or explicit:
                return out  # drawn for this item only
        self._masks[i] = out
        return out

    def __getitem__(self, idx: int) -> Sample:
        return self.get(idx)

    def get(self, idx: int, mask_seed=None) -> Sample:
        """Item ``idx``; ``mask_seed`` (an int or a tuple of ints) seeds its mask
        explicitly, overriding the dataset's seeding policy for masks drawn by
        ``mask_func`` (the trainer seeds items per epoch)."""
        i, t, z = self.index[idx]
        v = self.volumes[i]
        f = self._file(i)
        fmt = reader(v)
        kspace = check_finite(fmt.read_kspace(f, v, t, z), f"{v.path} frame {t} slice {z}")
        if self.resize is not None:
            kspace = self.resize(kspace)
        if not v.fully_sampled and fmt.read_mask is not None:
            # raw scanner data: the lines this item acquired
            mask = np.broadcast_to(fmt.read_mask(f, v, t, z), kspace.shape[-2:])
            acceleration = float(v.acceleration)
        else:
            mask, acceleration = self._volume_mask(i, seed=mask_seed if v.fully_sampled else None)
            mask = mask[t]
        if v.fully_sampled:
            # a stored reference image no longer matches resized k-space
            target = fmt.read_target(f, v, z) if self.resize is None else None
            if target is None:
                target = rss(ifft2c(kspace)).astype(np.float32)
            masked = kspace * mask
            max_value = (
                v.max_value
                if v.max_value is not None and self.resize is None
                else float(target.max())
            )
        else:
            target = np.zeros((0, 0), dtype=np.float32)
            masked = kspace
            max_value = 0.0
        kspace_t = torch.from_numpy(np.ascontiguousarray(masked, dtype=np.complex64))
        mask_t = torch.from_numpy(np.array(mask, dtype=bool))[None]
        return Sample(
            kspace=kspace_t,
            mask=mask_t,
            target=torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
            max_value=torch.tensor(max_value, dtype=torch.float32),
            num_low_frequencies=torch.tensor(num_low_frequencies(mask), dtype=torch.int64),
            fname=v.path.name,
            slice=z,
            frame=t,
            subject=v.subject,
            modality=v.modality,
            acceleration=acceleration,
            center=v.center or "",
            vendor=v.vendor or "",
            field_strength=v.field_strength,
            modality_folder=v.modality_folder or "",
            content_key=content_key(kspace_t, mask_t) if self.content_keys else "",
        )


def _check_resizable(volumes: Sequence[VolumeInfo], resize: KspaceResize, official: bool) -> None:
    check_official_masks(resize, official, "image size")
    for v in volumes:
        if not v.fully_sampled:
            raise DataError(
                f"{v.path}: undersampled file ({v.key}) with an image size: its own mask "
                "is at the native size; resizing needs fully sampled k-space"
            )
        if v.acq_limits is not None:
            raise DataError(
                f"{v.path}: zero-padded phase encode (acquired lines {v.acq_limits[0]}.."
                f"{v.acq_limits[1] - 1}) is not supported with an image size"
            )


def _sub_mask_path(v: VolumeInfo):
    path = cmrxrecon.undersampled_mask_path(v.path)
    if not path.exists():
        raise DataError(f"{v.path}: undersampled file without its mask file {path.name}")
    return path


def _as_frames(mask: np.ndarray, v: VolumeInfo, path) -> np.ndarray:
    """A mask file ``path`` (kx, ky) or (t, kx, ky) as (T, H, W) for volume ``v``
    (a one-line error naming both files and shapes when they do not match)."""
    return mask_frames(mask, v.n_frames, v.shape, path, v.path)
