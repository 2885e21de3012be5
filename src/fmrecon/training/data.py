"""What data a run trains on: the DataModule, the mask policy and a sampler
that makes every epoch reproducible (also after ``--resume`` and on many ranks).

The sampler yields *encoded* indices ``epoch * len(dataset) + i``; the dataset
decodes them, so the random mask of item ``i`` in epoch ``e`` is a pure
function of ``(seed, e, i)``: it does not depend on worker processes, ranks,
or whether the run was interrupted. The training loader
(:class:`ResumableLoader`) continues an interrupted epoch at the batch after
the last one trained, with the epoch's own order, with any number of workers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, Dataset

from fmrecon.data import split as splits
from fmrecon.data.formats import discover
from fmrecon.data.resize import KspaceResize
from fmrecon.data.slices import SliceDataset, collate
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import DataError
from fmrecon.physics.masks import MaskChoice, MaskFunc, mask_grid


def data_resize(cfg: dict) -> KspaceResize | None:
    """The k-space transform of ``data.image_size`` / ``image_resize`` /
    ``readout_oversampling`` (None: native size)."""
    resize = KspaceResize(
        size=cfg.get("image_size"),
        method=cfg.get("image_resize", "kspace"),
        readout_oversampling=int(cfg.get("readout_oversampling", 1)),
    )
    return resize if resize.active else None


def build_masks(cfg: dict) -> list[MaskFunc]:
    """One mask function per (acceleration, centre fraction) of a mask config."""
    grid = mask_grid(
        cfg["kind"],
        cfg["accelerations"],
        cfg.get("center_fractions"),
        cfg.get("num_acs"),
        "data.mask.center_fractions",
    )
    return [func for _, _, func in grid]


class EpochSeededDataset(Dataset):
    """Wraps the training SliceDataset: decodes the sampler's ``epoch * n + i``;
    masks drawn per item are seeded with ``(seed, epoch, i)``, and so is the
    choice among several accelerations with official mask files (item ``i``
    of epoch ``e`` reads the mask file of the acceleration drawn for
    ``(seed, e, i)``); fixed masks (``fixed=True``: official mask files of
    one acceleration, the same every epoch) are the dataset's own."""

    def __init__(self, base: SliceDataset, seed: int, fixed: bool = False):
        self.base = base
        self.seed = int(seed)
        self.fixed = bool(fixed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, encoded: int):
        epoch, i = divmod(int(encoded), len(self.base))
        if self.fixed:
            return self.base[i]
        return self.base.get(i, mask_seed=(self.seed, epoch, i))


