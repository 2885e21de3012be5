"""`fmrecon export` and loading what it writes: a folder in the hub's
conventions (model.safetensors, config.json, model card), loaded from the
folder, from a faked Hugging Face cache by hub id (offline and through a faked
snapshot_download), uploaded with a faked HfApi; the frozen encoder kept by
reference; one-line errors for every load path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import fmrecon
from fmrecon.cli import main
from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.encoders import TINY_OVERRIDES
from fmrecon.errors import ConfigError
from fmrecon.models.io import save_model
from fmrecon.models.registry import create_model
from test_fm_models import tiny_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _inputs():
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((2, 3, 48, 40)) + 1j * rng.standard_normal((2, 3, 48, 40))).astype(
        np.complex64
    )
    mask = np.zeros(40, bool)
    mask[::4] = True
    mask[16:24] = True
    return k, mask


def _same_model(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    k, mask = _inputs()
    np.testing.assert_array_equal(fmrecon.reconstruct(a, k, mask), fmrecon.reconstruct(b, k, mask))


def _export(tmp_path: Path, model, name: str, *extra) -> Path:
    ckpt = save_model(model, tmp_path / f"{name}.ckpt")
    out = tmp_path / name
    assert main(["export", str(ckpt), str(out), *map(str, extra)]) == 0
    return out


def _put_in_cache(cache: Path, repo: str, folder: Path) -> Path:
    """``folder``'s files as the hub cache holds repo ``repo`` at ``main``."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / COMMIT
    shutil.copytree(folder, snap)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return snap


def test_export_writes_the_hub_layout_and_loads_back(tmp_path, capsys):
    model = tiny_model("e2e-varnet")
    out = _export(tmp_path, model, "varnet")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert "wrote" in capsys.readouterr().out
    # safetensors: an 8-byte header length then JSON, no pickle anywhere
    raw = (out / "model.safetensors").read_bytes()
    assert raw[8:9] == b"{" and b"\x80\x04" not in raw[:16]
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    config = json.loads((out / "config.json").read_text())
    assert config["model_spec"]["name"] == "e2e-varnet"
    assert config["model_spec"]["overrides"]["num_cascades"] == 2
    assert "encoder_reference" not in config and "/" not in config["exported_from"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: fmrecon\n")
    assert f'fmrecon.load_model("{out}")' in card and "no foundation-model encoder" in card
    loaded = fmrecon.load_model(out)
    _same_model(model, loaded)
    assert not loaded.training and loaded.record.checkpoint == str(out)


def test_random_encoder_is_exported_with_its_weights_and_flagged(tmp_path):
    model = tiny_model("fm-unetr-clip")
    out = _export(tmp_path, model, "unetr")
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert any(k.startswith("encoder.") for k in f.keys())
    card = (out / "README.md").read_text()
    assert "RANDOMLY INITIALISED" in card and "base_model" not in card
    assert "none (random-init" in card
    _same_model(model, fmrecon.load_model(out))
    # by reference is impossible for it: one line
    ckpt = tmp_path / "unetr.ckpt"
    assert main(["export", str(ckpt), str(tmp_path / "x"), "--encoder", "reference"]) == 2


def _tiny_clip_in_cache(cache: Path, seed: int = 0) -> None:
    """A tiny CLIP vision model where the hub cache keeps openai/clip-vit-base-patch16."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    cfg = {k: v for k, v in TINY_OVERRIDES["clip"].items() if k != "input_size"}
    src = cache.parent / f"clip-{seed}"
    CLIPVisionModel(CLIPVisionConfig(**cfg)).save_pretrained(src)
    snap = cache / "models--openai--clip-vit-base-patch16" / "snapshots" / COMMIT
    if snap.exists():
        shutil.rmtree(snap)
    _put_in_cache(cache, "openai/clip-vit-base-patch16", src)


def test_pretrained_hub_encoder_is_kept_by_reference(tmp_path, monkeypatch):
    """A pretrained encoder from the hub is not copied into the export (licence,
    gates, size): it is fetched from its own repo and checked on load."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    _tiny_clip_in_cache(cache)
    model = create_model(
        "fm-varnet-clip",
        encoder_config=TINY_OVERRIDES["clip"],
        num_cascades=2,
        sens_chans=4,
        sens_pools=2,
        chans=(16, 16, 8, 8, 8),
    )
    assert model.record.encoder_weights == "hf:openai/clip-vit-base-patch16"
    out = _export(tmp_path, model, "fmv")
    config = json.loads((out / "config.json").read_text())
    assert config["encoder_reference"]["weight_source"] == "hf:openai/clip-vit-base-patch16"
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not any(k.startswith("encoder.") for k in f.keys())
    card = (out / "README.md").read_text()
    assert "base_model: openai/clip-vit-base-patch16" in card and "licence: MIT" in card
    assert "by reference" in card and "RANDOMLY" not in card
    _same_model(model, fmrecon.load_model(out))
    # --encoder weights: self-contained, larger
    full = tmp_path / "full"
    assert main(["export", str(tmp_path / "fmv.ckpt"), str(full), "--encoder", "weights"]) == 0
    assert (full / "model.safetensors").stat().st_size > (out / "model.safetensors").stat().st_size
    # other weights where the encoder's repo is: refused in one line
    _tiny_clip_in_cache(cache, seed=1)
    with pytest.raises(ConfigError, match="not the ones it was trained with") as err:
        fmrecon.load_model(out)
    assert "\n" not in str(err.value)
    _same_model(model, fmrecon.load_model(full))


def test_hub_id_loads_from_the_cache_offline_and_fetches_online(tmp_path, monkeypatch):
    import huggingface_hub

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = tiny_model("e2e-varnet")
    out = _export(tmp_path, model, "varnet")
    # offline (tests/conftest.py sets HF_HUB_OFFLINE=1) and not in the cache: one line
    with pytest.raises(ConfigError) as err:
        fmrecon.load_model("hf:someone/varnet")
    msg = str(err.value)
    assert "HF_HUB_OFFLINE=1" in msg and "models--someone--varnet" in msg and "\n" not in msg
    assert "`hf download someone/varnet`" in msg
    # online: fetched with snapshot_download (faked) into the cache, only the export's files
    calls = []

    def fake_snapshot_download(repo_id, *, revision, cache_dir, allow_patterns):
        calls.append((repo_id, revision, cache_dir, tuple(allow_patterns)))
        return str(_put_in_cache(Path(cache_dir), repo_id, out))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    _same_model(model, fmrecon.load_model("hf:someone/varnet"))
    assert calls == [
        ("someone/varnet", "main", str(cache), ("config.json", "model.safetensors", "README.md"))
    ]
    # then from the cache, offline, also through the CLI's --checkpoint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _same_model(model, fmrecon.load_model("hf:someone/varnet"))
    assert len(calls) == 1
    simulate_cmrxrecon(
        tmp_path / "data", 1, size=(48, 40), n_slices=1, n_frames=1, n_coils=3, lax=False,
        undersampled=True,
    )  # fmt: skip
    src = next((tmp_path / "data").rglob("AccFactor04/P001/cine_sax.mat"))
    argv = ["reconstruct", str(src), "--checkpoint", "hf:someone/varnet", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "rec")]) == 0

    # a failing download: one line
    def unreachable(*args, **kwargs):
        raise OSError("network unreachable\n(second line)")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(ConfigError, match="download failed .OSError: network unreachable"):
        fmrecon.load_model("hf:someone/other@v2")


