"""The Python API: ``fmrecon.load_model``, ``fmrecon.create_model`` and
``fmrecon.reconstruct`` (re-exported by the package).

It is the command line's path, not a second one: models come from the
registry (:func:`fmrecon.models.registry.create_model`) and the checkpoint
loader (:func:`fmrecon.models.io.load_model`), and run through the inference
engine (:class:`fmrecon.inference.engine.Engine`) exactly as ``fmrecon
reconstruct`` runs them: the k-space is multiplied by the mask (as
:class:`fmrecon.data.slices.SliceDataset` does), no other normalisation or
padding is applied outside the model (each model normalises itself), in eval
mode, without gradients, in batches of ``batch_size`` (the CLI's default 4),
so a slice gives the same image here and in ``fmrecon reconstruct``.

Accepted inputs (``reconstruct``):

- k-space: NumPy or torch, complex ``(C, H, W)`` (one slice) or
  ``(B, C, H, W)`` (a batch), or fastMRI's real view of them
  (``(..., 2)`` real/imaginary last, as ``fastmri.data.transforms.to_tensor``
  returns). H is the readout, W the phase encode.
- mask: bool or 0/1, ``(W,)``, ``(H, W)`` or ``(1, H, W)`` for every slice,
  ``(B, H, W)`` or ``(B, 1, H, W)`` per slice of a batch; H may be 1 for
  line masks (``(1, W)``, fastMRI's ``(1, 1, W)``); with real-view k-space
  fastMRI's trailing 1 (``(1, 1, W, 1)``) is accepted too.

The result is the magnitude image, float32, of the same kind (NumPy in,
NumPy out; torch in, torch out, on the k-space's device) and batch shape:
``(H, W)`` for one slice, ``(B, H, W)`` for a batch. Bad input is a one-line
:class:`fmrecon.errors.InputError` naming the shapes accepted.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from fmrecon.errors import InputError
from fmrecon.inference.engine import Engine
from fmrecon.models import io as model_io
from fmrecon.models.base import ReconModel, build_record
from fmrecon.models.registry import create_model

__all__ = ["create_model", "load_model", "reconstruct"]

KSPACE_SHAPES = (
    "complex (C, H, W) or (B, C, H, W), or fastMRI's real view (C, H, W, 2) / (B, C, H, W, 2)"
)


def load_model(
    path_or_hub_id: str | os.PathLike, model_name: str | None = None, map_location="cpu"
) -> ReconModel:
    """The model stored at ``path_or_hub_id``, in eval mode: an fmrecon
    checkpoint (``.ckpt``), a fastMRI VarNet state dict (``model_name=
    "e2e-varnet"``), a directory written by ``fmrecon export`` or a hub id
    ``hf:org/name[@revision]`` of one (fetched into the Hugging Face cache,
    not fetched under ``HF_HUB_OFFLINE=1``). See
    :func:`fmrecon.models.io.load_model`."""
    return model_io.load_model(path_or_hub_id, model_name=model_name, map_location=map_location)


def _shape(x) -> str:
    return "(" + ", ".join(str(int(s)) for s in x.shape) + ("," if x.ndim == 1 else "") + ")"


def _dtype(x: torch.Tensor) -> str:
    return str(x.dtype).removeprefix("torch.")


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise InputError(f"{what} must be a NumPy array or a torch tensor, got {type(x).__name__}")


def _complex_kspace(k: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(B, C, H, W) complex64 and whether the input was one slice."""
    if k.is_complex():
        if k.ndim not in (3, 4):
            raise InputError(f"k-space {_shape(k)} {_dtype(k)}: expected {KSPACE_SHAPES}")
        k = k.to(torch.complex64)
    elif k.dtype.is_floating_point and k.ndim in (4, 5) and k.shape[-1] == 2:
        # fastMRI's real view: real and imaginary parts along a last axis of 2
        k = torch.view_as_complex(k.to(torch.float32).contiguous())
    else:
        raise InputError(
            f"k-space {_shape(k)} {_dtype(k)}: expected {KSPACE_SHAPES} "
            "(real k-space is read as the real view only with a last axis of 2)"
        )
    single = k.ndim == 3
    return (k[None] if single else k), single


def _mask_error(m, b: int, h: int, w: int, single: bool) -> InputError:
    batch = "" if single else f"; per slice (B, H, W) = ({b}, {h}, {w}) or (B, 1, H, W)"
    return InputError(
        f"mask {_shape(m)}: expected (W,) = ({w},), (H, W) = ({h}, {w}) or (1, H, W) for every "
        f"slice{batch} (H may be 1 for a line mask), bool or 0/1"
    )


def _batch_mask(m: torch.Tensor, b: int, h: int, w: int, single: bool, real_view: bool):
    """The mask as (B, 1, H, W) bool."""
    given = m
    if real_view and m.ndim >= 2 and m.shape[-1] == 1 and w != 1:
        m = m[..., 0]  # fastMRI's mask of real-view k-space: (1, 1, W, 1)
    if m.ndim == 3:
        m = m[:, None]  # (1 | B, H, W) -> (1 | B, 1, H, W)
    if m.ndim > 4 or m.ndim == 0:
        raise _mask_error(given, b, h, w, single)
    m = m.reshape((1,) * (4 - m.ndim) + tuple(m.shape))
    lead, coil, mh, mw = m.shape
    if lead not in (1, b) or coil != 1 or mh not in (1, h) or mw != w:
        raise _mask_error(given, b, h, w, single)
    if m.dtype != torch.bool:
        if m.is_complex() or not bool(((m == 0) | (m == 1)).all()):
            raise InputError(f"mask {_shape(given)} {_dtype(m)}: expected bool or 0/1 values")
        m = m != 0
    return m.expand(b, 1, h, w).contiguous()


def _device(model, k: torch.Tensor) -> torch.device:
    """The model's device (its first parameter or buffer), else the k-space's."""
    if isinstance(model, torch.nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            return t.device
    return k.device


def reconstruct(
    model,
    kspace,
    mask,
    *,
    batch_size: int = 4,
    precision: str = "32",
):
    """Magnitude images of ``kspace`` under ``mask`` reconstructed by
    ``model`` (any registered model: :func:`create_model` /
    :func:`load_model`); see the module docstring for the shapes.
    ``precision``: ``"32"`` or ``"bf16"`` (autocast), as ``--precision``."""
    if not callable(model):
        raise InputError(
            f"model must be a model (fmrecon.create_model / fmrecon.load_model), "
            f"got {type(model).__name__}"
        )
    numpy_in = not isinstance(kspace, torch.Tensor)
    k_in = _as_tensor(kspace, "k-space")
    real_view = not k_in.is_complex()
    k, single = _complex_kspace(k_in)
    b, _, h, w = k.shape
    m = _batch_mask(_as_tensor(mask, "mask").to(k.device), b, h, w, single, real_view)
    if not bool(torch.isfinite(torch.view_as_real(k)).all()):
        raise InputError(f"k-space {_shape(k_in)}: holds non-finite values (NaN/Inf)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    record = build_record(model)
    label = record.name if record is not None else type(model).__name__
    engine = Engine(model, _device(model, k), precision, label)
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.inference_mode():
            masked = k * m  # as SliceDataset masks k-space
            images = torch.cat(
                [
                    engine(masked[i : i + batch_size], m[i : i + batch_size])
                    for i in range(0, b, batch_size)
                ]
            )
    finally:
        if was_training:
            model.train()
    images = images[0] if single else images
    if numpy_in:
        return images.cpu().numpy()
    return images.to(k_in.device)
