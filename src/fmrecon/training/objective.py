"""The training objective, apart from Lightning (the benchmark imports it
without paying for Lightning's import)."""

from __future__ import annotations

import torch

from fmrecon.inference.engine import Engine
from fmrecon.losses import SSIMLoss


def training_loss(engine: Engine, loss: SSIMLoss, batch) -> torch.Tensor:
    """The training objective of one batch: SSIM loss (data range = each
    slice's ``max_value``) of the engine's images against the targets. The
    trainer and the benchmark's training step both compute it here."""
    return loss(engine.predict(batch), batch.target, batch.max_value)
