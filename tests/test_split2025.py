"""Held-out splits (config ``data.holdout``): whole centers, vendors, scanners or
field strengths in test and never in train/val, CMRxRecon 2025 files grouped by
center and patient number."""

from __future__ import annotations

import json

import pytest

from cmrx25_files import small_2025_tree
from conftest import random_kspace, write_cmrx
from fmrecon.data import split as splits
from fmrecon.data.formats import discover
from fmrecon.data.simulate.multicenter import simulate_cmrxrecon2025
from fmrecon.errors import ConfigError
from fmrecon.training.config import load_config
from fmrecon.training.data import ReconDataModule


@pytest.fixture(scope="module")
def sim_volumes(tmp_path_factory):
    out = tmp_path_factory.mktemp("split25")
    simulate_cmrxrecon2025(
        out,
        n_subjects=3,
        modalities=["Cine", "BlackBlood"],
        lax=False,
        size=(32, 32),
        n_slices=1,
        n_frames=2,
        n_coils=2,
    )
    return out, discover(out)[0]


def _parts(volumes, split):
    return {
        name: splits.select(volumes, split, name) if split[name] else []
        for name in splits.SPLIT_NAMES
    }


@pytest.mark.parametrize(
    ("by", "test", "held"),
    [
        ("center", ["Center002"], lambda v: v.center == "Center002"),
        ("vendor", ["UIH"], lambda v: v.vendor.startswith("UIH_")),
        ("scanner", ["Siemens_15T_Aera"], lambda v: v.vendor == "Siemens_15T_Aera"),
        ("field", ["5T"], lambda v: v.field_strength == 5.0),
        ("field", [1.5], lambda v: v.field_strength == 1.5),
    ],
)
def test_every_held_out_file_in_test_none_in_train_or_val(sim_volumes, by, test, held):
    _, volumes = sim_volumes
    split = splits.make_holdout_split(volumes, by, test, (0.7, 0.3, 0.0), seed=1)
    parts = _parts(volumes, split)
    assert all(held(v) for v in parts["test"]) or split["holdout"]["mixed_groups"]
    assert {v.path for v in volumes if held(v)} <= {v.path for v in parts["test"]}
    assert not any(held(v) for v in parts["train"] + parts["val"])
    assert parts["train"] and parts["val"]
    # one simulated person per center and patient number: never in two parts
    groups = [{v.split_group for v in parts[n]} for n in splits.SPLIT_NAMES]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert split["holdout"]["by"] == by and "center and patient" in split["grouping"]


def test_mixed_group_goes_to_test_whole(sim_volumes):
    _, volumes = sim_volumes
    # Center002's P001 was scanned on both its scanners: holding out one scanner
    # sends the person's files from the other scanner to test too
    split = splits.make_holdout_split(volumes, "scanner", ["UIH_30T_umr880"], (0.7, 0.3, 0.0))
    assert split["holdout"]["mixed_groups"] == [
        "Center002/P001",
        "Center002/P002",
        "Center002/P003",
    ]
    train_val = _parts(volumes, split)["train"] + _parts(volumes, split)["val"]
    assert not any(v.center == "Center002" for v in train_val)


def test_in_distribution_test_part_when_asked(sim_volumes):
    _, volumes = sim_volumes
    split = splits.make_holdout_split(volumes, "center", ["Center005"], (0.6, 0.2, 0.2))
    test = _parts(volumes, split)["test"]
    assert {v.center for v in test} > {"Center005"}  # unseen plus some seen centers


def test_holdout_errors(sim_volumes, tmp_path):
    _, volumes = sim_volumes
    with pytest.raises(ConfigError, match=r"no file has center 'Center009' \(found: Center001"):
        splits.make_holdout_split(volumes, "center", ["Center009"])
    with pytest.raises(ConfigError, match="leaves no files to train on"):
        splits.make_holdout_split(volumes, "field", [1.5, 3.0, 5.0])
    with pytest.raises(ConfigError, match="must be one of center, vendor, scanner, field"):
        splits.make_holdout_split(volumes, "disease", ["HCM"])
    old = write_cmrx(
        tmp_path / "MultiCoil/Cine/TrainingSet/FullSample/P001/cine_sax.mat",
        random_kspace((24, 40, 2, 1, 2)),
    )
    with pytest.raises(ConfigError, match="found: none: not CMRxRecon 2025 data"):
        splits.make_holdout_split(discover(old)[0], "center", ["Center001"])


def test_split_file_records_and_guards_the_holdout(sim_volumes, tmp_path):
    _, volumes = sim_volumes
    path = tmp_path / "split.json"
    hold = {"by": "center", "test": ["Center005"]}
    split = splits.load_or_create_split(path, volumes, (0.8, 0.2, 0.0), 0, holdout=hold)
    stored = json.loads(path.read_text())
    assert stored["holdout"]["test"] == ["Center005"] and stored["test"] == split["test"]
    assert splits.load_or_create_split(path, volumes, holdout=hold) == stored
    with pytest.raises(
        ConfigError,
        match=r"split.json: split file holds out center "
        r"\['Center005'\], data.holdout asks for center \['Center001'\]",
    ):
        splits.load_or_create_split(path, volumes, holdout={"by": "center", "test": ["Center001"]})
    with pytest.raises(ConfigError, match="data.holdout asks for nothing"):
        splits.load_or_create_split(path, volumes)


def test_2025_split_groups_patients_across_vendors(tmp_path):
    small_2025_tree(tmp_path)
    volumes = discover(tmp_path)[0]
    split = splits.make_split([v.split_group for v in volumes], (0.5, 0.5, 0.0), seed=0)
    assert sorted(split["train"] + split["val"]) == ["Center001/P001", "Center002/P004"]
    p004 = [v for v in volumes if v.patient == "P004"]
    part = "train" if "Center002/P004" in split["train"] else "val"
    assert {v.path for v in p004} <= {v.path for v in splits.select(volumes, split, part)}


def test_config_and_datamodule_hold_out_a_center(sim_volumes, tmp_path):
    root, volumes = sim_volumes
    cfg = load_config(
        None,
        [
            f"data.root={root}",
            "data.holdout.by=center",
            "data.holdout.test=[Center004, Center005]",
            "data.split_fractions=[0.75, 0.25, 0.0]",
            "data.mask.kind=cmrxrecon25-uniform",
            "data.mask.accelerations=[8]",
        ],
    )
    dm = ReconDataModule(cfg["data"], split_path=tmp_path / "split.json")
    dm.setup()
    seen = {v.center for v in dm.volumes["train"] + dm.volumes["val"]}
    assert seen == {"Center001", "Center002", "Center003"}
    test = splits.select(volumes, splits.load_split(tmp_path / "split.json"), "test")
    assert {v.center for v in test} == {"Center004", "Center005"}
    for bad, message in [
        (["data.holdout.by=hospital", "data.holdout.test=[a]"], "must be one of center"),
        (["data.holdout.by=center"], "must list the held-out center values"),
        (["data.holdout.test=[Center005]"], "needs 'data.holdout.by'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, [f"data.root={root}", *bad])
