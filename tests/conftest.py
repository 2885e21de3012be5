"""Shared fixtures: tiny files in the real formats, written by hand so the
readers are tested against known content (independently of the simulator)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from fmrecon.data.h5io import write_mat73
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c

# two pytest workers on two cores: one thread each, or they fight over the cores
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch):
    """Tests never touch the network: encoder weights missing from the cache are
    not fetched (HF_HUB_OFFLINE=1, as a user would set it); tests of the fetch
    path unset it and fake the download."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
 <encoding>
  <encodedSpace><matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize></encodedSpace>
  <reconSpace><matrixSize><x>{rh}</x><y>{rw}</y><z>1</z></matrixSize></reconSpace>
  <encodingLimits>
   <kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum>
   <center>{center}</center></kspace_encoding_step_1>
  </encodingLimits>
 </encoding>
</ismrmrdHeader>"""


def random_kspace(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def write_cmrx(path: Path, kspace_matlab: np.ndarray, key: str = "kspace_full") -> Path:
    """kspace in MATLAB order (kx, ky, coil, slice, time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mat73(path, {key: kspace_matlab})
    return path


def write_fastmri(path: Path, kspace: np.ndarray, crop=None, header=True, **attrs) -> Path:
    """kspace (slices, coils, H, W); target = centre-cropped RSS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rss(ifft2c(kspace), dim=1).astype(np.float32)
    if crop is not None:
        h, w = img.shape[-2:]
        ch, cw = crop
        img = img[:, (h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("reconstruction_rss", data=img)
        if header:
            h, w = kspace.shape[-2:]
            f.create_dataset(
                "ismrmrd_header",
                data=HEADER.format(
                    h=h, w=w, rh=h // 2, rw=w, maximum=w - 1, center=w // 2
                ).encode(),
            )
        f.attrs["max"] = float(img.max())
        f.attrs["norm"] = float(np.linalg.norm(img))
        f.attrs["acquisition"] = attrs.get("acquisition", "AXT1")
        f.attrs["patient_id"] = attrs.get("patient_id", path.stem)
    return path


@pytest.fixture
def cmrx_tree(tmp_path) -> Path:
    """A CMRxRecon 2023 layout: 3 subjects of cine_sax (kx=24, ky=40, 3 coils,
    2 slices, 4 frames), one T1map, an undersampled file with its mask."""
    root = tmp_path / "MultiCoil"
    base = root / "Cine" / "TrainingSet"
    for i, subj in enumerate(["P001", "P002", "P003"]):
        write_cmrx(base / "FullSample" / subj / "cine_sax.mat", random_kspace((24, 40, 3, 2, 4), i))
    write_cmrx(
        root / "Mapping" / "TrainingSet" / "FullSample" / "P001" / "T1map.mat",
        random_kspace((24, 40, 3, 2, 9), 9),
    )
    full = random_kspace((24, 40, 3, 2, 4), 0)
    mask = np.zeros((24, 40), dtype=bool)
    mask[:, 0::4] = True
    write_cmrx(
        base / "AccFactor04" / "P001" / "cine_sax.mat",
        full * mask[:, :, None, None, None],
        "kspace_sub04",
    )
    write_mat73(
        base / "AccFactor04" / "P001" / "cine_sax_mask.mat", {"mask04": mask.astype(np.float64)}
    )
    return tmp_path


# The reference implementations the tests compare fmrecon with (tests/oracles.py,
# test_baselines.py, test_encoders.py, ...). A missing one is an error, never a
# skip: the suite would otherwise pass with dozens of comparisons not run.
# scripts/bootstrap.sh installs them (fastmri with --no-deps; runstats and
# pandas, its imports, come with the dev extra).
ORACLES = {
    "fastmri.models": "pip install --no-deps fastmri==0.3.0",
    "fastmri.data.subsample": "pip install --no-deps fastmri==0.3.0",
    "fastmri.evaluate": "pip install runstats pandas (fastmri's own imports)",
    "transformers": "pip install transformers",
    "skimage.metrics": "pip install scikit-image",
}


def missing_oracles() -> list[str]:
    """``module (how to install it)`` for every oracle that does not import."""
    import importlib

    missing = []
    for module, hint in ORACLES.items():
        try:
            importlib.import_module(module)
        except ImportError as err:
            missing.append(f"{module} ({err}; {hint})")
    return missing


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # xdist workers: the controller has checked
        return
    missing = missing_oracles()
    if missing:
        raise pytest.UsageError(
            "test oracle packages missing (bash scripts/test.sh installs them): "
            + "; ".join(missing)
        )
