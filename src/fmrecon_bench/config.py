"""What a benchmark run measures: :class:`BenchConfig`, its defaults and the
sizes and models the goals are measured at."""

from __future__ import annotations

from dataclasses import dataclass, field

from fmrecon.errors import ConfigError
from fmrecon.models.memory import parse_size as _parse_size
from fmrecon.models.registry import get_spec

MODELS = ("e2e-varnet", "fm-varnet-clip", "fm-unetr-clip", "unet")
SIZES = ((218, 180), (246, 512))
QUICK_SIZES = ((64, 48),)
# quick: the unrolled networks with 3 of their 12 cascades (an FM-VarNet step is
# ~14 s on 2 cores even at 64x48, its 12 ViT-B passes do not shrink with the image)
QUICK_CASCADES = 3
PRECISIONS = ("fp32", "bf16")
GOALS = (1, 2, 3, 4, 5, 6, 7, 8)
CHECKPOINTED = ("e2e-varnet", "fm-varnet")  # families with per-cascade checkpointing
MIN_SIDE = 32  # the simulator's smallest image side


@dataclass
class BenchConfig:
    """What to run. ``model_options`` (model name -> create_model options) and
    ``encoder`` exist for tests (tiny models); ``isolate=False`` runs every
    measurement in this process (memory figures then less reliable)."""

    models: tuple[str, ...] = MODELS
    sizes: tuple[tuple[int, int], ...] = SIZES
    coils: int = 10
    repeats: int = 3
    warmup: int = 1
    device: str = "auto"
    precisions: tuple[str, ...] = PRECISIONS
    goals: tuple[int, ...] = GOALS
    quick: bool = False
    threads: int | None = None
    timeout: float | None = 3600.0
    encoder: str = "clip-vit-b16"
    model_options: dict[str, dict] = field(default_factory=dict)
    isolate: bool = True
    interleave: bool | None = None  # None: True for the full bench, False for quick
    eval_checkpoint: str | None = None  # goal 3: a trained model to evaluate
    train_steps: int = 5  # goal 3 without a checkpoint: fp32 steps first (see goals.bf16)
    # TF32 matmuls / convolutions on Ampere+ GPUs (fmrecon.utils.set_tf32), in every
    # measurement process; off: the fp32 rows and baselines (goals 1, 3) are fp32
    tf32: bool = False
    # torch.compile options of every measured model (fmrecon.utils.compile_options), None:
    # eager. Compiled in the warm-up (at least one warm-up call), compile time reported apart
    compile: dict | None = None
    # where the time goes: a per-component table of E2E-VarNet and FM-VarNet
    # (fmrecon_bench.profile) at the first size
    profile: bool = False

    def __post_init__(self) -> None:
        if self.interleave is None:
            self.interleave = not self.quick

    @classmethod
    def create(cls, quick: bool = False, **kw) -> BenchConfig:
        """Defaults of the full or the quick bench; ``None`` values keep them."""
        base = {"sizes": QUICK_SIZES, "repeats": 1, "warmup": 1} if quick else {}
        base.update({k: v for k, v in kw.items() if v is not None})
        cfg = cls(quick=quick, **base)
        cfg.validate()
        if quick:
            for name in (*cfg.models, "e2e-varnet", fm_varnet(cfg)):  # goals 1, 3 too
                if supports_checkpointing(name):
                    cfg.model_options.setdefault(name, {"num_cascades": QUICK_CASCADES})
        return cfg

    def validate(self) -> None:
        for name in self.models:
            get_spec(name)  # one-line error for an unknown model
        for h, w in self.sizes:
            if h < MIN_SIDE or w < MIN_SIDE:
                raise ConfigError(f"--sizes: {h}x{w} too small (each side >= {MIN_SIDE})")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise ConfigError(f"unknown precision '{p}' (choose from {', '.join(PRECISIONS)})")
        if self.coils < 1 or self.repeats < 1 or self.warmup < 0:
            raise ConfigError("--coils and --repeats must be >= 1, --warmup >= 0")
        if not self.models and not self.goals:
            raise ConfigError("nothing to run: no models and no goals")


def parse_size(text: str) -> tuple[int, int]:
    """``"218x180"`` -> (218, 180): H (readout) x W (phase encode, the mask axis)."""
    return _parse_size(text, min_side=1)  # BenchConfig.validate checks the bench's minimum


def size_label(size) -> str:
    """(218, 180) -> ``"218x180"``; a label stays as it is."""
    return size if isinstance(size, str) else f"{size[0]}x{size[1]}"


def options_of(cfg: BenchConfig, name: str) -> dict:
    """The create_model options of model ``name`` in this run."""
    return dict(cfg.model_options.get(name, {}))


def supports_checkpointing(name: str) -> bool:
    """Whether the registered model has per-cascade activation checkpointing."""
    return get_spec(name).family in CHECKPOINTED


def cine_size(sizes) -> tuple[int, int]:
    """The largest size (by pixels): where goals 3a, 4 and 6 are measured."""
    return tuple(max(sizes, key=lambda s: s[0] * s[1]))


def fm_varnet(cfg: BenchConfig) -> str:
    """The FM-VarNet of goals 3 and 4: the run's first, else fm-varnet-clip."""
    fm = [m for m in cfg.models if get_spec(m).family == "fm-varnet"]
    return fm[0] if fm else "fm-varnet-clip"
