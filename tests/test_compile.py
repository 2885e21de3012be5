"""torch.compile as fmrecon's option (``trainer.compile``, ``--compile``): the models
compiled region by region in place, outputs and gradients against eager, state-dict
keys unchanged, the compile time counted apart and the compiled graphs in inductor's
on-disk cache. Compilation on 2 cores is slow: one tiny E2E-VarNet (one cascade, one
pool level, 24 x 20) compiled for a training step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fmrecon.errors import ConfigError
from fmrecon.inference.engine import Engine
from fmrecon.models.registry import create_model
from fmrecon.training.config import load_config
from fmrecon.utils import compile_options
from test_fm_models import _inputs

TINY = {"num_cascades": 1, "chans": 2, "pools": 1, "sens_chans": 2, "sens_pools": 1}
# fp32 unit roundoff u = 2^-24. Inductor fuses and reorders reductions; a sum of n
# terms in another order differs by at most ~n*u relative. The longest reductions
# here are the NormUnet's mean/std over 2*H*W = 960 values at 24 x 20 (the coil sums
# have 2 terms), so 960 * 5.96e-8 = 5.7e-5 bounds outputs and gradients (measured:
# ~1e-6, e2e-varnet at 48 x 40 with 4 cascades 1.1e-6).
RTOL = 2 * 24 * 20 * 2.0**-24
BASE = {"dynamic": None, "fullgraph": False, "backend": "inductor"}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "value, want",
    [
        (False, None), (None, None),
        (True, dict(BASE, mode="default")),
        ("max-autotune", dict(BASE, mode="max-autotune")),
        ({"mode": "reduce-overhead", "dynamic": True}, dict(BASE, mode="reduce-overhead",
                                                            dynamic=True)),
        ({"backend": "eager"}, dict(BASE, mode="default", backend="eager")),
    ],
)  # fmt: skip
def test_compile_options(value, want):
    assert compile_options(value) == want


@pytest.mark.parametrize("value", ["fast", {"mode": "fast"}, {"modes": "default"}, 3,
                                   {"dynamic": "yes"}, {"backend": "tvm"}])  # fmt: skip
def test_bad_compile_options_are_one_line_errors(value):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"trainer.compile={value}"], require_data=False)
    assert "'trainer.compile'" in str(err.value) and "\n" not in str(err.value)


def test_trainer_compile_config_key():
    cfg = load_config(None, [], require_data=False)
    assert cfg["trainer"]["compile"] is False
    cfg = load_config(None, ["trainer.compile={mode: max-autotune, dynamic: false}"],
                      require_data=False)  # fmt: skip
    assert cfg["trainer"]["compile"] == {"mode": "max-autotune", "dynamic": False}


@pytest.mark.slow  # ~60 s on 2 cores with an empty inductor cache (measured)
def test_compiled_e2e_varnet_matches_eager_and_keeps_its_keys(tmp_path, monkeypatch):
    """A training step (forward + backward) compiled through the engine against the
    same model eager (an inference graph too would double the compile time); the
    regions compile once; the state dict keeps its keys; the FX graph cache is
    written in TORCHINDUCTOR_CACHE_DIR."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    model = create_model("e2e-varnet", **TINY)
    keys = list(model.state_dict())
    k, mask = _inputs(b=1, c=2, h=24, w=20)

    def step(engine: Engine):
        model.zero_grad(set_to_none=True)
        out = engine(k, mask)
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    want, want_grads = step(Engine(model))
    engine = Engine(model, compile=compile_options(True))
    got, grads = step(engine)
    assert engine.compile_seconds > 0
    first = engine.compile_seconds
    got2, _ = step(engine)  # compiled once: no more compiling
    assert engine.compile_seconds == first and torch.equal(got2, got)
    assert _rel(got, want) < RTOL
    assert max(_rel(g, w) for g, w in zip(grads, want_grads, strict=True)) < RTOL
    # nn.Module.compile in place: the same keys (no "_orig_mod."), the same module
    assert list(model.state_dict()) == keys
    assert not any("_orig_mod" in key for key in model.state_dict())
    assert model.sens_net._compiled_call_impl is not None
    assert all(c._compiled_call_impl is not None for c in model.cascades)
    cache = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    assert any((cache / "fxgraph").rglob("*")), "no FX graph cache entry written"


