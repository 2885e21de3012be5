"""What a run computes: any registered model trained with the SSIM loss.

``ReconModule`` wraps a model built by name (``create_model``); it never
special-cases a model. Checkpoints carry the model's spec under
``checkpoint["fmrecon"]`` so ``fmrecon.models.io.load_model`` can rebuild it
without the config.
"""

from __future__ import annotations

import contextlib
import warnings

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from fmrecon.inference.engine import Engine
from fmrecon.losses import SSIMLoss, ssim
from fmrecon.models import io as model_io
from fmrecon.models.io import CHECKPOINT_KEY
from fmrecon.models.registry import create_model
from fmrecon.training.objective import training_loss
from fmrecon.utils import compile_options

THREADS_KEY = "torch_threads"  # intra-op threads of the attempt that wrote a checkpoint


class ReconModule(L.LightningModule):
    """SSIM-loss training of ``create_model(model_cfg["name"], ...)``.

    Batches are :class:`fmrecon.data.slices.Sample`. Validation reports the
    mean over slices of SSIM (data range = the slice's ``max_value``, as the
    loss), PSNR and NMSE, reduced exactly across ranks.

    Random draws in the model (e.g. dropout) come from torch's generator
    seeded before every training batch from ``(seed, epoch, batch, rank)``,
    so a run resumed from any checkpoint draws what the uninterrupted run drew.
    """

    def __init__(self, model_cfg: dict, optim_cfg: dict, run_config: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(
            model_cfg["name"],
            encoder_weights=model_cfg.get("encoder_weights", "default"),
            allow_random_encoder=bool(model_cfg.get("allow_random_encoder", False)),
            encoder_config=model_cfg.get("encoder_config") or None,
            **dict(model_cfg.get("options") or {}),
        )
        # lean checkpoints: the frozen encoder by reference (checked here, at the start)
        self.encoder_reference = None
        if model_cfg.get("checkpoint_encoder", "weights") == "reference":
            self.encoder_reference = model_io.encoder_reference(self.model)
        # the one inference path: Lightning places the model and sets the precision
        # trainer.compile: the model compiled in place, region by region (its state-dict
        # keys, so checkpoints and resume, are the eager model's)
        trainer_cfg = (run_config or {}).get("trainer") or {}
        self.compile = compile_options(trainer_cfg.get("compile"), "trainer.compile")
        self.engine = Engine(self.model, label=model_cfg["name"], compile=self.compile)
        self.loss = SSIMLoss()
        self.optim_cfg = optim_cfg
        self._val_sums: torch.Tensor | None = None
        self.feature_cache = None
        if model_cfg.get("feature_cache"):
            # opt-in FM-UNETR encoder-feature cache; the model consults it itself
            from fmrecon.models.feature_cache import attach_feature_cache

            mask_cfg = ((run_config or {}).get("data") or {}).get("mask") or {}
            self.feature_cache = attach_feature_cache(
                self.model,
                model_cfg["feature_cache"],
                dtype=model_cfg.get("feature_cache_dtype") or "float32",
                fixed_masks=bool(mask_cfg.get("official")),
            )
        self._cache_mark = (0, 0)
        self.seed = int((run_config or {}).get("seed", 0))
        trainer_cfg = (run_config or {}).get("trainer") or {}
        self.log_images = int(trainer_cfg.get("log_images", 0))
        self._val_images: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._image_batches: set[int] = set()

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(masked_kspace, mask)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        words = [self.seed, self.current_epoch, batch_idx, self.global_rank]
        state = np.random.SeedSequence(words).generate_state(2)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))

    def _cache_keys(self, batch):
        """The batch's loader-side content keys for the feature cache's next
        lookup (no copy of the k-space back to the host to hash it)."""
        if self.feature_cache is None:
            return contextlib.nullcontext()
        return self.feature_cache.batch_keys(getattr(batch, "content_key", None))

    def training_step(self, batch, batch_idx):
        with self._cache_keys(batch):
            loss = training_loss(self.engine, self.loss, batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch.kspace.shape[0])
        return loss

    def on_train_epoch_start(self) -> None:
        if self.feature_cache is not None:
            st = self.feature_cache.stats
            self._cache_mark = (st["hits"], st["misses"])

    def on_train_epoch_end(self) -> None:
        if self.feature_cache is None:
            return
        st = self.feature_cache.stats
        hits, misses = st["hits"] - self._cache_mark[0], st["misses"] - self._cache_mark[1]
        rate = hits / max(1, hits + misses)
        self.log("feature_cache_hit_rate", float(rate), sync_dist=False)
        if self.current_epoch >= 1 and misses and not hits:
            warnings.warn(
                "feature cache: no hits in an epoch after the first; the encoder inputs are "
                "not repeating (masks changing?)",
                stacklevel=1,
            )

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(5, dtype=torch.float64, device=self.device)
        self._val_images = {}
        self._image_batches = self._log_image_batches()

    def _log_image_batches(self) -> set[int]:
        """Validation batches whose first image goes to TensorBoard: ``log_images``
        of them spread evenly over the epoch (fixed, so every epoch shows the same
        slices); none in Lightning's sanity check, off rank 0 or without TensorBoard."""
        trainer = self._trainer
        if (
            trainer is None
            or trainer.sanity_checking
            or trainer.global_rank != 0
            or not self.log_images
            or not any(isinstance(lg, TensorBoardLogger) for lg in trainer.loggers)
        ):
            return set()
        n = int(sum(trainer.num_val_batches))
        if n <= 0:
            return set()
        return {int(i) for i in np.linspace(0, n - 1, min(self.log_images, n)).round()}

    def validation_step(self, batch, batch_idx):
        with self._cache_keys(batch):
            out = self.engine.predict(batch)
        tgt = batch.target.float()
        s = ssim(out, tgt, batch.max_value)
        err = ((out - tgt) ** 2).flatten(1)
        mse = err.mean(dim=1)
        psnr = 10 * torch.log10(batch.max_value.double() ** 2 / mse.double().clamp_min(1e-20))
        nmse = err.sum(dim=1).double() / (tgt.flatten(1) ** 2).sum(dim=1).double().clamp_min(1e-20)
        loss = (1 - s).sum()
        # the count by a fill on the device (torch.tensor(n, device=) would be a
        # host-to-device copy that waits for the GPU on every validation batch)
        count = torch.full((), float(out.shape[0]), dtype=torch.float64, device=self.device)
        self._val_sums += torch.stack(
            (s.double().sum(), psnr.sum(), nmse.sum(), loss.double(), count)
        )
        if batch_idx in self._image_batches:
            self._val_images[batch_idx] = (tgt[0].detach().cpu(), out[0].detach().float().cpu())

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        n = max(float(sums[4]), 1.0)
        names = ("val_ssim", "val_psnr", "val_nmse", "val_loss")
        for name, value in zip(names, sums[:4] / n, strict=True):
            # already reduced across ranks: every rank logs the same value
            self.log(name, value.float(), prog_bar=name == "val_ssim", sync_dist=False)
        self._write_val_images()

    def _write_val_images(self) -> None:
        """Target, reconstruction and error map of the kept validation images, as
        fastMRI's MriModule logs them (tags ``val_images_idx_<batch>/target``,
        ``/reconstruction``, ``/error``; the error scaled by its own max). Unlike
        fastMRI, target and reconstruction share the target's max (clipped at 1),
        so a reconstruction too bright or too dark shows."""
        writers = [lg.experiment for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        for idx, (target, output) in sorted(self._val_images.items()):
            scale = float(target.max()) or 1.0
            error = (output - target).abs()
            images = {
                "target": target / scale,
                "reconstruction": (output / scale).clamp(0.0, 1.0),
                "error": error / (float(error.max()) or 1.0),
            }
            for name, img in images.items():
                for w in writers:
                    w.add_image(
                        f"val_images_idx_{idx}/{name}", img, self.global_step, dataformats="HW"
                    )
        self._val_images = {}

    def configure_optimizers(self):
        cfg = self.optim_cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        cls = torch.optim.AdamW if cfg["name"] == "adamw" else torch.optim.Adam
        opt = cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], betas=tuple(cfg["betas"]))
        if not cfg.get("lr_step_epochs"):
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg["lr_step_epochs"], gamma=cfg["lr_gamma"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "model_spec": self.model.record.as_dict(),
            "config": self.hparams.get("run_config"),
            # CPU kernels round differently with another thread count (a 1x1 conv
            # differs by 2e-7 between 1 and 2 threads): --resume restores this count
            THREADS_KEY: torch.get_num_threads(),
        }
        if self.encoder_reference is not None:  # leave the frozen encoder out
            checkpoint[CHECKPOINT_KEY][model_io.ENCODER_REFERENCE] = self.encoder_reference
            state = checkpoint["state_dict"]
            for k in model_io.encoder_keys(self.model):
                state.pop(model_io.STATE_PREFIX + k, None)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming from a lean checkpoint: the encoder this run loaded must be
        the one the checkpoint was trained with; its tensors fill the gap."""
        ref = (checkpoint.get(CHECKPOINT_KEY) or {}).get(model_io.ENCODER_REFERENCE)
        if not ref:
            return
        from fmrecon.errors import ConfigError

        enc = model_io.frozen_encoder(self.model)
        got = model_io.encoder_digest(enc) if enc is not None else None
        if got != ref.get("sha256"):
            raise ConfigError(
                f"resume: this run's encoder ({getattr(enc, 'weight_source', None)}) is not the "
                f"one the checkpoint was trained with ({ref.get('weight_source')})"
            )
        state = checkpoint["state_dict"]
        current = self.state_dict()
        for k in model_io.encoder_keys(self.model):
            state.setdefault(model_io.STATE_PREFIX + k, current[model_io.STATE_PREFIX + k])
