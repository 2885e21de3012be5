"""Settings that matter on a GPU, checked on the CPU where the CPU can show them:
the precision values the training config accepts, pinned batches, the FFT dtype
under bf16 autocast for every model, and the split file written by global rank 0
alone in a distributed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fmrecon.data import split as splits
from fmrecon.data.slices import Sample, collate
from fmrecon.data.types import VolumeInfo
from fmrecon.errors import ConfigError, DataError
from fmrecon.models.registry import MODELS
from fmrecon.training.config import load_config
from fmrecon_bench import config, tasks
from test_fm_models import _inputs, tiny_model

# ----------------------------------------------------------------------- bf16 weight copy


def test_bench_timing_bf16_alone_inference_then_training():
    """The full bench's timing process (``memory=False``) times each precision's
    inference before the training steps; with bf16 alone no fp32 call dropped the
    encoder's inference-mode weight copy in between, and training crashed on it."""
    from fmrecon.encoders import TINY_OVERRIDES
    from fmrecon_bench.table import measure_model

    options = {"num_cascades": 2, "sens_chans": 4, "sens_pools": 2, "chans": [16, 16, 8, 8, 8],
               "encoder_config": TINY_OVERRIDES["clip"]}  # fmt: skip
    out = measure_model("fm-varnet-clip", options, (32, 32), 2, [("bf16", False), ("bf16", True)],
                        memory=False, repeats=1, warmup=0, device="cpu", threads=None)  # fmt: skip
    assert len(out["infer"]["bf16"]) == 1
    assert [len(v["times"]) for v in out["train"]] == [1, 1]


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize("value", ["bf16-true", "16-true", "64-true", "64", "transformer-engine"])
def test_precisions_that_cannot_run_are_refused_at_config_time(value):
    """bf16-true / 16-true cast the weights while inputs and the k-space physics
    stay fp32/complex64: Lightning accepted them and the first conv crashed."""
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"trainer.precision={value}"], require_data=False)
    msg = str(err.value)
    assert "\n" not in msg and "'trainer.precision'" in msg and value in msg
    assert all(p in msg for p in ("32-true", "bf16-mixed", "16-mixed"))


@pytest.mark.parametrize("value", ["32-true", "bf16-mixed", "16-mixed", "32", "bf16", "16"])
def test_supported_precisions_and_lightning_aliases_are_accepted(value):
    cfg = load_config(None, [f"trainer.precision={value}"], require_data=False)
    assert str(cfg["trainer"]["precision"]) == value  # passed on to Lightning as given


# ----------------------------------------------------------------------------- pinning


def _batch() -> Sample:
    one = Sample(
        kspace=torch.randn(2, 8, 6, dtype=torch.complex64),
        mask=torch.ones(1, 8, 6, dtype=torch.bool),
        target=torch.rand(8, 6),
        max_value=torch.tensor(1.0),
        num_low_frequencies=torch.tensor(2),
        fname="a.h5",
        slice=3,
        modality="cine",
    )
    return collate([one, one])


TENSOR_FIELDS = ("kspace", "mask", "target", "max_value", "num_low_frequencies")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning needs CUDA")
def test_sample_pin_memory_pins_every_tensor():
    batch = _batch()
    pinned = torch.utils.data._utils.pin_memory.pin_memory(batch)
    assert isinstance(pinned, Sample)
    assert all(getattr(pinned, f).is_pinned() for f in TENSOR_FIELDS)
    assert all(torch.equal(getattr(pinned, f), getattr(batch, f)) for f in TENSOR_FIELDS)
    assert pinned.fname == batch.fname and pinned.slice == batch.slice


def test_sample_pin_memory_is_what_the_loader_calls(monkeypatch):
    """torch's pin step dispatches to the batch's own ``pin_memory()``. With CUDA
    (simulated: ``Tensor.pin_memory`` recorded) every tensor field is pinned and
    the metadata are left alone; without CUDA the batch itself comes back."""
    from torch.utils.data._utils.pin_memory import pin_memory

    batch = _batch()
    if not torch.cuda.is_available():
        assert pin_memory(batch) is batch  # a no-op that does not raise
    pinned_ids = set()

    def fake_pin(t, *args, **kwargs):
        out = t.clone()
        pinned_ids.add(id(out))
        return out

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    out = pin_memory(batch)
    assert isinstance(out, Sample) and out is not batch
    assert {id(getattr(out, f)) for f in TENSOR_FIELDS} == pinned_ids
    assert all(torch.equal(getattr(out, f), getattr(batch, f)) for f in TENSOR_FIELDS)
    meta = ("fname", "slice", "frame", "subject", "modality", "acceleration")
    assert all(getattr(out, f) == getattr(batch, f) for f in meta)


# ----------------------------------------------------------------------------- FFT dtypes

_FFT_NAMES = [
    n for n in ("fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2",
                "irfft2", "rfftn", "irfftn", "hfft", "ihfft")
    if hasattr(torch.fft, n)
]  # fmt: skip