def test_evaluate_and_reconstruct_pass_compile_to_their_engines(cmrx_tree, tmp_path, monkeypatch,
                                                                capsys):  # fmt: skip
    """``--compile [MODE]`` reaches evaluate_models and the reconstruction engine
    (compile_model recorded here instead of compiling: inductor takes minutes), and
    the compile time is reported apart."""
    from fmrecon.cli import main
    from fmrecon.commands import evaluate
    from fmrecon.inference import engine

    seen: list = []
    real = evaluate.evaluate_models
    monkeypatch.setattr(evaluate, "evaluate_models",
                        lambda *a, **k: seen.append(k["compile"]) or real(*a, **k))  # fmt: skip
    monkeypatch.setattr(engine, "compile_model", lambda model, options: seen.append(options))
    assert main(["evaluate", "--model", "zero-filled", "--data", str(cmrx_tree),
                 "--accelerations", "4", "--quiet", "--no-figures", "--out",
                 str(tmp_path / "e"), "--compile", "max-autotune"]) == 0  # fmt: skip
    assert seen == [compile_options("max-autotune")]
    files = sorted(cmrx_tree.rglob("cine_sax.mat"))[:1]
    capsys.readouterr()
    assert main(["reconstruct", str(files[0]), "--model", "zero-filled", "--mask",
                 "cmrxrecon-uniform", "--acceleration", "4", "--quiet",
                 "--out", str(tmp_path / "r"), "--compile"]) == 0  # fmt: skip
    assert seen[1:] == [compile_options(True)]
    assert "torch.compile (default): " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reconstruct", str(files[0]), "--compile", "fastest"])


def test_fm_varnet_compiles_one_denoiser_graph_per_mode():
    """FM-VarNet's regions are the sensitivity net and each cascade's denoiser
    (encoder and decoder): one graph each for training and for inference, shared by
    every cascade, and no recompiles on later calls. (Its cascades as regions took
    two graphs per mode: cascade 0's k-space input has no gradient and is not an
    inference tensor, the other cascades' inputs are.) Dynamo's eager backend: the
    graphs without inductor's code generation."""
    from torch._dynamo.utils import counters

    from test_fm_models import tiny_model

    model = tiny_model("fm-varnet-clip", num_cascades=3)
    k, mask = _inputs(b=1, c=2, h=24, w=20)
    model(k, mask)  # eager first: the preprocessing's cached mean / std exist before tracing
    torch._dynamo.reset()
    counters.clear()
    engine = Engine(model, compile=compile_options({"backend": "eager"}))
    names = [n for n, _ in model.compile_regions()]
    assert names == ["sens_net", "cascades.0.model", "cascades.1.model", "cascades.2.model"]
    for _ in range(2):
        engine(k, mask).square().mean().backward()
        with torch.inference_mode():
            engine(k, mask)
    # sensitivity net and denoiser, each in training and in inference
    assert counters["stats"]["unique_graphs"] == 4
    assert not counters["graph_break"]


def test_compile_cache_dir_replaces_torchs_default_keeps_the_users(tmp_path, monkeypatch):
    """Torch writes its /tmp default into TORCHINDUCTOR_CACHE_DIR the first time
    anything asks (building an encoder does): that value counts as unset, a
    user's own is kept."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from fmrecon.utils import compile_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert compile_cache_dir() == tmp_path / "fmrecon" / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "fmrecon" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"


@pytest.mark.parametrize("channels_last", [False, True])
def test_norm_unet_traced_by_dynamo_matches_eager(channels_last):
    """Eager U-Nets normalise channels-last convolution outputs in place (on a view
    of them); traced by dynamo they must not: the traced layout of a convolution's
    output need not be the runtime one (here the default-layout U-Net's were traced
    channels-last), and the in-place view would then be a copy, leaving the output
    unnormalised (0.2-2 relative error). Backend "eager" runs the traced graph
    as traced, without code generation (seconds). Outputs (inference mode) and
    gradients (a training step) equal eager's to float rounding (RTOL above)."""
    from fmrecon.models.unet import NormUnet

    torch._dynamo.reset()
    torch.manual_seed(0)
    net = NormUnet(4, 2)
    net.unet.set_channels_last(channels_last)
    compiled = torch.compile(net, backend="eager")
    x = torch.randn(1, 1, 32, 32, dtype=torch.complex64)
    with torch.inference_mode():
        want, got = net(x), compiled(x)
    assert _rel(got, want) < RTOL
    grads = []
    for f in (net, compiled):
        net.zero_grad(set_to_none=True)
        torch.view_as_real(f(x)).square().mean().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    assert max(_rel(g, w) for g, w in zip(grads[1], grads[0], strict=True)) < RTOL


