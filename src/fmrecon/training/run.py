"""How a run executes: the Lightning Trainer (one CPU to many GPU nodes),
callbacks, loggers, atomic checkpoints, resume, and the run folder.

Run folder (``output_dir/name``)::

    config.yaml          the resolved configuration
    environment.json     versions, devices, encoder weight source, rank check
    split.json           the subject split (unless data.split points elsewhere)
    checkpoints/best.ckpt, last.ckpt (every epoch), last-step.ckpt (checkpoint_every_n_steps)
    csv/version_N/metrics.csv   CSV log per attempt (a resume starts version N+1)
    tensorboard/version_N/      TensorBoard events per attempt
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fmrecon import __version__
from fmrecon.data.h5io import atomic_path
from fmrecon.errors import ConfigError, FmreconError
from fmrecon.models.io import CHECKPOINT_KEY, init_weights
from fmrecon.training.config import dump_config, logger_names, run_dir, split_path
from fmrecon.training.data import ReconDataModule
from fmrecon.training.module import THREADS_KEY, ReconModule
from fmrecon.utils import (
    compile_cache_dir,
    compile_seconds,
    count_parameters,
    restore_tf32,
    set_tf32,
    tf32_state,
)


class _QuietTips(logging.Filter):
    """Drop Lightning's advertising tips from the log (not its warnings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        # and its advice to turn TF32 on: fmrecon's trainer.tf32 decides (default off)
        return "Tip:" not in msg and "torch.set_float32_matmul_precision" not in msg


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_QuietTips())
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# frozen encoders are in eval mode on purpose (FrozenEncoder.train keeps them so)
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file beside the target, fsync, then
    rename: a crash or a full disk never leaves a truncated checkpoint under
    the final name, and earlier checkpoints stay intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    torch.save(checkpoint, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as err:
            raise FmreconError(
                f"cannot write checkpoint {path}: {err.strerror or err}; "
                "earlier checkpoints are intact"
            ) from None


class RankSyncCheck(Callback):
    """At the end of training, compare a checksum of the trainable weights
    across ranks (DDP keeps them identical) and record it."""

    def __init__(self):
        self.result: dict | None = None

    @staticmethod
    def checksum(module: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(sum(p.double().sum() for p in module.parameters() if p.requires_grad))

    def on_train_end(self, trainer, pl_module) -> None:
        value = torch.tensor([self.checksum(pl_module.model)], dtype=torch.float64)
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            value = value.to(pl_module.device)
            gathered = [torch.zeros_like(value) for _ in range(trainer.world_size)]
            torch.distributed.all_gather(gathered, value)
            values = [float(v) for v in gathered]
        else:
            values = value.tolist()
        self.result = {
            "world_size": trainer.world_size,
            "weight_checksums": values,
            "in_sync": max(values) - min(values) <= 1e-9 * max(1.0, abs(values[0])),
        }


class ThreadCount(Callback):
    """The intra-op thread count of a run: ``threads`` (a resume: the count the
    run so far had, see :func:`checkpoint_threads`) or, None, the process's.

    Set in ``setup``, after Lightning's DDP launchers set theirs; ``used`` is
    the count the run trained with. The process's count is restored by
    :func:`train`."""

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self.used: int | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self.used = torch.get_num_threads()


class TF32Policy(Callback):
    """``trainer.tf32`` in every process of the run: set in ``setup``, so also in
    processes a DDP launcher spawns (torch's flags are not inherited by them)."""

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)

    def setup(self, trainer, pl_module, stage: str) -> None:
        set_tf32(self.enabled)


def checkpoint_threads(path: Path) -> int | None:
    """The intra-op thread count (``torch.get_num_threads()``) of the attempt
    that wrote a checkpoint (None: written before it was recorded).

    CPU results depend on that count and on nothing else of the process
    (measured, torch 2.13, 2 cores: an E2E-VarNet's 1x1 output convolution
    differs by 2e-7 between 1 and 2 threads, and 24 training steps end 43 of
    44 weight tensors apart, by up to 2e-3; with one count, fresh processes,
    data-loader workers, a count set by ``torch.set_num_threads`` after other
    work, and kill-and-resume give the same bits), so a resume trains with the
    count the run so far had."""
    # mmap: the metadata without reading the weights
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    value = (ckpt.get(CHECKPOINT_KEY) or {}).get(THREADS_KEY)
    return None if value is None else int(value)


def environment(module: ReconModule, cfg: dict) -> dict:
    """What produced a run: versions, devices, encoder weights."""
    import lightning
    import transformers

    record = module.model.record
    return {
        "fmrecon": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        # the count only (no CUDA initialisation before fit: the ddp_fork / ddp_notebook
        # strategies refuse to fork once CUDA is initialised); names: gpu_names() after fit
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cpu_count": os.cpu_count(),
        "model": record.name,
        "encoder_weights": record.encoder_weights,
        "encoder_random_init": record.random_encoder,
        "total_params": count_parameters(module.model),
        "trainable_params": count_parameters(module.model, trainable_only=True),
        "tf32": cfg["trainer"]["tf32"],  # what the config asked (fmrecon.utils.set_tf32)
        "tf32_flags": tf32_state(),  # what torch was set to
        # trainer.compile as resolved, and where inductor caches compiled graphs
        "compile": module.compile,
        "compile_cache_dir": str(compile_cache_dir()) if module.compile else None,
        "config_sha256": hashlib.sha256(dump_config(cfg).encode()).hexdigest(),
    }


def gpu_names() -> list[str]:
    """The CUDA devices' names (initialises CUDA: call it after fit)."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def build_module(cfg: dict) -> ReconModule:
    """The LightningModule of a run; a model with nothing to train (zero-filled,
    the classical baselines) is a one-line ConfigError."""
    module = ReconModule(cfg["model"], cfg["optim"], run_config=cfg)
    if count_parameters(module.model, trainable_only=True) == 0:
        raise ConfigError(
            f"model '{cfg['model']['name']}' has no trainable parameters: there is nothing to "
            f"train (run it with `fmrecon evaluate --model {cfg['model']['name']} --data DIR "
            f"--out DIR` or `fmrecon reconstruct INPUT --model {cfg['model']['name']} --out DIR`)"
        )
    return module


def describe_module(module: ReconModule) -> str:
    record = module.model.record
    lines = [
        f"model {record.name}: {count_parameters(module.model):,} parameters, "
        f"{count_parameters(module.model, trainable_only=True):,} trainable"
    ]
    if record.encoder_weights:
        lines.append(f"encoder weights: {record.encoder_weights}")
        if record.random_encoder:
            lines.append("WARNING: the foundation-model encoder is RANDOMLY INITIALISED")
    return "\n".join(lines)


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def make_loggers(cfg: dict, out: Path) -> list:
    """The CSV log (always: a new csv/version_N per attempt, so a resumed run
    never overwrites its history) and those ``trainer.logger`` names:
    ``tensorboard`` (``<run>/tensorboard``), ``wandb`` (Weights & Biases:
    project ``$WANDB_PROJECT`` or ``fmrecon``, the run's name; ``WANDB_MODE=
    offline`` keeps it in ``<run>/wandb``), ``mlflow`` (experiment
    ``$MLFLOW_EXPERIMENT_NAME`` or ``fmrecon``, tracking ``$MLFLOW_TRACKING_URI``
    or the SQLite store ``<run>/mlflow.db``: MLflow 3 refuses its file store
    by default, SQLite is its default). The optional packages are checked by the config."""
    names = logger_names(cfg["trainer"]["logger"])
    loggers: list = [CSVLogger(out, name="csv")]
    if "tensorboard" in names:
        loggers.append(TensorBoardLogger(out, name="tensorboard", default_hp_metric=False))
    if "wandb" in names:
        from lightning.pytorch.loggers import WandbLogger

        project = os.environ.get("WANDB_PROJECT") or "fmrecon"
        loggers.append(WandbLogger(name=out.name, save_dir=str(out), project=project))
    if "mlflow" in names:
        from lightning.pytorch.loggers import MLFlowLogger

        loggers.append(
            MLFlowLogger(
                experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME") or "fmrecon",
                run_name=out.name,
                tracking_uri=os.environ.get("MLFLOW_TRACKING_URI")
                or f"sqlite:///{out / 'mlflow.db'}",
            )
        )
    return loggers


def _finish_wandb(cfg: dict) -> None:
    """End the run's W&B run (Lightning leaves it open until the process exits:
    its log would be unfinished, and a second ``train`` in the same process, a
    notebook or a sweep, would log into it)."""
    wandb = sys.modules.get("wandb")
    if "wandb" in logger_names(cfg["trainer"]["logger"]) and getattr(wandb, "run", None):
        wandb.finish()


def make_trainer(cfg: dict, out: Path, extra_callbacks=()) -> tuple[L.Trainer, RankSyncCheck]:
    t = cfg["trainer"]
    ckpt_dir = out / "checkpoints"
    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_ssim", mode="max", save_top_k=1,
        enable_version_counter=False,
    )  # fmt: skip
    # last.ckpt after every epoch (after its validation). Not save_last of the one above:
    # Lightning writes that only when val_ssim improved, so last.ckpt kept an older epoch
    last = ModelCheckpoint(
        dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False
    )
    callbacks: list[Callback] = [best, last]
    if t["checkpoint_every_n_steps"]:
        step_ckpt = ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="last-step",
            every_n_train_steps=t["checkpoint_every_n_steps"],
            save_top_k=1,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        )
        callbacks.append(step_ckpt)
    if t["early_stopping_patience"]:
        callbacks.append(
            EarlyStopping(monitor="val_ssim", mode="max", patience=t["early_stopping_patience"])
        )
    sync = RankSyncCheck()
    callbacks += [sync, *extra_callbacks]
    loggers = make_loggers(cfg, out)
    strategy = t["strategy"]
    if strategy == "ddp" and t["accelerator"] == "cpu":
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo")
    trainer = L.Trainer(
        default_root_dir=out,
        max_epochs=t["max_epochs"],
        accelerator=t["accelerator"],
        devices=t["devices"],
        num_nodes=t["num_nodes"],
        strategy=strategy,
        precision=t["precision"],
        accumulate_grad_batches=t["accumulate_grad_batches"],
        gradient_clip_val=t["gradient_clip_val"],
        # None (not 1.0) for "all": Lightning then stays quiet about it
        limit_train_batches=None if t["limit_train_batches"] == 1.0 else t["limit_train_batches"],
        limit_val_batches=None if t["limit_val_batches"] == 1.0 else t["limit_val_batches"],
        val_check_interval=None if t["val_check_interval"] == 1.0 else t["val_check_interval"],
        log_every_n_steps=t["log_every_n_steps"],
        enable_progress_bar=t["progress_bar"],
        deterministic=t["deterministic"],
        sync_batchnorm=t["sync_batchnorm"],
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # EpochBatchSampler shards by rank itself
        enable_model_summary=False,
    )
    return trainer, sync


def latest_checkpoint(out: Path) -> Path | None:
    """The newer of the run's epoch-end ``last.ckpt`` and step ``last-step.ckpt``."""
    found = [p for p in (out / "checkpoints").glob("last*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def _init_from(module: ReconModule, source, ckpt_path, log) -> None:
    """``model.init_from``: the weights loaded into the new run's model before
    step 0 (every rank loads them); a resume restores its own instead."""
    if not source:
        return
    if ckpt_path is not None:
        if log:
            log(f"init_from {source}: not applied, resuming from {ckpt_path}")
        return
    report = init_weights(module.model, source)
    for line in report.lines() if log else []:
        log(line)


def train(cfg: dict, resume: str | bool = False, extra_callbacks=(), log=print) -> dict:
    """Run ``cfg``; returns a summary (best checkpoint, best val SSIM, ...)."""
    out = run_dir(cfg)
    ckpt_path = None
    if resume:
        ckpt_path = Path(resume) if isinstance(resume, str) else latest_checkpoint(out)
        if ckpt_path is None or not ckpt_path.is_file():
            raise ConfigError(f"--resume: no checkpoint at {ckpt_path or out / 'checkpoints'}")
    elif latest_checkpoint(out) is not None:
        raise ConfigError(
            f"run folder {out} already holds checkpoints: pass --resume to continue it, "
            "or choose another name= / output_dir="
        )
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    process_tf32 = tf32_state()
    set_tf32(cfg["trainer"]["tf32"])
    module = build_module(cfg)
    data = ReconDataModule(
        cfg["data"], seed=cfg["seed"], split_path=split_path(cfg),
        content_keys=bool(cfg["model"].get("feature_cache")),
    )  # fmt: skip
    # a resume trains with the thread count the run so far had (bit-exact on CPU)
    threads = ThreadCount(checkpoint_threads(ckpt_path) if ckpt_path else None)
    process_threads = torch.get_num_threads()
    tf32 = TF32Policy(cfg["trainer"]["tf32"])
    trainer, sync = make_trainer(cfg, out, (threads, tf32, *extra_callbacks))
    _init_from(
        module, cfg["model"]["init_from"], ckpt_path, log if trainer.is_global_zero else None
    )
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "config.yaml") as tmp:
            tmp.write_text(dump_config(cfg))
        env = environment(module, cfg)
        _write_json(out / "environment.json", env)
        log(describe_module(module))
        if threads.threads not in (None, process_threads):
            log(
                f"resume: {threads.threads} intra-op threads, as the run so far (this process "
                f"has {process_threads}): CPU kernels round differently with another count"
            )
    data.setup("fit")
    if trainer.is_global_zero:
        counts = data.describe()
        log("data: " + ", ".join(f"{k} {v['files']} files / {v['images']} images"
                                 for k, v in counts.items()))  # fmt: skip
        from fmrecon.training.data import data_resize

        resize = data_resize(cfg["data"])
        if resize is not None:
            mask = cfg["data"]["mask"]
            log(
                f"image size: {resize.describe()} before masking; targets are the RSS of "
                f"the transformed coil images; masks: {mask['kind']} generated at that size "
                "(not the challenge's mask files, which exist at the native size only)"
            )
    compiling = compile_seconds()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    finally:
        torch.set_num_threads(process_threads)
        restore_tf32(process_tf32)
        _finish_wandb(cfg)
    ckpt = trainer.checkpoint_callback
    summary = {
        "run_dir": str(out),
        "best_checkpoint": ckpt.best_model_path,
        "last_checkpoint": str(out / "checkpoints" / "last.ckpt"),
        "best_val_ssim": None if ckpt.best_model_score is None else float(ckpt.best_model_score),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "ranks": sync.result,
        "is_global_zero": trainer.is_global_zero,
        # seconds this process spent in torch.compile (trainer.compile; forward and
        # backward graphs, inductor's cache lookups included), apart from training
        "compile_seconds": round(compile_seconds() - compiling, 2) if module.compile else None,
    }
    if trainer.is_global_zero:
        env = json.loads((out / "environment.json").read_text())
        env["gpus"] = gpu_names()
        env["rank_check"] = sync.result
        env["torch_threads"] = threads.used
        _write_json(out / "environment.json", env)
        _write_json(out / "train_summary.json", summary)
    return summary