class _FFTDtypes(TorchDispatchMode):
    """The dtypes that reach the FFT kernels (after autocast), forward and backward."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "_fft_" in func.__name__:
            self.seen.append((func.__name__, args[0].dtype))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", list(MODELS))
def test_only_complex64_reaches_the_fft_under_bf16_autocast(name, monkeypatch):
    """Every model under bf16 autocast, forward (and backward where it trains):
    what the model hands to ``torch.fft`` (before autocast could cast it) and what
    reaches the FFT kernels is complex64, nothing else."""
    torch.manual_seed(0)
    model = tiny_model(name)
    k, mask = _inputs(b=1, c=2, h=24, w=36)  # 8 ACS lines: ESPIRiT (sense, cs-wavelet)
    handed: list[tuple[str, torch.dtype]] = []
    for n in _FFT_NAMES:
        real = getattr(torch.fft, n)

        def spy(x, *a, _real=real, _n=n, **kw):
            handed.append((_n, x.dtype))
            return _real(x, *a, **kw)

        monkeypatch.setattr(torch.fft, n, spy)
    trains = any(p.requires_grad for p in model.parameters())
    model.train(trains)
    with _FFTDtypes() as kernels:
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.set_grad_enabled(trains):
            out = model(k, mask)
        if trains:
            out.float().abs().mean().backward()
    if name not in ("sense", "cs-wavelet"):  # the classical ones run in sigpy (NumPy)
        assert handed and kernels.seen
    assert {d for _, d in handed} <= {torch.complex64}, handed
    assert {d for _, d in kernels.seen} <= {torch.complex64}, kernels.seen


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_the_fft_boundary_refuses_other_dtypes():
    from fmrecon.physics.fft import fft2c, ifft2c

    x = torch.randn(4, 6, dtype=torch.complex64)
    for bad in (x.real, x.real.bfloat16(), x.to(torch.complex32)):
        for f, fname in ((fft2c, "fft2c"), (ifft2c, "ifft2c")):
            with pytest.raises(TypeError, match=f"{fname}: expected a complex64 tensor, got"):
                f(bad)
    assert fft2c(x).dtype == torch.complex64
    assert ifft2c(x.to(torch.complex128)).dtype == torch.complex128  # double-precision checks


# ----------------------------------------------------------------------------- split.json


def _volumes(n: int = 6) -> list[VolumeInfo]:
    return [
        VolumeInfo(path=Path(f"P{i:03d}.mat"), format="cmrxrecon", key="kspace_full",
                   n_frames=1, n_slices=1, n_coils=2, shape=(8, 8), subject=f"P{i:03d}",
                   modality="cine_sax")
        for i in range(n)
    ]  # fmt: skip


def test_a_rank_other_than_zero_never_writes_the_split_and_waits(tmp_path, monkeypatch):
    path = tmp_path / "run" / "split.json"
    writes = []
    monkeypatch.setattr(splits, "save_split", lambda p, s: writes.append(p))
    with pytest.raises(DataError) as err:
        splits.load_or_create_split(path, _volumes(), write=False, timeout=0.3)
    assert str(path) in str(err.value) and "rank 0" in str(err.value)
    assert "\n" not in str(err.value) and not writes and not path.exists()
    monkeypatch.undo()
    # rank 0 writes it a moment later: the waiting rank reads that file
    want = splits.make_split([v.subject for v in _volumes()], seed=5)

    def rank0():
        time.sleep(0.5)
        splits.save_split(path, want)

    thread = threading.Thread(target=rank0)
    thread.start()
    got = splits.load_or_create_split(path, _volumes(), seed=0, write=False, timeout=30)
    thread.join()
    assert got == want  # rank 0's split (seed 5), not one made here (seed 0)


def test_the_datamodule_writes_the_split_on_global_rank_zero_only(cmrx_tree, monkeypatch):
    """``train`` passes the trainer's global rank (Lightning knows it from
    construction); rank 1 waits for the file and fails naming it."""
    from fmrecon.training.data import ReconDataModule

    data = load_config(None, [f"data.root={cmrx_tree / 'MultiCoil'}"])["data"]
    path = cmrx_tree / "run" / "split.json"
    monkeypatch.setattr(splits, "WAIT_S", 0.3)
    with pytest.raises(DataError, match=f"{path}: split file not written by global rank 0"):
        ReconDataModule(data, split_path=path, global_rank=1).setup("fit")
    assert not path.exists()
    zero = ReconDataModule(data, split_path=path, global_rank=0)
    zero.setup("fit")
    one = ReconDataModule(data, split_path=path, global_rank=1)
    one.setup("fit")
    assert path.exists() and one.volumes == zero.volumes


_RANK_SCRIPT = """
import json, sys
from fmrecon.data import split as splits
from fmrecon.training.config import load_config
from fmrecon_bench import config, tasks
from fmrecon.training.data import ReconDataModule

writes = []
real = splits.save_split
splits.save_split = lambda p, s: (writes.append(str(p)), real(p, s))
data = load_config(None, ["data.root=" + sys.argv[1]])["data"]
dm = ReconDataModule(data, split_path=sys.argv[2])
if sys.argv[3] == "trainer":  # as train() does: the Trainer is built before the data setup
    import lightning as L

    L.Trainer(accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", logger=False,
              enable_progress_bar=False, enable_checkpointing=False)
