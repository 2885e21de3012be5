"""fmrecon-bench --profile (fmrecon_bench.profile): where a VarNet's inference time
goes, per component, with shares adding up to the whole and FLOPs attributed to
the modules that spend them."""

from __future__ import annotations

import pytest

from fmrecon.encoders import TINY_OVERRIDES
from fmrecon_bench import config, run
from fmrecon_bench.profile import COMPONENTS, component_profile, format_profile
from fmrecon_bench.report import format_report
from test_fm_models import TINY

OPTIONS = {
    "e2e-varnet": TINY["e2e-varnet"],
    "fm-varnet-clip": dict(TINY["fm-varnet"], encoder_config=TINY_OVERRIDES["clip"]),
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_components_add_up_and_flops_land_where_they_are_spent(name):
    p = component_profile(name, (48, 40), 2, options=OPTIONS[name], repeats=1)
    rows = {r["component"]: r for r in p["rows"]}
    fm = name.startswith("fm-")
    want = set(COMPONENTS) if fm else set(COMPONENTS) - {"encoder", "preprocess / resize"}
    assert set(rows) == want
    # disjoint components: shares add up to the whole forward, FLOPs to the total
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(r["flop"] for r in rows.values()) == p["total_flop"]
    assert all(r["seconds"] >= 0 for r in rows.values())
    # the networks do the matmuls and convolutions; the physics none
    assert rows["sensitivity net"]["flop"] > 0 and rows["decoder"]["flop"] > 0
    assert rows["FFT / SENSE / DC"]["flop"] == 0 and rows["output RSS"]["flop"] == 0
    if fm:  # the shared encoder, counted once per cascade call
        assert rows["encoder"]["flop"] > 0 and rows["preprocess / resize"]["flop"] == 0
    text = "\n".join(format_profile([p], 100.0))
    assert all(c in text for c in want) and "% of matmul" in text


def test_bench_profile_goes_into_the_report_and_json():
    cfg = config.BenchConfig(models=(), sizes=((32, 32),), coils=2, goals=(), isolate=False,
                             model_options=OPTIONS, profile=True)  # fmt: skip
    result = run.run_bench(cfg, log=lambda m: None)
    assert result["errors"] == [] and [p["model"] for p in result["profile"]] == list(OPTIONS)
    assert "where the time goes" in format_report(result)