def test_push_uploads_the_folder_with_huggingface_hub(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))
            return type("Commit", (), {"commit_url": "https://hf.co/org/name/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = _export(tmp_path, tiny_model("unet"), "unet", "--push", "org/name", "--private")
    assert calls[0] == (
        "create_repo", "org/name", {"repo_type": "model", "private": True, "exist_ok": True}
    )  # fmt: skip
    assert calls[1][1]["repo_id"] == "org/name" and calls[1][1]["folder_path"] == str(out)
    assert calls[1][1]["allow_patterns"] == ["config.json", "model.safetensors", "README.md"]
    assert "pushed to https://huggingface.co/org/name" in capsys.readouterr().out
    assert 'fmrecon.load_model("hf:org/name")' in (out / "README.md").read_text()

    def refused(**kw):
        raise PermissionError("401 Unauthorized\nlog in")

    FakeApi.upload_folder = lambda self, **kw: refused(**kw)
    assert main(["export", str(tmp_path / "unet.ckpt"), str(out), "--push", "org/name"]) == 2
    err = capsys.readouterr().err
    assert "upload failed (PermissionError: 401 Unauthorized log in)" in err
    assert err.count("\n") == 1


def test_card_holds_the_evaluation_table(tmp_path):
    model = tiny_model("e2e-varnet")
    ckpt = save_model(model, tmp_path / "v.ckpt")
    simulate_cmrxrecon(
        tmp_path / "data", 1, size=(48, 40), n_slices=1, n_frames=1, n_coils=3, lax=False
    )
    ev = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path / "data")]
    assert main([*argv, "--out", str(ev), "--quiet"]) == 0
    out = tmp_path / "export"
    assert main(["export", str(ckpt), str(out), "--metrics", str(ev)]) == 0
    table = (ev / "summary.md").read_text().strip()
    assert table and table in (out / "README.md").read_text()
    assert main(["export", str(ckpt), str(out), "--metrics", str(tmp_path)]) == 2


