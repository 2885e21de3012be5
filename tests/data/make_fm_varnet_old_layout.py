"""Writes ``fm_varnet_old_layout.ckpt``: a tiny FM-VarNet checkpoint in the
layout before FMVarNet became a VarNet subclass (state-dict keys
``model.varnet.*`` beside ``model.encoder.*``), through the user code path
``fmrecon.models.io.save_model``. It was run once with the code of commit
986b152 (where ``FMVarNet`` wrapped a ``VarNet`` as ``self.varnet``); with
today's code it would write the new layout, so it refuses to overwrite the
stored file (it documents how the file was made).

Beside the weights, ``checkpoint["fmrecon"]["reference_io"]`` holds a fixed
input (masked k-space complex (1, 2, 40, 36), mask bool (1, 1, 40, 36)) and
the model's output on it (1, 40, 36), computed with that old code.

    PYTHONPATH=src python tests/data/make_fm_varnet_old_layout.py
"""

from __future__ import annotations

from pathlib import Path

import torch

from fmrecon.encoders import TINY_OVERRIDES
from fmrecon.models.io import save_model
from fmrecon.models.registry import create_model
from fmrecon.physics.masks import create_mask

OUT = Path(__file__).with_name("fm_varnet_old_layout.ckpt")


def reference_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Masked k-space complex (1, 2, 40, 36) and an x4 equispaced mask (1, 1, 40, 36)."""
    g = torch.Generator().manual_seed(0)
    k = torch.view_as_complex(torch.randn(1, 2, 40, 36, 2, generator=g))
    mask = torch.from_numpy(create_mask("equispaced-fraction", 4, center_fraction=0.2)((40, 36)))
    mask = mask[None, None].bool()
    return k * mask, mask


def main() -> None:
    if OUT.exists():
        raise SystemExit(f"{OUT} exists: it must keep the old layout, not be regenerated")
    torch.manual_seed(0)
    model = create_model(
        "fm-varnet-clip",
        encoder_weights="random",
        allow_random_encoder=True,
        encoder_config=TINY_OVERRIDES["clip"],
        num_cascades=2,
        sens_chans=4,
        sens_pools=2,
        chans=(8, 8, 8, 8, 8),
        fuse_layers=3,  # the encoder runs 3 blocks: a smaller file
        skip_layers=(3, 2, 1),
        zero_init_head=False,  # every decoder weight changes the output
    ).eval()
    k, mask = reference_inputs()
    with torch.no_grad():
        out = model(k, mask)
    io = {"masked_kspace": k, "mask": mask, "output": out}
    save_model(model, OUT, reference_io=io)
    print(OUT, OUT.stat().st_size, "bytes,", len(model.state_dict()), "tensors")


if __name__ == "__main__":
    main()
