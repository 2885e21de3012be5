"""Synthetic multi-coil MRI data written in the real file formats.

Three generators, all deterministic for a given seed (subject ``i`` of seed ``s``
is the same whatever the number of subjects asked for):

- :func:`simulate_cmrxrecon`: cardiac cine in the CMRxRecon 2023 layout
  (``MultiCoil/Cine/TrainingSet/{FullSample,AccFactor04,08,10}/P001/cine_sax.mat``
  and ``cine_lax.mat``, with the official masks). The anatomy is an analytic
  2-D + time torso phantom (:func:`cardiac_phantom`): chest wall, subcutaneous
  fat, lungs with vessels, liver, spine, descending aorta and a beating heart
  whose left and right ventricles contract over the cardiac cycle (the blood
  pool shrinks in systole while the myocardium thickens, its area conserved),
  changing from base to apex along the slices.
- :func:`simulate_cmrxrecon2025`: the CMRxRecon 2025 layout with several
  simulated centers and scanners (``multicenter``: coil count, matrix, readout
  oversampling, noise, field strength setting SNR and T1 contrast) and 4-D and
  5-D modalities (Cine, Mapping, BlackBlood, T1w, T2w).
- :func:`simulate_fastmri_brain`: axial T1 brain volumes in the fastMRI
  multi-coil layout (``multicoil_val/file_brain_AXT1_sim_0001.h5``), built from
  the MNI152 T1 template that ships inside nilearn (:func:`brain_phantom`), with a
  simulated skull and scalp and 2x readout oversampling like real fastMRI brain
  data.
- :func:`simulate_ismrmrd`: the cardiac cine as raw scanner data, ISMRMRD
  ``.h5`` files as a scanner converter writes them (``ismrmrd/FullSample/
  P001_cine_sax.h5``, undersampled scans in ``ismrmrd/AccFactor04/``): header,
  noise-adjust readouts, one acquisition per line, 2x readout oversampling.

All apply smooth complex coil sensitivities (:func:`coil_maps`), a smooth image
phase, a smooth multiplicative tissue texture, and complex Gaussian noise in
k-space.

Geometry conventions: images are (..., H, W) with H the readout (fully
sampled, CMRxRecon ``kx``) and W the phase-encode axis (``ky``), as everywhere
in fmrecon. For the cardiac phantom H runs along the patient's left-right axis
(the longer torso axis; patient's left at high H) and W along
anterior-posterior (anterior at low W), so the heart sits in the central third
of H and the central half of W like the CMRxRecon ranking crop assumes; show
``image.T`` for a radiological view. For the brain H is anterior-posterior
(anterior at row 0), W left-right.

Value scale: the coil-combined image of blood (cardiac) or white matter (brain)
has magnitude about :data:`IMAGE_SCALE` (5e-4), so RSS images are of order
1e-4..1e-3 like real CMRxRecon data; ``noise`` is the standard deviation of the
complex k-space noise (per coil and sample, orthonormal FFT) relative to that
scale.

Modules: ``common`` (defaults, labels, seeding, shapes, smooth fields),
``cardiac`` and ``brain`` (phantoms), ``acquisition`` (coil maps, k-space,
one subject), ``writers`` (data sets in the file formats), ``multicenter``
(CMRxRecon 2025 scanners and modalities), ``raw`` (ISMRMRD
raw data), ``plot`` (overview).
"""

from fmrecon.data.simulate.acquisition import (
    coil_maps,
    simulate_brain_volume,
    simulate_cardiac_subject,
)
from fmrecon.data.simulate.brain import brain_phantom, mni_template, sample_brain_anatomy
from fmrecon.data.simulate.cardiac import cardiac_curve, cardiac_phantom, sample_cardiac_anatomy
from fmrecon.data.simulate.common import (
    ACCELERATIONS,
    BRAIN_COILS,
    BRAIN_FOV_MM,
    BRAIN_SIZE,
    BRAIN_SLICES,
    BRAIN_VOLUMES,
    CARDIAC_COILS,
    CARDIAC_FOV_CM,
    CARDIAC_FRAMES,
    CARDIAC_SIZE,
    CARDIAC_SLICES,
    CARDIAC_SUBJECTS,
    CMRX_ACS_LINES,
    IMAGE_SCALE,
    LABELS,
    LAX_VIEWS,
    MIN_SIZE,
    NOISE,
    Progress,
    SeedLike,
)
from fmrecon.data.simulate.multicenter import SCANNERS, Scanner, simulate_cmrxrecon2025
from fmrecon.data.simulate.plot import plot_subject
from fmrecon.data.simulate.raw import NOISE_READOUTS, raw_header, simulate_ismrmrd, write_ismrmrd
from fmrecon.data.simulate.writers import (
    cmrxrecon_mask,
    ismrmrd_header,
    simulate_cmrxrecon,
    simulate_fastmri_brain,
)

__all__ = [
    "ACCELERATIONS",
    "BRAIN_COILS",
    "BRAIN_FOV_MM",
    "BRAIN_SIZE",
    "BRAIN_SLICES",
    "BRAIN_VOLUMES",
    "CARDIAC_COILS",
    "CARDIAC_FOV_CM",
    "CARDIAC_FRAMES",
    "CARDIAC_SIZE",
    "CARDIAC_SLICES",
    "CARDIAC_SUBJECTS",
    "CMRX_ACS_LINES",
    "IMAGE_SCALE",
    "LABELS",
    "LAX_VIEWS",
    "MIN_SIZE",
    "NOISE",
    "NOISE_READOUTS",
    "Progress",
    "SCANNERS",
    "Scanner",
    "SeedLike",
    "brain_phantom",
    "cardiac_curve",
    "cardiac_phantom",
    "cmrxrecon_mask",
    "coil_maps",
    "ismrmrd_header",
    "mni_template",
    "plot_subject",
    "raw_header",
    "sample_brain_anatomy",
    "sample_cardiac_anatomy",
    "simulate_brain_volume",
    "simulate_cardiac_subject",
    "simulate_cmrxrecon",
    "simulate_cmrxrecon2025",
    "simulate_fastmri_brain",
    "simulate_ismrmrd",
    "write_ismrmrd",
]