dm.setup("fit")
print(json.dumps({"writes": writes, "subjects": sorted({v.subject for v in dm.volumes["train"]})}))
"""


@pytest.mark.parametrize(
    "how, writer, waiter",
    [
        # multi-node as Lightning launches it: the Trainer's global rank (node 1's
        # first process is global rank 2; NODE_RANK is not read before a Trainer)
        ("trainer", {"NODE_RANK": "0"}, {"NODE_RANK": "1"}),
        ("env", {"RANK": "0"}, {"RANK": "1"}),  # torchrun-style, no Trainer yet
    ],
)
def test_two_ranks_write_the_split_once(cmrx_tree, how, writer, waiter):
    """Two processes as a launcher starts them, the waiting one first: it waits
    for global rank 0's file and never writes; both train on the same subjects."""
    path = cmrx_tree / "split.json"
    ranks = ("RANK", "NODE_RANK", "LOCAL_RANK", "SLURM_PROCID", "WORLD_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in ranks}

    def start(extra: dict) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", _RANK_SCRIPT, str(cmrx_tree / "MultiCoil"), str(path), how],
            env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    one = start(waiter)
    time.sleep(4.0)  # imports done (~3 s): the waiting rank is waiting
    assert one.poll() is None and not path.exists()
    zero = start(writer)
    results = []
    for p in (zero, one):
        out, errors = p.communicate(timeout=300)
        assert p.returncode == 0, errors
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["writes"] == [str(path)] and results[1]["writes"] == []
    assert results[0]["subjects"] == results[1]["subjects"]
    assert set(results[0]["subjects"]) <= set(json.loads(path.read_text())["train"])


# ----------------------------------------------------------------------------- TF32


@pytest.fixture
def tf32_restored():
    """Each test starts from the opposite of what it configures; torch's flags
    are restored afterwards (they are process-wide)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _set_both(value: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = value


def test_set_tf32_sets_both_cuda_flags_and_leaves_cpu_kernels_alone(tf32_restored):
    from fmrecon.utils import set_tf32, tf32_state

    def onednn():  # the CPU kernels' own setting (torch >= 2.9 has one)
        return [getattr(getattr(torch.backends.mkldnn, op, None), "fp32_precision", None)
                for op in ("matmul", "conv")]  # fmt: skip

    before = onednn()
    for value in (True, False, True, False):
        assert set_tf32(value) == {"cuda_matmul": value, "cudnn": value} == tf32_state()
        assert torch.get_float32_matmul_precision() == ("high" if value else "highest")
        assert onednn() == before  # fp32 on CPU stays fp32


def test_trainer_tf32_defaults_to_off():
    assert load_config(None, [], require_data=False)["trainer"]["tf32"] is False
    with pytest.raises(ConfigError, match="'trainer.tf32' must be bool"):
        load_config(None, ["trainer.tf32=fast"], require_data=False)


@pytest.mark.parametrize("value", [True, False])
def test_training_runs_with_trainer_tf32_and_records_it(value, tmp_path, tf32_restored):
    """The flags during fit's training steps (every process: the policy is a
    callback's ``setup``) and environment.json follow ``trainer.tf32``; the
    process's own flags come back after the run."""
    import lightning as L

    from fmrecon.data.simulate import simulate_cmrxrecon
    from fmrecon.training.run import train
    from fmrecon.utils import tf32_state

    simulate_cmrxrecon(tmp_path / "d", 3, seed=1, size=(32, 32), n_slices=1, n_frames=1,
                       n_coils=2, lax=False)  # fmt: skip
    seen = []

    class Spy(L.Callback):
        def on_train_batch_start(self, *args):
            seen.append(tf32_state())

    _set_both(not value)
    cfg = load_config(None, [
        f"data.root={tmp_path / 'd'}", f"output_dir={tmp_path / 'runs'}", "name=t",
        "data.num_workers=0", "data.split_fractions=[0.34,0.33,0.33]", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "trainer.progress_bar=false", f"trainer.tf32={value}",
        "model.options={num_cascades: 1, chans: 2, pools: 1, sens_chans: 2, sens_pools: 1}",
    ])  # fmt: skip
    train(cfg, extra_callbacks=[Spy()], log=lambda msg: None)
    assert seen and all(s == {"cuda_matmul": value, "cudnn": value} for s in seen)
    env = json.loads((tmp_path / "runs" / "t" / "environment.json").read_text())
    assert env["tf32"] is value and env["tf32_flags"] == {"cuda_matmul": value, "cudnn": value}
    assert tf32_state() == {"cuda_matmul": not value, "cudnn": not value}


def _spy_call(monkeypatch, module, name: str, seen: list) -> None:
    """Wrap ``module.name`` to record the TF32 flags at the moment it is called."""
    from fmrecon.utils import tf32_state

    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(tf32_state())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


@pytest.mark.parametrize("value", [True, False])
def test_evaluate_and_reconstruct_run_their_models_with_tf32(
    value, cmrx_tree, tmp_path, monkeypatch, tf32_restored
):
    from fmrecon.cli import main
    from fmrecon.commands import evaluate, reconstruct

    flag = "--tf32" if value else "--no-tf32"
    want = {"cuda_matmul": value, "cudnn": value}
    seen: list = []
    _spy_call(monkeypatch, evaluate, "evaluate_models", seen)
    _set_both(not value)
    assert main(["evaluate", "--model", "zero-filled", "--data", str(cmrx_tree),
                 "--accelerations", "4", "--quiet", "--no-figures", "--out",
                 str(tmp_path / "e"), flag]) == 0  # fmt: skip
    assert seen == [want]
    _spy_call(monkeypatch, reconstruct, "reconstruct_files", seen)
    _set_both(not value)
    files = sorted(cmrx_tree.rglob("cine_sax.mat"))[:1]
    assert main(["reconstruct", str(files[0]), "--model", "zero-filled", "--mask",
                 "cmrxrecon-uniform", "--acceleration", "4", "--quiet",
                 "--out", str(tmp_path / "r"), flag]) == 0  # fmt: skip
    assert seen == [want, want]


def test_evaluate_tf32_defaults_to_off_and_a_preset_may_set_it(tmp_path):
    from fmrecon.cli import build_parser

    assert build_parser().parse_args(["evaluate", "--data", "d", "--out", "o"]).tf32 is False
    assert build_parser().parse_args(["reconstruct", "x", "--out", "o"]).tf32 is False
    from fmrecon.commands.evaluate import read_preset

    preset = tmp_path / "p.yaml"
    preset.write_text("tf32: true\n")
    sub = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    assert read_preset(sub, preset) == {"tf32": True}


@pytest.mark.parametrize("value", [True, False])
def test_every_bench_measurement_process_runs_with_bench_tf32(value, tmp_path, monkeypatch,
                                                              tf32_restored):  # fmt: skip
    """The measurement process sets the run's policy before its task (child_main
    reads it from the task file run_task writes); the in-process path too; the
    CLI's --tf32 reaches the config and the report says it."""
    from fmrecon.utils import tf32_state
    from fmrecon_bench.cli import build_parser
    from fmrecon_bench.report import _header

    monkeypatch.setitem(tasks.TASKS, "probe", lambda: {"tf32": tf32_state()})
    want = {"cuda_matmul": value, "cudnn": value}
    cfg = config.BenchConfig(tf32=value, isolate=False)
    _set_both(not value)
    assert tasks.run_task("probe", {}, cfg) == {"tf32": want}
    written = []
    monkeypatch.setattr(
        tasks.subprocess,
        "Popen",
        lambda cmd, **kw: (
            written.append(json.loads(Path(cmd[-2]).read_text()))
            or (_ for _ in ()).throw(OSError("stop"))
        ),
    )
    with pytest.raises(OSError, match="stop"):
        tasks.run_task("probe", {}, config.BenchConfig(tf32=value))
    (task_file := tmp_path / "task.json").write_text(json.dumps(written[0]))
    _set_both(not value)
    assert tasks.child_main([str(task_file), str(tmp_path / "out.json")]) == 0
    assert json.loads((tmp_path / "out.json").read_text()) == {"tf32": want}
    args = build_parser().parse_args(["--tf32"] if value else [])
    assert args.tf32 is value
    head = _header({"machine": {"cpu": "c", "logical_cores": 2, "torch": "t",
                                "torch_threads": 1}, "elapsed_s": 1.0,
                    "settings": {"quick": False, "device": "cpu", "coils": 1, "repeats": 1,
                                 "warmup": 0, "tf32": value}})  # fmt: skip
    assert f"TF32 {'on' if value else 'off'}" in head[0]


# ----------------------------------------------------------------------------- deterministic


def _old_pad(x, pad, dim):  # the U-Net's padding before: F.pad reflect
    if pad <= 0:
        return x
    return torch.nn.functional.pad(x, [0, pad, 0, 0] if dim == -1 else [0, 0, 0, pad], "reflect")


@pytest.mark.parametrize("channels_last", [False, True])
def test_unet_padding_equals_reflect_padding_values_and_gradients(channels_last):
    from fmrecon.models.unet import _reflect_pad_end

    torch.manual_seed(0)
    for shape, pads in (((2, 3, 5, 7), (1, 1)), ((1, 2, 4, 6), (3, 2)), ((1, 1, 2, 2), (1, 0))):
        x = torch.randn(shape)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        outs, grads = [], []
        for old in (True, False):  # the U-Net's call before: both sides at once
            xi = x.clone().requires_grad_(True)
            if old:
                y = torch.nn.functional.pad(xi, [0, pads[0], 0, pads[1]], mode="reflect")
            else:
                y = _reflect_pad_end(_reflect_pad_end(xi, pads[0], -1), pads[1], -2)
            g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
            y.backward(g)
            outs.append(y.detach())
            grads.append(xi.grad)
        assert torch.equal(outs[0], outs[1]), shape
        # a reflected edge's gradient sums 2 terms (a corner 4) in another order: 3
        # fp32 additions regrouped, |error| <= 3 * 2**-24 * sum |terms|, the terms N(0, 1)
        # (|g| < 4 each here): <= 4 * 2**-23 * 4 (measured: 2.4e-7 on 4 entries)
        assert torch.allclose(grads[0], grads[1], rtol=0, atol=4 * 2**-23 * 4), shape


@pytest.mark.parametrize("name", ["unet", "e2e-varnet"])
def test_unet_models_at_odd_sizes_same_output_and_gradients_as_reflect(name, monkeypatch):
    """A size whose halvings go odd (37 -> 18, 29 -> 14 -> 7 -> 3): the model's
    output is bit-identical with the old padding; the weight gradients agree to
    fp32 rounding of a regrouped sum."""
    from fmrecon.models import unet as unet_mod

    torch.manual_seed(0)
    model = tiny_model(name)
    k, mask = _inputs(b=1, c=2, h=37, w=29)
    results = []
    for pad in (_old_pad, unet_mod._reflect_pad_end):
        monkeypatch.setattr(unet_mod, "_reflect_pad_end", pad)
        model.zero_grad()
        out = model(k, mask)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    monkeypatch.undo()
    assert torch.equal(results[0][0], results[1][0])
    for g0, g1 in zip(results[0][1], results[1][1], strict=True):
        # the weight gradients come through those regrouped sums (measured: equal here);
        # 1e-5 of the largest entry is fp32 rounding through the tiny network's depth
        assert torch.allclose(g0, g1, rtol=0, atol=1e-5 * float(g0.abs().max()) + 1e-30)


class _OpNames(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["unet", "e2e-varnet", "fm-varnet-clip"])
def test_no_reflection_pad_in_the_unet_models_training_step(name):
    """ReflectionPad2d's CUDA backward is nondeterministic: with
    ``trainer.deterministic: true`` a U-Net at an odd size errored on a GPU."""
    torch.manual_seed(0)
    model = tiny_model(name).train()
    k, mask = _inputs(b=1, c=2, h=37, w=29)
    with _OpNames() as ops:
        model(k, mask).abs().mean().backward()
    assert not [n for n in ops.names if "reflection_pad" in n], sorted(ops.names)


def test_deterministic_true_is_refused_for_fm_models_on_a_gpu(monkeypatch):
    """Every FM model's training step runs ``upsample_bilinear2d_backward`` (the
    encoder's input resize, the feature upsampling), which CUDA cannot run
    deterministically: refused in one line when the run would use a GPU."""
    over = ["model.name=fm-varnet-clip", "trainer.deterministic=true"]
    assert load_config(None, [*over, "trainer.accelerator=cpu"], require_data=False)
    for accel in ("gpu", "cuda", "auto"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        with pytest.raises(ConfigError) as err:
            load_config(None, [*over, f"trainer.accelerator={accel}"], require_data=False)
        msg = str(err.value)
        assert "\n" not in msg and "fm-varnet-clip" in msg and "deterministic: warn" in msg
        # warn (Lightning's warn_only) is accepted, and models without an encoder run
        cfg = load_config(None, ["model.name=fm-varnet-clip", "trainer.deterministic=warn",
                                 f"trainer.accelerator={accel}"], require_data=False)  # fmt: skip
        assert cfg["trainer"]["deterministic"] == "warn"
        for name in ("unet", "e2e-varnet"):
            load_config(None, [f"model.name={name}", "trainer.deterministic=true",
                               f"trainer.accelerator={accel}"], require_data=False)  # fmt: skip
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_config(None, [*over], require_data=False)  # auto on a machine without CUDA
    with pytest.raises(ConfigError, match="must be true, false or warn"):
        load_config(None, ["trainer.deterministic=always"], require_data=False)


@pytest.mark.parametrize("name", ["fm-varnet-clip", "fm-unetr-clip"])
def test_fm_models_training_step_runs_bilinear_backward(name):
    """Why the refusal above: the op torch lists as nondeterministic on CUDA."""
    torch.manual_seed(0)
    model = tiny_model(name).train()
    k, mask = _inputs(b=1, c=2, h=37, w=29)
    with _OpNames() as ops:
        model(k, mask).abs().mean().backward()
    assert "upsample_bilinear2d_backward" in {n.split(".")[0] for n in ops.names}


# ----------------------------------------------------------------------------- host syncs


def _old_acs_region(m: np.ndarray) -> tuple[slice, slice]:
    """fmrecon 0.x's acs_region (greedy, NumPy on the host), the oracle."""
    h, w = m.shape
    t, b, lo, hi = h // 2, h // 2 + 1, w // 2, w // 2 + 1
    if not m[t, lo]:
        return slice(t, t), slice(lo, lo)
    while t > 0 and b < h and lo > 0 and hi < w and m[t - 1 : b + 1, lo - 1 : hi + 1].all():
        t, b, lo, hi = t - 1, b + 1, lo - 1, hi + 1
    grown = True
    while grown:
        grown = False
        while t > 0 and m[t - 1, lo:hi].all():
            t, grown = t - 1, True
        while b < h and m[b, lo:hi].all():
            b, grown = b + 1, True
        while lo > 0 and m[t:b, lo - 1].all():
            lo, grown = lo - 1, True
        while hi < w and m[t:b, hi].all():
            hi, grown = hi + 1, True
    return slice(t, b), slice(lo, hi)


def _old_low_frequency_mask(mask: torch.Tensor, num_low_frequencies=None) -> torch.Tensor:
    """The VarNet's low_frequency_mask before (a host branch and a loop), the oracle."""
    mask = mask.bool()
    b, w = mask.shape[0], mask.shape[-1]
    lines = mask.reshape(b, -1, mask.shape[-2], w)
    is_line = (lines.all(dim=-2) == lines.any(dim=-2)).flatten(1).all(dim=1)
    row = lines[:, 0, 0, :]
    cols = torch.arange(w)
    if num_low_frequencies:
        n = torch.full((b,), int(num_low_frequencies), dtype=torch.long)
    else:
        c = w // 2
        left = row[:, :c].flip(1).long().cumprod(dim=1).sum(dim=1)
        right = row[:, c:].long().cumprod(dim=1).sum(dim=1)
        n = torch.clamp(2 * torch.minimum(left, right), min=1)
    pad = (w - n + 1) // 2
    keep = ((cols >= pad[:, None]) & (cols < (pad + n)[:, None]))[:, None, None, :]
    if bool(is_line.all()):
        return keep
    h = mask.shape[-2]
    keep = keep.expand(b, 1, h, w).clone()
    for i in torch.nonzero(~is_line).flatten().tolist():
        rows, cols_ = _old_acs_region(lines[i].reshape(-1, h, w).all(dim=0).numpy())
        keep[i] = False
        keep[i, :, rows, cols_] = True
    return keep


def _masks() -> list[torch.Tensor]:
    """(B, 1, H, W) masks: line masks (CMRxRecon, fastMRI), k-t masks (2-D),
    a mixed batch, and random 2-D masks with a sampled block of random size."""
    from fmrecon.physics.masks import create_mask

    def lines(kind, acc, w, h=48, **kw):
        return torch.from_numpy(
            np.broadcast_to(create_mask(kind, acc, **kw)((h, w)), (h, w)).copy()
        )

    out = [
        torch.stack([lines("cmrxrecon-uniform", r, 40, num_acs=a) for r, a in ((4, 24), (8, 8))]),
        torch.stack([lines("equispaced", 4, 37, center_fraction=0.08, seed=s) for s in (0, 1)]),
    ]
    for kind in ("kt-radial", "kt-gaussian", "kt-uniform"):
        out.append(torch.from_numpy(create_mask(kind, 8)((3, 48, 40), seed=0).copy()))
    out.append(torch.stack([out[0][0], out[2][1]]))  # a line mask and a 2-D mask together
    gen = np.random.default_rng(0)
    rand = []
    for _ in range(40):
        h, w = gen.integers(5, 30, size=2)
        m = gen.random((h, w)) < gen.uniform(0.2, 0.9)
        t, lo = gen.integers(0, h // 2 + 1), gen.integers(0, w // 2 + 1)
        m[t : h - gen.integers(0, h // 2 + 1), lo : w - gen.integers(0, w // 2 + 1)] = True
        rand.append(torch.from_numpy(m)[None, None])
    return [m[:, None] if m.dim() == 3 else m for m in out] + rand


def test_low_frequency_mask_and_acs_region_equal_the_host_versions():
    """Bit-identical to the host implementations on line, k-t, mixed and random masks."""
    from fmrecon.models.varnet import low_frequency_mask
    from fmrecon.physics.coils import acs_region

    for mask in _masks():
        for nlf in (None, 6):
            want = _old_low_frequency_mask(mask, nlf)
            got = low_frequency_mask(mask, nlf)
            assert torch.equal(got, want.expand_as(got)), (mask.shape, nlf)
        for one in mask:
            assert acs_region(one) == _old_acs_region(one.reshape(-1, *one.shape[-2:])
                                                      .all(dim=0).numpy())  # fmt: skip


class _NoSync:
    """Every way a tensor's values reach Python (what waits for a GPU) raises,
    and so does a tensor built from Python data on a device (on a GPU, a
    host-to-device copy from pageable memory, which waits too)."""

    NAMES = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")

    def __init__(self, monkeypatch):
        self.mp = monkeypatch

    def __enter__(self):
        for n in self.NAMES:

            def refuse(*a, _n=n, **k):
                raise AssertionError(f"host sync: Tensor.{_n} in the forward")

            self.mp.setattr(torch.Tensor, n, refuse)
        for n in ("tensor", "as_tensor"):
            real = getattr(torch, n)

            def built(*a, _n=n, _real=real, **k):
                if k.get("device") is not None and not isinstance(a[0], torch.Tensor):
                    raise AssertionError(
                        f"host-to-device copy: torch.{_n}(..., device=) in the forward"
                    )
                return _real(*a, **k)

            self.mp.setattr(torch, n, built)

    def __exit__(self, *exc):
        self.mp.undo()


@pytest.mark.parametrize("name", ["e2e-varnet", "fm-varnet-clip", "fm-unetr-clip"])
def test_varnet_forward_never_syncs_and_gives_the_same_bits(name, monkeypatch):
    """The VarNet forward on a line mask and on k-t masks: no value of a tensor
    is read by Python (so no GPU sync), and the output is bit-identical with
    the host implementation of the low-frequency mask."""
    from fmrecon.models import varnet

    torch.manual_seed(0)
    model = tiny_model(name).eval()
    k, _ = _inputs(b=2, c=2, h=48, w=40)
    for mask in (_masks()[0], _masks()[2][:2], _masks()[5]):
        with torch.no_grad():
            monkeypatch.setattr(varnet, "low_frequency_mask", _old_low_frequency_mask)
            want = model(k * mask, mask)
            monkeypatch.undo()
            with _NoSync(monkeypatch):
                got = model(k * mask, mask)
        assert torch.equal(got, want)
    model.train()  # a training step too (forward and backward)
    with _NoSync(monkeypatch):
        model(k * _masks()[5], _masks()[5]).abs().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_varnet_forward_never_syncs_on_cuda():
    torch.manual_seed(0)
    model = tiny_model("e2e-varnet").cuda().eval()
    k, _ = _inputs(b=2, c=2, h=48, w=40)
    for mask in (_masks()[0], _masks()[2][:2]):
        k_, m_ = (k * mask).cuda(), mask.cuda()
        with torch.no_grad():
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                model(k_, m_)
            finally:
                torch.cuda.set_sync_debug_mode("default")


# ----------------------------------------------------------------------------- memory estimate


def test_memory_estimate_books_ddp_gradient_buckets_per_trainable_parameter(monkeypatch, capsys):
    from fmrecon.cli import main
    from fmrecon.encoders import TINY_OVERRIDES
    from fmrecon.models import memory as M
    from test_fm_models import TINY

    kw = {"model_options": TINY["fm-varnet"], "encoder_config": TINY_OVERRIDES["clip"]}
    for training in (True, False):
        one = M.estimate_peak_memory("fm-varnet-clip", (40, 32), 2, training=training, **kw)
        ddp = M.estimate_peak_memory("fm-varnet-clip", (40, 32), 2, training=training, ddp=True,
                                     **kw)  # fmt: skip
        buckets = 4 * one["trainable_params"] if training else 0
        assert ddp["breakdown"]["ddp_buckets"] == buckets and ddp["ddp"] is training
        assert one["breakdown"]["ddp_buckets"] == 0 and one["ddp"] is False
        assert ddp["allocated_bytes"] - one["allocated_bytes"] == buckets
        assert ddp["bytes"] - one["bytes"] == buckets
    # the full FM-VarNet: 56 M trainable parameters, 0.22 GB of buckets per GPU
    trainable = M._static_counts("fm-varnet-clip", "{}", "{}")["trainable"]
    assert round(M.DDP_BUCKET_BYTES_PER_PARAM * trainable / 1e9, 2) == 0.22
    # `fmrecon models --memory ... --ddp` passes it on and says what is not included
    seen, real = {}, M.memory_table

    def table(**kwargs):
        seen.update(kwargs)
        return real(sizes=((40, 32),), coils=2, models=("fm-varnet-clip",),
                              options=(("32", False, True),), ddp=kwargs["ddp"], **kw)  # fmt: skip

    monkeypatch.setattr(M, "memory_table", table)
    for flag in ([], ["--ddp"]):
        assert main(["models", "--memory", "40x32", *flag]) == 0
        out = capsys.readouterr().out
        assert seen["ddp"] is bool(flag)
        assert ("NCCL buffers not included" in out) is bool(flag)


# ----------------------------------------------------------------------------- DDP details


def test_sync_batchnorm_reaches_lightning_and_converts_fm_unetr_batchnorm(tmp_path):
    from fmrecon.training.run import make_trainer

    assert load_config(None, [], require_data=False)["trainer"]["sync_batchnorm"] is False
    for value in (False, True):
        over = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                f"trainer.sync_batchnorm={value}"]  # fmt: skip
        cfg = load_config(None, over, require_data=False)
        trainer, _ = make_trainer(cfg, tmp_path / str(value))
        layer_sync = trainer.strategy._layer_sync
        assert (layer_sync is not None) is value
    model = tiny_model("fm-unetr-clip")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns  # FM-UNETR's conv stem
    synced = layer_sync.apply(model)
    assert not [m for m in synced.modules() if type(m) is torch.nn.BatchNorm2d]
    assert len([m for m in synced.modules() if isinstance(m, torch.nn.SyncBatchNorm)]) == len(bns)


# the simulated GPU makes the loaders ask for pinning, which torch then declines
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
def test_no_cuda_call_before_fit(tmp_path, monkeypatch):
    """The ddp_fork / ddp_notebook strategies refuse to start once CUDA is
    initialised: nothing of fmrecon may touch CUDA (beyond is_available) before
    fit. Simulated on any machine: one 'GPU' reported to fmrecon's callers, and
    every CUDA query from fmrecon's code that initialises CUDA recorded; the
    record at fit's start must be empty (environment.json asked torch for the
    device names before)."""
    import lightning as L

    from fmrecon.data.simulate import simulate_cmrxrecon
    from fmrecon.training.run import train

    calls: list[str] = []
    names = ("device_count", "get_device_name", "get_device_properties", "get_device_capability",
             "init", "_lazy_init", "current_device", "set_device", "is_bf16_supported",
             "synchronize", "mem_get_info", "memory_allocated", "max_memory_allocated")  # fmt: skip
    for n in names:
        real = getattr(torch.cuda, n)

        def spy(*a, _n=n, _real=real, **k):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("fmrecon"):
                if _n != "device_count":  # NVML first, no initialisation (Lightning calls it)
                    calls.append(f"{caller}: torch.cuda.{_n}")
                return {"device_count": 1, "get_device_name": "GPU"}.get(_n)
            return _real(*a, **k)

        monkeypatch.setattr(torch.cuda, n, spy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    at_fit = []

    class AtFit(L.Callback):
        def setup(self, *args, **kwargs):
            at_fit.append(list(calls))

    simulate_cmrxrecon(tmp_path / "d", 3, seed=1, size=(32, 32), n_slices=1, n_frames=1,
                       n_coils=2, lax=False)  # fmt: skip
    cfg = load_config(None, [
        f"data.root={tmp_path / 'd'}", f"output_dir={tmp_path / 'runs'}", "name=t",
        "data.num_workers=0", "data.split_fractions=[0.34,0.33,0.33]", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "trainer.progress_bar=false",
        "model.options={num_cascades: 1, chans: 2, pools: 1, sens_chans: 2, sens_pools: 1}",
    ])  # fmt: skip
    train(cfg, extra_callbacks=[AtFit()], log=lambda msg: None)
    assert at_fit == [[]], at_fit
    env = json.loads((tmp_path / "runs" / "t" / "environment.json").read_text())
    assert env["gpus"] == ["GPU"]  # the names, asked after fit


def test_memory_goal_compares_the_estimate_with_cuda_rows():
    """Goal 7 on a GPU run: the estimate's allocated bytes against the table's
    rows measured with torch.cuda.max_memory_allocated (same model, size, coils,
    precision, checkpointing and mode); CPU rows and reduced models are left out."""
    from fmrecon_bench.goals.memory_estimate import cuda_checks, judge

    def est_row(prec, ckpt, mode, gb, size="218x180"):
        return {"model": "fm-varnet-clip", "size": size, "coils": 10, "precision": prec,
                "checkpointing": ckpt, "mode": mode, "gb": gb + 0.7,
                "allocated_gb": gb}  # fmt: skip

    table = [est_row("fp32", False, "train", 5.0), est_row("fp32", True, "train", 2.0),
             est_row("fp32", False, "infer", 1.0), est_row("bf16", True, "train", 2.2, "246x512"),
             est_row("fp32", False, "train", 8.2, "246x512")]  # fmt: skip

    def bench_row(prec, ckpt, train_mib, infer_mib, method="cuda max_memory_allocated"):
        return {"model": "fm-varnet-clip", "size": "218x180", "coils": 10, "precision": prec,
                "checkpointing": ckpt, "train_peak_mb": train_mib, "infer_peak_mb": infer_mib,
                "mem_method": method}  # fmt: skip

    g = 1e9 / 2**20  # MiB per GB
    rows = [bench_row("fp32", False, 5.0 * g / 1.25, 1.0 * g), bench_row("fp32", True, 2 * g, g),
            bench_row("bf16", False, 3.0 * g, 1.0 * g),  # no estimate row: left out
            bench_row("fp32", False, 1.0, 1.0, method="peak RSS (VmHWM)")]  # fmt: skip
    cfg = config.BenchConfig()
    got = {(c["checkpointing"], c["mode"]): c["ratio"] for c in cuda_checks(rows, table, cfg)}
    assert got == {(False, "train"): 1.25, (False, "infer"): 1.0, (True, "train"): 1.0}
    est = {"table": table, "cascade_checks": [{"rel_error": 0.01}], "rss_check": None}
    g = judge(rows, est, cfg, {})[0]
    assert "1.00-1.25 over 3 rows" in g["note"] and len(g["detail"]["cuda_checks"]) == 3
    # reduced models (quick bench) and CPU runs: nothing compared, no note
    quick = config.BenchConfig(model_options={"fm-varnet-clip": {"num_cascades": 3}})
    assert cuda_checks(rows, table, quick) == []
    assert judge(rows[3:], est, cfg, {})[0]["note"] == ""


def test_encoder_stats_after_inference_mode_serve_a_later_training_step():
    """A training step after a call under torch.inference_mode works (no inference
    tensor from the first call is saved for backward; the mean/std are Python
    numbers, no tensor is made from them) and gives the same pixels."""
    from fmrecon.encoders import preprocess

    image = torch.randn(2, 20, 20, dtype=torch.complex64)
    with torch.inference_mode():
        want, _ = preprocess.prepare_images(image, 16)
    x = image.clone().requires_grad_(True)
    pixels, _ = preprocess.prepare_images(x, 16)
    pixels.square().sum().backward()
    assert torch.equal(pixels.detach(), want) and x.grad is not None
    mean, std = preprocess.IMAGENET_MEAN, preprocess.IMAGENET_STD
    first = (pixels.detach()[:, 0] * std[0] + mean[0], pixels.detach()[:, 2] * std[2] + mean[2])
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=1e-6)  # one image, 3 channels


def test_validation_and_training_steps_never_sync(monkeypatch):
    """The trainer's validation step (metrics summed on the device, read once
    per epoch) and its training objective: no tensor value read by Python, no
    tensor built from Python data on the device."""
    from fmrecon.training.module import ReconModule

    cfg = load_config(None, ["model.options={num_cascades: 1, chans: 2, pools: 1, "
                             "sens_chans: 2, sens_pools: 1}"], require_data=False)  # fmt: skip
    module = ReconModule(cfg["model"], cfg["optim"], run_config=cfg).eval()
    batch = _batch()
    batch.kspace = torch.randn(2, 2, 24, 20, dtype=torch.complex64)
    batch.mask = torch.ones(2, 1, 24, 20, dtype=torch.bool)
    batch.target = torch.rand(2, 24, 20)
    module.on_validation_epoch_start()
    with torch.no_grad(), _NoSync(monkeypatch):
        module.validation_step(batch, 0)
    assert float(module._val_sums[4]) == 2.0
    # and the training objective (SSIM loss of the engine's images), with its backward
    from fmrecon.training.objective import training_loss

    module.train()
    with _NoSync(monkeypatch):
        training_loss(module.engine, module.loss, batch).backward()
