"""A PNG overview of the simulated data (:func:`plot_subject`, from Python:
``fmrecon.data.simulate.plot_subject(path)``; no command writes it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmrecon.data.h5io import atomic_path
from fmrecon.data.simulate.acquisition import simulate_brain_volume, simulate_cardiac_subject
from fmrecon.data.simulate.cardiac import cardiac_curve
from fmrecon.data.simulate.common import CARDIAC_COILS, LABELS, LAX_VIEWS, NOISE
from fmrecon.physics.fft import ifft2c

N_SAX = 5  # short-axis slices shown, base to apex


def plot_subject(
    path: str | Path,
    seed: int = 0,
    *,
    size: Sequence[int] = (128, 96),
    n_frames: int = 10,
    n_coils: int = CARDIAC_COILS,
    brain_size: Sequence[int] = (256, 128),
    noise: float = NOISE,
) -> Path:
    """Save a PNG overview of simulated subject 0 of ``seed``: RSS of every
    frame of a mid-ventricular short-axis slice (full field of view, then
    zoomed on the heart), the slices from base to apex and the long-axis
    views, the coil-map magnitudes of that slice, and fastMRI brain targets.
    Cardiac images are shown transposed (radiological view: anterior up,
    patient's left on the right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sax = simulate_cardiac_subject(
        0, seed, size=size, n_slices=N_SAX, n_frames=n_frames, n_coils=n_coils, noise=noise
    )
    lax = simulate_cardiac_subject(
        0, seed, size=size, n_frames=n_frames, n_coils=n_coils, noise=noise, view="lax"
    )
    ncol = max(n_frames, n_coils, N_SAX + LAX_VIEWS)
    brain = simulate_brain_volume(0, seed, size=brain_size, n_slices=ncol, noise=noise)
    fig, axes = plt.subplots(5, ncol, figsize=(1.9 * ncol, 1.9 * 5 * 0.85), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    _plot_cardiac(axes, sax, lax, size, n_frames, ncol)
    _plot_coils_and_brain(axes, sax, brain, n_coils)
    fig.suptitle(
        f"fmrecon simulated data (seed {seed}): cine {size[0]}x{size[1]} (kx x ky), "
        f"{n_coils} coils, RSS of fully sampled k-space; fastMRI AXT1 brain, k-space "
        f"{brain_size[0]}x{brain_size[1]}, reconstruction_rss",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", facecolor="white")
    plt.close(fig)
    return path


def _show(ax, img, title, vmax):
    ax.imshow(img, cmap="gray", vmin=0, vmax=vmax, interpolation="lanczos")
    ax.set_title(title, fontsize=8)


def _heart_zoom(labels: np.ndarray, size: Sequence[int]) -> tuple[slice, slice]:
    """A window centred on the left ventricle of a label map (H, W)."""
    h, w = size
    heart = np.isin(labels, [LABELS["lv_blood"], LABELS["lv_myocardium"]])
    ci, cj = (int(round(float(c.mean()))) for c in np.nonzero(heart))
    hh, hw = int(h * 0.22), int(w * 0.28)
    ci, cj = min(max(ci, hh), h - hh), min(max(cj, hw), w - hw)
    return slice(ci - hh, ci + hh), slice(cj - hw, cj + hw)


def _plot_cardiac(axes, sax: dict, lax: dict, size, n_frames: int, ncol: int) -> None:
    """Rows 0-2: the frames of the mid slice (full, zoomed), SAX slices and LAX views."""
    sax_rss = np.sqrt((np.abs(ifft2c(sax["kspace"])) ** 2).sum(axis=2))  # (T, Z, H, W)
    lax_rss = np.sqrt((np.abs(ifft2c(lax["kspace"])) ** 2).sum(axis=2))
    mid = N_SAX // 2
    es = int(np.argmax(cardiac_curve(np.arange(n_frames) / n_frames)))
    zoom = _heart_zoom(sax["labels"][0, mid], size)
    vmax = np.percentile(sax_rss[:, mid], 99.7)
    for t in range(n_frames):
        tag = " (ED)" if t == 0 else " (ES)" if t == es else ""
        _show(axes[0, t], sax_rss[t, mid].T, f"SAX frame {t + 1}{tag}", vmax)
        _show(axes[1, t], sax_rss[t, mid][zoom].T, f"heart, frame {t + 1}", vmax)
    for z in range(N_SAX):
        where = "base" if z == 0 else "apex" if z == N_SAX - 1 else f"slice {z + 1}"
        _show(axes[2, z], sax_rss[0, z].T, f"SAX {where}", np.percentile(sax_rss[0, z], 99.7))
    views = [(0, v, "ED") for v in range(LAX_VIEWS)] + [(es, LAX_VIEWS - 1, "ES"), (es, 0, "ES")]
    for j, (t, v, tag) in enumerate(views[: ncol - N_SAX]):
        img = lax_rss[t, v].T
        _show(axes[2, N_SAX + j], img, f"LAX {v + 2}-chamber {tag}", np.percentile(img, 99.7))


def _plot_coils_and_brain(axes, sax: dict, brain: dict, n_coils: int) -> None:
    """Row 3: coil-map magnitudes of the mid SAX slice; row 4: brain targets."""
    maps = np.abs(sax["maps"][N_SAX // 2])
    for c in range(n_coils):
        _show(axes[3, c], maps[c].T, f"|coil {c + 1}|", maps.max())
    target = brain["target"]
    bmax = np.percentile(target, 99.7)
    for z in range(target.shape[0]):
        _show(axes[4, z], target[z], f"brain slice {z + 1}", bmax)
