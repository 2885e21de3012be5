"""The CMRxRecon 2025 folder layout: where a file sits says its center, vendor,
field strength, patient, modality, task and sampling pattern.

Facts from the official repository (github.com/CmrxRecon/CMRxRecon2025):
``CMRxReconDemo/runRecon_2025.m`` (the directory walk),
``CMRxReconMaskGeneration/TaskAll/MaskGeneration_TrainingSet.m`` (training masks),
``Submission/Format_TaskR1.txt`` / ``Format_TaskR2.txt`` (validation layout):

- training: ``MultiCoil/{Modality}/TrainingSet/FullSample/{Center}/{Vendor}/{Patient}/
  {name}.mat``, k-space key ``kspace`` (older files ``kspace_full``; the mask
  generator ``ChallengeMaskGen_TrainingSet.m`` accepts both), masks in
  ``TrainingSet/Mask_TaskAll/{Center}/{Vendor}/{Patient}/{name}_mask_{Pattern}{R}.mat``
  (saved ``-v7.3``);
- validation / test: ``{Task}/MultiCoil/{Modality}/ValidationSet/UnderSample_{Task}/
  {Center}/{Vendor}/{Patient}/{name}_kus_{Pattern}{R}.mat`` (key ``kus``) beside
  ``Mask_{Task}/.../{name}_mask_{Pattern}{R}.mat`` (key ``mask``, (nx, ny) or k-t
  (nx, ny, nt)) and ``{name}_info.csv``;
- k-space (nx, ny, nc, nz, nt) for Cine, Mapping, T1rho, LGE, Perfusion, Flow2d and
  (nx, ny, nc, nz) for BlackBlood, T1w, T2w (``Format_TaskR1.txt`` rule 3);
  ``run4Ranking_2025.m`` tells the 4-D ones by file name (``blackblood``, ``T1w``,
  ``T2w``).

Vendor folders read ``{Maker}_{NN}T_{Model}`` (``Siemens_30T_Vida``,
``UIH_15T_umr680``, ``Siemens_30T_CIMA.X``): NN / 10 tesla. Patient numbers
repeat across vendors of one center (``Format_TaskR1.txt``: ``P004`` under both
vendors of Center002), so a subject is ``{Center}/{Vendor}/{Patient}``.

This module only reads paths; :mod:`fmrecon.data.cmrxrecon` reads the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: the modality folders of the 2025 release (``mainRun4Ranking_2025.m`` dataTypeList)
MODALITIES = (
    "Cine", "BlackBlood", "T1w", "T2w", "Mapping", "Flow2d", "Perfusion", "LGE", "T1rho"
)  # fmt: skip
#: modalities stored without a time axis, (nx, ny, nc, nz) (``Format_TaskR1.txt``)
MODALITIES_4D = ("BlackBlood", "T1w", "T2w")
#: the file-name marks run4Ranking_2025.m uses to tell a 4-D (single-frame) file
_NAME_4D = ("blackblood", "T1w", "T2w")
#: k-space keys of the 2025 release: training, older training files, validation/test
KSPACE_KEYS = ("kspace", "kspace_full")
KUS_KEY = "kus"
MASK_KEY = "mask"
#: the training set's mask folder (MaskGeneration_TrainingSet.m: TaskName = 'TaskAll')
TRAINING_MASK_FOLDER = "Mask_TaskAll"

_SAMPLE = re.compile(r"^(FullSample|UnderSample_(?P<task>\w+)|Mask_(?P<mtask>\w+))$")
_KUS = re.compile(r"^(?P<name>.+)_kus_(?P<pattern>[A-Za-z]+?)(?P<r>\d+)$")
_MASK = re.compile(r"^(?P<name>.+)_mask_(?P<pattern>[A-Za-z]+?)(?P<r>\d+)$")
_FIELD = re.compile(r"_(\d{2,3})T(?:_|$)")


def field_strength(vendor: str) -> float | None:
    """Tesla from a vendor folder name: ``Siemens_30T_Vida`` -> 3.0,
    ``UIH_15T_umr680`` -> 1.5, ``..._50T_...`` -> 5.0; None when the name has no
    ``_NNT`` part (an unknown naming is not an error: the field is then unknown)."""
    m = _FIELD.search(vendor)
    return int(m.group(1)) / 10.0 if m else None


@dataclass(frozen=True)
class Location:
    """Where a file sits in the 2025 layout."""

    root: Path  # the folder holding MultiCoil (for validation/test: the Task folder)
    modality: str  # the modality folder: Cine, Mapping, BlackBlood, ...
    set_name: str  # TrainingSet, ValidationSet, TestSet
    sample: str  # FullSample, UnderSample_TaskR1, Mask_TaskR1, Mask_TaskAll
    task: str | None  # TaskR1, ... (from UnderSample_/Mask_ folders; TaskAll for training)
    center: str
    vendor: str
    patient: str
    name: str  # the file's base name: cine_sax, T1map, blackblood, ...
    kind: str  # "full", "kus" or "mask"
    pattern: str | None = None  # Uniform, ktGaussian, ktRadial (kus and mask files)
    acceleration: int | None = None

    @property
    def subject(self) -> str:
        return f"{self.center}/{self.vendor}/{self.patient}"

    @property
    def field_strength(self) -> float | None:
        return field_strength(self.vendor)

    @property
    def four_d(self) -> bool:
        """No time axis: the BlackBlood, T1w and T2w folders, or a file named as
        run4Ranking_2025.m recognises them."""
        return self.modality in MODALITIES_4D or any(k in self.name for k in _NAME_4D)


def locate(path: str | Path) -> Location | None:
    """The 2025 location of ``path``, or None when it is not in the 2025 layout
    (``.../{Set}/{FullSample|UnderSample_T|Mask_T}/{Center}/{Vendor}/{Patient}/x.mat``
    below ``MultiCoil/{Modality}``). The file-name forms are checked by the reader."""
    path = Path(path)
    parts = path.parts
    if len(parts) < 8 or parts[-8] != "MultiCoil":
        return None
    m = _SAMPLE.match(parts[-5])
    if m is None or not parts[-6].endswith("Set"):
        return None
    stem = path.stem
    task = m.group("task") or m.group("mtask")
    kind, pattern, r = "full", None, None
    if m.group("task"):
        kind = "kus"
    elif m.group("mtask"):
        kind = "mask"
    named = {"kus": _KUS, "mask": _MASK}.get(kind)
    name = stem
    if named is not None:
        nm = named.match(stem)
        if nm is not None:
            name, pattern, r = nm.group("name"), nm.group("pattern"), int(nm.group("r"))
    return Location(
        root=Path(*parts[:-8]) if len(parts) > 8 else Path("."),
        modality=parts[-7],
        set_name=parts[-6],
        sample=parts[-5],
        task=task,
        center=parts[-4],
        vendor=parts[-3],
        patient=parts[-2],
        name=name,
        kind=kind,
        pattern=pattern,
        acceleration=r,
    )


def in_2023_layout(path: str | Path) -> bool:
    """True for the 2023/2024 layout ``.../{Set}/{FullSample|AccFactorRR|Mask_TaskN}/
    P001/x.mat`` (a patient folder straight below the sampling folder)."""
    parts = Path(path).parts
    return (
        len(parts) >= 4
        and parts[-4].endswith("Set")
        and re.match(r"^(FullSample|AccFactor\d+|Mask_Task\d+)$", parts[-3]) is not None
    )


def kus_mask_path(path: str | Path) -> Path:
    """The mask file of a ``_kus_`` file: ``UnderSample_{Task}/C/V/P/x_kus_ktRadial8.mat``
    -> ``Mask_{Task}/C/V/P/x_mask_ktRadial8.mat`` (``Format_TaskR1.txt``)."""
    path = Path(path)
    loc = locate(path)
    if loc is None or loc.kind != "kus" or loc.pattern is None:
        raise ValueError(f"{path}: not a CMRxRecon 2025 _kus_ file")
    sample_dir = path.parents[3]
    return (
        sample_dir.parent
        / f"Mask_{loc.task}"
        / loc.center
        / loc.vendor
        / loc.patient
        / f"{loc.name}_mask_{loc.pattern}{loc.acceleration}.mat"
    )


def training_mask_path(path: str | Path, pattern: str, acceleration: int) -> Path:
    """The official training mask of a fully sampled 2025 file:
    ``TrainingSet/FullSample/C/V/P/cine_sax.mat`` ->
    ``TrainingSet/Mask_TaskAll/C/V/P/cine_sax_mask_ktGaussian8.mat``
    (``MaskGeneration_TrainingSet.m``; the tutorial ``ShowCase.ipynb`` reads it there)."""
    path = Path(path)
    loc = locate(path)
    if loc is None or loc.kind != "full":
        raise ValueError(f"{path}: not a fully sampled CMRxRecon 2025 file")
    return (
        path.parents[4]
        / TRAINING_MASK_FOLDER
        / loc.center
        / loc.vendor
        / loc.patient
        / f"{loc.name}_mask_{pattern}{int(acceleration)}.mat"
    )
