"""Reproducible subject-level train/val/test splits, shared as JSON.

All files of a subject (e.g. ``P001``'s cine and mapping files) land in the
same part, so no subject leaks between training and testing. The unit is a
volume's :attr:`~fmrecon.data.types.VolumeInfo.split_group`: the subject, or
for CMRxRecon 2025 the center and patient number (``Center002/P004``), since one
number under two vendors of a center may be one person on two scanners.

A held-out split (:func:`make_holdout_split`, config ``data.holdout``) puts every
file of whole centers, vendors, scanners or field strengths into ``test`` and
none into ``train``/``val``: the generalisation question of CMRxRecon 2025
(task R1: centers and scanners never seen in training; S1: 5 T).
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
#: what a held-out split can hold out, and each volume's value for it
HOLDOUT_BY = {
    "center": lambda v: v.center,
    "vendor": lambda v: v.vendor.split("_")[0] if v.vendor else None,  # the maker: Siemens
    "scanner": lambda v: v.vendor,  # the vendor folder: Siemens_15T_Aera
    "field": lambda v: v.field_strength,  # tesla, e.g. 5.0
}
GROUPING = (
    "files grouped by subject; CMRxRecon 2025 by center and patient number (one number "
    "under two vendors of a center may be one person: never in two parts)"
)
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


def make_holdout_split(
    volumes: Sequence[VolumeInfo],
    by: str,
    test: Sequence,
    fractions: Sequence[float] = (0.8, 0.2, 0.0),
    seed: int = 0,
) -> dict:
    """Hold out every file whose ``by`` value (:data:`HOLDOUT_BY`) is in ``test``:
    their split groups go to ``test``; the other groups are split by ``fractions``
    as :func:`make_split` does (a non-zero test fraction adds in-distribution
    groups to ``test``, for a seen-vs-unseen comparison). A group with files both
    held out and not (one person on a held-out and a kept scanner) goes to ``test``
    whole, listed under ``holdout.mixed_groups``."""
    if by not in HOLDOUT_BY:
        raise ConfigError(f"data.holdout.by must be one of {', '.join(HOLDOUT_BY)}, got '{by}'")
    value = HOLDOUT_BY[by]
    wanted = [_holdout_value(by, t) for t in test]
    if not wanted:
        raise ConfigError(f"data.holdout.by: {by} needs data.holdout.test (the held-out values)")
    found = sorted({value(v) for v in volumes if value(v) is not None}, key=str)
    missing = [t for t in wanted if t not in found]
    if missing:
        raise ConfigError(
            f"data.holdout.test: no file has {by} {missing[0]!r} "
            f"(found: {', '.join(map(str, found)) or 'none: not CMRxRecon 2025 data'})"
        )
    held = {v.split_group for v in volumes if value(v) in wanted}
    kept = {v.split_group for v in volumes if value(v) not in wanted}
    rest = sorted(kept - held)
    if not rest:
        raise ConfigError(
            f"data.holdout.test: holding out {by} {wanted} leaves no files to train on"
        )
    split = make_split(rest, fractions, seed)
    split["test"] = sorted(set(split["test"]) | held)
    split["grouping"] = GROUPING
    split["holdout"] = {
        "by": by,
        "test": wanted,
        "held_out_groups": len(held),
        "mixed_groups": sorted(held & kept),
        "unknown": sorted({v.split_group for v in volumes if value(v) is None}),
    }
    return split


def _holdout_value(by: str, value):
    if by == "field":
        try:
            return float(str(value).upper().removesuffix("T"))  # 5, 5.0, "5T"
        except ValueError:
            raise ConfigError(
                f"data.holdout.test: field strength {value!r} is not a number"
            ) from None
    return str(value)


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
    """The volumes whose split group (the subject; 2025: center/patient) is in
    part ``name`` of ``split``."""
    if name not in SPLIT_NAMES:
        raise ConfigError(f"unknown split name '{name}' (choose from {', '.join(SPLIT_NAMES)})")
    keep = set(split[name])
    chosen = [v for v in volumes if v.split_group in keep]
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
    holdout: dict | None = None,
) -> dict:
    """Read the split at ``path``, or make one over the subjects of
    ``volumes`` and write it there so later runs share it. ``holdout``
    (``{"by": ..., "test": [...]}``, config ``data.holdout``) makes a held-out
    split (:func:`make_holdout_split`); an existing file must have been made
    with the same one.

    ``write=False`` (every rank of a distributed run but global rank 0): never
    write, wait up to ``timeout`` s for the writer's file instead. Writing on all
    ranks collided across nodes on a shared filesystem (the temporary name is
    unique per process on one host only), and every rank reads the same split."""
    path = Path(path)
    holdout = holdout if holdout and holdout.get("by") else None
    if path.exists() or not write:
        split = load_split(path) if path.exists() else wait_for_split(path, timeout)
        _check_same_holdout(path, split, holdout)
        return split
    if holdout is not None:
        split = make_holdout_split(
            volumes, holdout["by"], holdout.get("test") or [], fractions, seed
        )
    else:
        split = make_split((v.split_group for v in volumes), fractions, seed)
    save_split(path, split)
    return split


def _check_same_holdout(path: Path, split: dict, holdout: dict | None) -> None:
    """A split file read back must hold out what the config asks for."""
    stored = split.get("holdout")
    want = None
    if holdout is not None:
        want = {
            "by": holdout["by"],
            "test": [_holdout_value(holdout["by"], t) for t in holdout.get("test") or []],
        }
    have = {"by": stored["by"], "test": stored["test"]} if stored else None
    if want != have:

        def say(h):
            return f"{h['by']} {h['test']}" if h else "nothing"

        raise ConfigError(
            f"{path}: split file holds out {say(have)}, data.holdout asks for {say(want)} "
            "(delete the file or point data.split to another one)"
        )