def _fastmri_state_dict(path: Path) -> Path:
    from fastmri.models import VarNet

    torch.manual_seed(0)
    net = VarNet(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2)
    torch.save(net.state_dict(), path)
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("origin", ["checkpoint", "fastmri", "export", "hub"])
def test_every_load_path_fails_in_one_line(origin, tmp_path, monkeypatch):
    """Missing file, truncated file, wrong keys, unknown model name: one line
    naming the file (or hub id) and the problem."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = tiny_model("e2e-varnet")
    if origin == "checkpoint":
        good = save_model(model, tmp_path / "m.ckpt")
    elif origin == "fastmri":
        good = _fastmri_state_dict(tmp_path / "fastmri.pt")
        fastmri = fmrecon.load_model(good, "e2e-varnet")
        assert fastmri.record.source == "fastmri"
        # fastMRI's weights export too (the model name given, as for reconstruct)
        out = tmp_path / "fastmri-export"
        assert main(["export", str(good), str(out), "--model", "e2e-varnet"]) == 0
        _same_model(fastmri, fmrecon.load_model(out))
        assert "exported from: `fastmri.pt`" in (out / "README.md").read_text()
    else:
        good = _export(tmp_path, model, "m")
    target = good

    def case(setup, expected):
        nonlocal target
        work = tmp_path / f"case{len(list(tmp_path.glob('case*')))}"
        (shutil.copytree if Path(good).is_dir() else shutil.copy)(good, work)
        target = setup(work)
        where = str(target)
        if origin == "hub":
            shutil.rmtree(cache, ignore_errors=True)
            if target.exists():
                _put_in_cache(cache, "org/m", target)
            where = "hf:org/m"
        with pytest.raises(ConfigError) as err:
            fmrecon.load_model(where, "e2e-varnet" if origin == "fastmri" else None)
        msg = str(err.value)
        assert "\n" not in msg and expected in msg, msg
        assert where in msg or origin == "hub" and "org/m" in msg, msg

    weights = "model.safetensors" if origin in ("export", "hub") else None

    def file_of(work: Path) -> Path:
        return work / weights if weights else work

    # missing
    if origin == "hub":
        case(lambda w: w / "absent", "HF_HUB_OFFLINE=1")
    elif weights:
        case(lambda w: (file_of(w).unlink(), w)[1], "no model.safetensors")
        case(lambda w: ((w / "config.json").unlink(), w)[1], "no config.json")
    else:
        case(lambda w: w.with_name("absent.pt"), "file not found")
    # truncated
    expected = "cannot be read"
    case(lambda w: (_truncate(file_of(w)), w)[1], expected)
    # wrong keys / sizes
    bigger = tiny_model("e2e-varnet", num_cascades=3)
    if weights:

        def swap(w):
            shutil.rmtree(w)
            save = tmp_path / f"big{len(list(tmp_path.glob('big*')))}"
            assert (
                main(["export", str(save_model(bigger, save.with_suffix(".ckpt"))), str(save)]) == 0
            )
            shutil.copytree(save, w)
            cfg = json.loads((w / "config.json").read_text())
            cfg["model_spec"]["overrides"]["num_cascades"] = 2
            (w / "config.json").write_text(json.dumps(cfg))
            return w

        case(swap, "weights do not fit 'e2e-varnet' (missing [], unexpected ['cascades.2")
    elif origin == "checkpoint":

        def swap(w):
            ckpt = torch.load(w, weights_only=True)
            big = save_model(bigger, tmp_path / "big.ckpt")
            ckpt["state_dict"] = torch.load(big, weights_only=True)["state_dict"]
            torch.save(ckpt, w)
            return w

        case(swap, "weights do not fit 'e2e-varnet' (missing [], unexpected ['cascades.2")
    else:

        def drop(w):
            state = torch.load(w, weights_only=True)
            state["cascades.0.model.unet.down_sample_layers.0.layers.0.weight"] = torch.zeros(1)
            torch.save(state, w)
            return w

        case(drop, "shape cascades.0.model.unet.down_sample_layers.0.layers.0.weight (1) vs")
    # unknown model name
    if origin == "fastmri":
        with pytest.raises(ConfigError, match="not an fmrecon checkpoint") as err:
            fmrecon.load_model(good, model_name="unet")
        assert "\n" not in str(err.value)
        return

    def rename(w):
        if weights:
            cfg = json.loads((w / "config.json").read_text())
            cfg["model_spec"]["name"] = "e3e-varnet"
            (w / "config.json").write_text(json.dumps(cfg))
        else:
            ckpt = torch.load(w, weights_only=True)
            ckpt["fmrecon"]["model_spec"]["name"] = "e3e-varnet"
            torch.save(ckpt, w)
        return w

    case(rename, "unknown model 'e3e-varnet' (available: zero-filled")