def _aot_graphs(fn, *args):
    """The forward and backward graphs AOTAutograd hands inductor for ``fn(*args)``
    (inductor's decompositions applied, no code generated): list of FX graphs."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd
    from torch._inductor.decomposition import select_decomp_table

    graphs = []

    def keep(gm, _):
        graphs.append(gm.graph)
        return make_boxed_func(gm)

    backend = aot_autograd(fw_compiler=keep, bw_compiler=keep, decompositions=select_decomp_table())
    out = torch.compile(fn, backend=backend, fullgraph=True)(*args)
    out.square().sum().backward()
    return graphs


def _targets(graph) -> set[str]:
    return {str(n.target) for n in graph.nodes if n.op == "call_function"}


def test_fm_denoiser_resizes_compile_without_a_scatter_backward():
    """Compiled, every bilinear resize of FM-VarNet's denoiser (the encoder input and
    the decoder's) is fmrecon's opaque op, forward and backward: inductor's own
    decomposition made the backward a scatter-add (``_unsafe_index_put``), written
    with atomic adds on more than one thread (2-4x slower than eager's kernel)."""
    from test_fm_models import tiny_model

    model = tiny_model("fm-varnet-clip", num_cascades=1)
    den = model.cascades[0].model
    x = torch.randn(1, 1, 24, 20, dtype=torch.complex64, requires_grad=True)
    fw, bw = _aot_graphs(lambda t: torch.view_as_real(den(t)), x)
    # four decoder stages (three x2 upsamplings, three skips, the final one) + the encoder input
    resizes = [n for n in fw.nodes if str(n.target) == "fmrecon.resize_bilinear.default"]
    assert len(resizes) == 1 + 2 * len(den.skip_layers) + 1
    backs = [n for n in bw.nodes if str(n.target) == "fmrecon.resize_bilinear_backward.default"]
    assert len(backs) == len(resizes)
    assert not [t for t in _targets(fw) | _targets(bw) if "index_put" in t or "upsample" in t]


def test_fm_unetr_resizes_compile_without_a_scatter_backward():
    """FM-UNETR's two bilinear resizes (the stem's input to 16x the token grid, the
    head's output to H x W) are fmrecon's opaque op when compiled, as FM-VarNet's."""
    from test_fm_models import tiny_model

    model = tiny_model("fm-unetr-clip")
    k, mask = _inputs(b=1, c=2, h=24, w=20)
    # a k-space that wants gradients, so that every resize has a backward to check
    fw, bw = _aot_graphs(lambda t: model(t, mask), k.requires_grad_(True))
    resizes = [n for n in fw.nodes if str(n.target) == "fmrecon.resize_bilinear.default"]
    # the stem's and the head's, plus the encoder input's (prepare_images)
    assert len(resizes) == 3
    backs = [n for n in bw.nodes if str(n.target) == "fmrecon.resize_bilinear_backward.default"]
    assert len(backs) == len(resizes)
    assert not [t for t in _targets(fw) | _targets(bw) if "index_put" in t or "upsample" in t]


@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_resize_bilinear_is_atens_bit_for_bit(channels_last):
    """``resize_bilinear`` under inductor = ``F.interpolate`` eager, values and
    gradients bit-identical (the same ATen kernels), in both layouts (the op's
    declared output layout is the kernel's, or inductor's stride check fails)."""
    import torch.nn.functional as F

    from fmrecon.utils import resize_bilinear

    torch.manual_seed(0)
    x = torch.randn(1, 3, 7, 5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(1, 3, 11, 13)

    def eager(t):
        return F.interpolate(t.relu() + 1, size=(11, 13), mode="bilinear", align_corners=False)

    compiled = torch.compile(lambda t: resize_bilinear(t.relu() + 1, (11, 13)), fullgraph=True)
    outs = []
    for fn in (eager, compiled):
        t = x.detach().requires_grad_(True)
        y = fn(t)
        y.backward(g)
        outs.append((y.detach(), t.grad))
    assert outs[1][0].stride() == outs[0][0].stride()
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