class EpochBatchSampler:
    """Batches of items of one image size, reshuffled per epoch from
    ``(seed, epoch)``, split across ``num_replicas`` ranks with the same
    number of batches on each (DDP needs that). Yields encoded indices
    ``epoch * n + i``. Lightning calls ``set_epoch`` (it finds it as
    ``batch_sampler.sampler``)."""

    def __init__(
        self,
        shapes: Sequence[tuple],
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_uneven: bool = True,
    ):
        self.shapes = list(shapes)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.drop_uneven = drop_uneven
        self.epoch = 0
        self.start = 0  # batches of the epoch to leave out (set by ResumableLoader)
        self.sampler = self  # where Lightning looks for set_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[list[int]]:
        n = len(self.shapes)
        order = np.arange(n)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.shuffle:
            order = rng.permutation(n)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in order:
            groups[self.shapes[i]].append(int(i))
        batches = [
            idx[j : j + self.batch_size]
            for idx in groups.values()
            for j in range(0, len(idx), self.batch_size)
        ]
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        else:
            batches.sort(key=lambda b: b[0])
        return batches

    def _mine(self) -> list[list[int]]:
        batches = self._batches()
        if self.num_replicas > 1:
            if self.drop_uneven:  # every rank the same number of batches
                per = len(batches) // self.num_replicas
                batches = batches[: per * self.num_replicas]
            batches = batches[self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        # the epoch and start are read here, when the DataLoader's iterator is made
        # (not lazily, as a generator would: a lazy read differs with and without workers)
        n = len(self.shapes)
        return iter([[self.epoch * n + i for i in b] for b in self._mine()[self.start :]])

    def __len__(self) -> int:  # the whole epoch, also while resuming one
        return len(self._mine())


class ResumableLoader(DataLoader):
    """The training DataLoader (with an :class:`EpochBatchSampler`), exact on resume.

    - Its iterator makes torch's iterator at the first batch, not at ``iter()``:
      on resume Lightning calls ``iter()`` before ``set_epoch`` and, with worker
      processes, torch draws the first batches from the sampler at once, so the
      epoch would run in the previous epoch's order.
    - ``state_dict`` (saved by Lightning in every checkpoint) is the epoch and
      the number of its batches handed out; after ``load_state_dict`` that epoch
      resumes at the next batch (the sampler leaves the others out, nothing is
      read). Lightning restores its batch counters to match.
    - Worker processes get torch's base seed from a generator seeded with
      ``(seed, epoch)``, not from the main process's random state. (Items draw
      nothing from worker random state: masks are seeded by ``(seed, epoch, i)``.)
    """

    _epoch = 0
    _served = 0
    _pending: tuple[int, int] | None = None

    def __iter__(self) -> Iterator:
        return _FirstBatchIterator(self)

    def state_dict(self) -> dict:
        if self._pending is not None:  # loaded, not started yet
            return {"epoch": self._pending[0], "batches": self._pending[1]}
        return {"epoch": self._epoch, "batches": self._served}

    def load_state_dict(self, state: dict) -> None:
        self._pending = (int(state["epoch"]), int(state["batches"]))

    def _start(self) -> Iterator:
        sampler = self.batch_sampler
        epoch, skip = sampler.epoch, 0
        if self._pending is not None and self._pending[0] == epoch:
            skip = self._pending[1]  # resuming this epoch (else it ended: a new epoch)
        self._pending = None
        self._epoch, self._served = epoch, skip
        if self.generator is not None:
            seed = np.random.SeedSequence([sampler.seed, epoch]).generate_state(2)
            self.generator.manual_seed(int(seed[0]) << 32 | int(seed[1]))
        sampler.start = skip
        try:
            return super().__iter__()
        finally:
            sampler.start = 0


class _FirstBatchIterator:
    """Iterator of a :class:`ResumableLoader`: torch's iterator starts at the
    first ``next``; counts the batches handed out."""

    def __init__(self, loader: ResumableLoader):
        self.loader = loader
        self.it: Iterator | None = None

    def __iter__(self) -> _FirstBatchIterator:
        return self

    def __next__(self):
        if self.it is None:
            self.it = self.loader._start()
        batch = next(self.it)
        self.loader._served += 1
        return batch


def _keep(volumes: list[VolumeInfo], modalities, root) -> list[VolumeInfo]:
    """The volumes of ``data.modalities`` (all if it is empty)."""
    if not modalities:
        return volumes
    chosen = [v for v in volumes if v.modality in set(modalities)]
    if not chosen:
        found = sorted({v.modality for v in volumes})
        raise DataError(
            f"{root}: data.modalities {list(modalities)} match none of the files ({found})"
        )
    return chosen


class ReconDataModule(L.LightningDataModule):
    """Train/val data from a folder of CMRxRecon or fastMRI files, split by
    subject (the split file is created on first use and shared afterwards)."""

    def __init__(
        self,
        cfg: dict,
        seed: int = 0,
        split_path=None,
        global_rank: int | None = None,
        content_keys: bool = False,
    ):
        super().__init__()
        self.cfg = cfg
        # items carry their content key (FM-UNETR's feature cache), hashed in the loader
        self.content_keys = bool(content_keys)
        self.seed = int(seed)
        self.split_path = split_path or cfg.get("split")
        # the process's global rank, for writing a new split on rank 0 only (None: the
        # attached trainer's, else Lightning's rank of this process, see _is_global_zero)
        self.global_rank = global_rank
        self.volumes: dict[str, list[VolumeInfo]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.volumes:
            return
        cfg = self.cfg
        found, _ = discover(cfg["root"])
        found = [v for v in found if v.fully_sampled]
        if not found:
            raise DataError(f"{cfg['root']}: no fully sampled k-space files to train on")
        found = _keep(found, cfg.get("modalities"), cfg["root"])
        split = splits.load_or_create_split(
            self.split_path, found, cfg["split_fractions"], cfg["split_seed"],
            write=self._is_global_zero(), holdout=cfg.get("holdout"),
        )  # fmt: skip
        for name in ("train", "val"):
            self.volumes[name] = splits.select(found, split, name)

    def _is_global_zero(self) -> bool:
        if self.global_rank is not None:
            return self.global_rank == 0
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.is_global_zero
        # train() sets up the data before fit attaches the trainer: Lightning's rank of
        # this process, which a Trainer sets when it is built (its global rank: node rank
        # x devices + local rank) and which is read from RANK / LOCAL_RANK / SLURM_PROCID
        # / JSM_NAMESPACE_RANK before that
        return getattr(rank_zero_only, "rank", 0) == 0

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        cfg = self.cfg
        funcs = build_masks(cfg["mask"])
        official = bool(cfg["mask"].get("official"))
        vols = self.volumes[name]
        resize = data_resize(cfg)
        if name == "train" and not official:
            base = SliceDataset(vols, MaskChoice(funcs), mask_seed="random", resize=resize,
                                content_keys=self.content_keys)  # fmt: skip
        else:  # official mask files, and validation: the fixed per-file masks of evaluation
            # (official files of several accelerations: file i of the part uses
            # accelerations[i % n] for validation, see SliceDataset)
            base = SliceDataset(
                vols, MaskChoice(funcs), mask_seed="file", official_masks=official, resize=resize,
                content_keys=self.content_keys,
            )  # fmt: skip
        # training indices carry the epoch (EpochBatchSampler): decode them; official
        # mask files of several accelerations: the acceleration is drawn per item
        fixed = official and len(funcs) == 1
        ds = EpochSeededDataset(base, self.seed, fixed=fixed) if name == "train" else base
        shapes = [base.image_shape(i) for i, _, _ in base.index]
        world, rank = self._world()
        bs = cfg["batch_size"] if name == "train" else cfg["val_batch_size"]
        sampler = EpochBatchSampler(
            shapes, bs, shuffle, seed=self.seed, num_replicas=world, rank=rank,
            drop_uneven=name == "train",
        )  # fmt: skip
        if name != "train":  # validation indices are plain (epoch 0 encoding = identity)
            sampler.set_epoch(0)
            sampler.sampler = None
        workers = int(cfg["num_workers"])
        cls = ResumableLoader if name == "train" else DataLoader
        return cls(
            ds,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator() if name == "train" else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def describe(self) -> dict:
        """Counts for logs: files and slices per part."""
        out = {}
        for name, vols in self.volumes.items():
            out[name] = {
                "files": len(vols),
                "subjects": len({v.subject for v in vols}),
                "images": int(sum(v.n_images for v in vols)),
            }
        return out
