"""Reproducible subject-level train/val/test splits, shared as JSON.

All files of a subject (e.g. ``P001``'s cine and mapping files) land in the
same part, so no subject leaks between training and testing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from fmrecon.data.h5io import atomic_path
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError, DataError

SPLIT_NAMES = ("train", "val", "test")
# how long a rank other than 0 waits for rank 0 to write a new split file (seconds)
WAIT_S = 600.0


def make_split(
    subjects: Iterable[str], fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0
) -> dict:
    """Shuffle the unique subjects with ``seed`` and cut them by
    ``fractions`` (train, val, test). Every part with a non-zero fraction
    gets at least one subject when there are enough subjects."""
    subjects = sorted(set(subjects))
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    n = len(subjects)
    if n == 0:
        raise ConfigError("cannot split zero subjects")
    order = np.random.default_rng(seed).permutation(n)
    counts = [int(round(f * n)) for f in fractions]
    nonzero = [k for k in range(3) if fractions[k] > 0]
    if n >= len(nonzero):
        for k in nonzero:
            if counts[k] == 0:
                counts[k] = 1
    # the training part absorbs rounding
    counts[0] = n - counts[1] - counts[2]
    if counts[0] < 0:
        counts[2] += counts[0]
        counts[0] = 0
    parts, start = {}, 0
    for name, c in zip(SPLIT_NAMES, counts, strict=True):
        parts[name] = sorted(subjects[j] for j in order[start : start + c])
        start += c
    return {"seed": seed, "fractions": list(fractions), **parts}


def save_split(path: str | Path, split: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(split, indent=2) + "\n")


def load_split(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: split file not found")
    try:
        split = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    missing = [k for k in SPLIT_NAMES if not isinstance(split.get(k), list)]
    if missing:
        raise DataError(f"{path}: split file lacks the list(s) {', '.join(missing)}")
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for s in split[name]:
            if s in seen:
                raise DataError(f"{path}: subject '{s}' is in both '{seen[s]}' and '{name}'")
            seen[s] = name
    return split


def select(volumes: Sequence[VolumeInfo], split: dict, name: str) -> list[VolumeInfo]:
    """The volumes whose subject is in part ``name`` of ``split``."""
    if name not in SPLIT_NAMES:
        raise ConfigError(f"unknown split name '{name}' (choose from {', '.join(SPLIT_NAMES)})")
    keep = set(split[name])
    chosen = [v for v in volumes if v.subject in keep]
    if not chosen:
        raise DataError(f"split '{name}' selects none of the {len(volumes)} files found")
    return chosen


def wait_for_split(path: str | Path, timeout: float | None = None, poll: float = 0.2) -> dict:
    """Read the split at ``path`` once another process has written it (written
    atomically, so a file that exists is complete); ``timeout`` None: ``WAIT_S``."""
    path = Path(path)
    timeout = WAIT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise DataError(
                f"{path}: split file not written by global rank 0 within {timeout:g} s "
                "(does every node see the same run folder?)"
            )
        time.sleep(poll)
    return load_split(path)


def load_or_create_split(
    path: str | Path,
    volumes: Sequence[VolumeInfo],
    fractions=(0.7, 0.1, 0.2),
    seed: int = 0,
    write: bool = True,
    timeout: float | None = None,
) -> dict:
    """Read the split at ``path``, or make one over the subjects of
    ``volumes`` and write it there so later runs share it.

    ``write=False`` (every rank of a distributed run but global rank 0): never
    write, wait up to ``timeout`` s for the writer's file instead. Writing on all
    ranks collided across nodes on a shared filesystem (the temporary name is
    unique per process on one host only), and every rank reads the same split."""
    path = Path(path)
    if path.exists():
        return load_split(path)
    if not write:
        return wait_for_split(path, timeout)
    split = make_split((v.subject for v in volumes), fractions, seed)
    save_split(path, split)
    return split
