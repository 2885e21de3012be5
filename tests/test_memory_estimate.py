"""The peak-memory estimate (fmrecon.models.memory) on tiny models: the byte
accounting, the cascade extrapolation, the options' effects and the table."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from fmrecon.cli import main
from fmrecon.encoders import TINY_OVERRIDES
from fmrecon.errors import ConfigError
from fmrecon.models import memory as M
from fmrecon_bench.goals import memory_estimate as G7
from test_fm_models import TINY

FM = {k: v for k, v in TINY["fm-varnet"].items() if k != "num_cascades"}
E2E = {k: v for k, v in TINY["e2e-varnet"].items() if k != "num_cascades"}
ENC = dict(TINY_OVERRIDES["clip"])
TOLERANCE = 0.05  # cascade extrapolation vs direct measurement (documented in the module)


def test_live_bytes_and_saved_tensors_match_a_count_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(32, 8)
    params = list(net.parameters())
    with M.LiveBytes() as live, M.saved_tensor_bytes([*params, x]) as saved:
        out = net(x)
        held = live.current - out.untyped_storage().nbytes()
    # only the ReLU output (32x16 fp32) outlives the forward: ReLU's backward and
    # linear 2's weight gradient need it; linear 1's output is freed, x and weights excluded
    assert held == 32 * 16 * 4
    assert saved["bytes"] == 32 * 16 * 4 and saved["tensors"] == 1
    del out
    assert live.current == 0  # everything freed again
    # views and in-place ops allocate nothing
    with M.LiveBytes() as live:
        y = torch.ones(100)
        y.view(10, 10).t().add_(1)
    assert live.peak == 400


def test_saved_tensor_count_equals_the_bytes_held_after_the_forward():
    model = M.probe_model("fm-varnet-clip", FM, ENC)
    r = M.measure(model, (40, 32), 3, training=True)
    # held after the forward pass = what autograd saved (a direct count), to 1 %
    assert r["saved"] == pytest.approx(r["held"], rel=0.01)
    assert r["peak"] >= r["held"] > 0
    assert r["per_cascade"] > 0 and r["cascades"] == 1


@pytest.mark.parametrize(
    "name, options, enc", [("fm-varnet-clip", FM, ENC), ("e2e-varnet", E2E, None)]
)
def test_cascade_extrapolation_matches_direct_measurements(name, options, enc):
    for precision, ckpt, training in M.OPTIONS:
        for n in (2, 3):
            r = G7.check_extrapolation(
                name, (48, 40), 3, precision, ckpt, training, cascades=n,
                model_options=options, encoder_config=enc,
            )  # fmt: skip
            assert abs(r["rel_error"]) <= TOLERANCE, r


def test_options_move_the_estimate_the_right_way():
    def est(**kw):
        return M.estimate_peak_memory(
            "fm-varnet-clip", (64, 48), 3, model_options={**FM, "num_cascades": 4},
            encoder_config=ENC, **kw,
        )  # fmt: skip

    plain, ckpt = est(), est(checkpointing=True)
    bf16 = est(precision="bf16")
    infer = est(training=False)
    assert ckpt["bytes"] < plain["bytes"]
    assert ckpt["breakdown"]["activations"] < 0.6 * plain["breakdown"]["activations"]
    assert bf16["breakdown"]["activations"] < plain["breakdown"]["activations"]
    assert infer["bytes"] < plain["bytes"] and infer["breakdown"]["grads"] == 0
    b = plain["breakdown"]
    assert plain["bytes"] == pytest.approx(sum(b.values()), abs=1)
    # static parts from the parameter counts of the full (4-cascade) model
    assert b["grads"] == 4 * plain["trainable_params"]
    assert b["optimizer_state"] == 8 * plain["trainable_params"]
    assert plain["cascades"] == 4
    # batch 2 roughly doubles the dynamic bytes (measured, not scaled)
    two = est(batch=2)
    dyn = b["activations"] + b["transient"]
    dyn2 = two["breakdown"]["activations"] + two["breakdown"]["transient"]
    assert 1.7 * dyn < dyn2 < 2.1 * dyn
    with pytest.raises(ConfigError, match="checkpointing"):
        M.estimate_peak_memory("unet", (32, 32), 2, checkpointing=True)
    with pytest.raises(ConfigError, match="precision"):
        est(precision="fp8")


def test_tracker_agrees_with_the_process_peak_rss():
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    r = G7.check_against_rss("e2e-varnet", (192, 192), 8, model_options={**E2E, "num_cascades": 1})
    assert r["rss_delta"] > 50e6  # large enough for page-level noise not to matter
    assert 0.85 <= r["ratio"] <= 1.15, r


def test_memory_table_covers_both_sizes_and_every_option(capsys):
    rows = M.memory_table(
        sizes=((40, 32), (48, 40)), coils=2, models=("fm-varnet-clip",),
        model_options=FM, encoder_config=ENC,
    )  # fmt: skip
    assert len(rows) == 2 * len(M.OPTIONS)
    keys = {(r["size"], r["precision"], r["checkpointing"], r["mode"]) for r in rows}
    assert len(keys) == len(rows)
    assert {r["size"] for r in rows} == {"40x32", "48x40"}
    assert all(r["gb"] > 0 and r["fits_24gb"] for r in rows)
    text = M.format_table(rows)
    assert "fm-varnet-clip" in text and "48x40" in text
    # the default table is FM-VarNet and E2E-VarNet at 218x180 and 246x512
    assert M.memory_table.__defaults__[0] == ((218, 180), (246, 512))
    assert M.parse_size("246x512") == (246, 512)
    with pytest.raises(ConfigError):
        M.parse_size("246by512")
    assert main(["models", "--memory", "24"]) == 2  # a bad size: one-line error
    capsys.readouterr()


def test_models_memory_command(monkeypatch, capsys):
    # the command's plumbing with a cheap table (full-size rows take seconds each)
    calls = {}
    real = M.memory_table

    def fake(sizes, coils):
        calls.update(sizes=sizes, coils=coils)
        return real(
            sizes=sizes, coils=coils, models=("e2e-varnet",), options=M.OPTIONS[:2],
            model_options=E2E,
        )  # fmt: skip

    monkeypatch.setattr(M, "memory_table", fake)
    assert main(["models", "--memory", "32x32", "--coils", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert calls == {"sizes": [(32, 32)], "coils": 2}
    assert len(rows) == 2 and rows[0]["model"] == "e2e-varnet"


def test_probes_use_the_gpu_layout_and_the_cast_once_encoder():
    """The estimate is for a GPU: U-Nets in the default layout (channels-last
    is a CPU-only choice), and the bf16 encoder copy counted once per model."""
    from fmrecon.models.unet import Unet

    model = M.build_probe_model("e2e-varnet", TINY["e2e-varnet"], None)
    convs = [m for u in model.modules() if isinstance(u, Unet) for m in u.modules()]
    assert any(getattr(m, "channels_last", None) is False for m in convs)
    assert all(getattr(m, "channels_last", False) is False for m in convs)
    fm = M.build_probe_model("fm-varnet-clip", TINY["fm-varnet"], TINY_OVERRIDES["clip"])
    enc = fm.encoder
    linear = sum(
        m.weight.numel() + m.bias.numel()
        for b in enc.blocks
        for m in b.modules()
        if isinstance(m, nn.Linear)
    )
    got = M.measure(fm, (24, 20), 2, precision="bf16")
    assert got["weight_copies"] == 2 * linear  # bf16: 2 bytes per Linear parameter
    assert M.measure(fm, (24, 20), 2, precision="32")["weight_copies"] == 0
