"""The FM-UNETR feature cache (fmrecon.models.feature_cache): exact features, hits and
misses, refusal of per-epoch masks, damaged files, and training with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.encoders import TINY_OVERRIDES, prepare_images
from fmrecon.errors import ConfigError
from fmrecon.models.feature_cache import FeatureCache, attach_feature_cache
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c
from fmrecon.training.config import load_config
from test_fm_models import TINY, _inputs, tiny_model


def _pixels(model, k):
    return prepare_images(rss(ifft2c(k), dim=1), model.encoder)[0]


def _model(seed=0):
    torch.manual_seed(seed)
    return tiny_model("fm-unetr-clip").eval()


def test_cache_returns_exactly_the_encoders_features(tmp_path):
    model = _model()
    k, mask = _inputs(b=2)
    ref_out = model(k, mask)
    ref = model.encode(_pixels(model, k))
    cache = attach_feature_cache(model, tmp_path, fixed_masks=True)
    for epoch in range(2):  # a miss (computed, written), then a hit (read back)
        got = cache.features(model, k, mask, _pixels(model, k))
        assert all(torch.equal(a, b) for a, b in zip(got, ref, strict=True)), epoch
        assert torch.equal(model(k, mask), ref_out)
    assert cache.stats["misses"] == 2 and cache.stats["hits"] == 6
    assert len(list(cache.folder.rglob("*.fc"))) == 2  # one file per item
    assert (cache.folder / "identity.json").is_file()
    # precomputed features passed in skip the encoder and give the same output
    assert torch.equal(model(k, mask, features=ref), ref_out)


def test_hits_only_for_the_same_input_mask_and_encoder(tmp_path):
    model = _model()
    k, mask = _inputs(b=1)
    cache = attach_feature_cache(model, tmp_path, fixed_masks=True)
    model(k, mask)
    model(k, mask)
    assert (cache.stats["hits"], cache.stats["misses"]) == (1, 1)
    # another slice/file (other k-space bytes), another mask: misses
    k2, _ = _inputs(b=1, seed=1)
    model(k2, mask)
    mask2 = mask.clone()
    mask2[..., 1] = ~mask2[..., 1]
    model(k, mask2)
    assert cache.stats["misses"] == 3
    # the encoder's weights change in place (load_state_dict): a new identity, a miss
    digest = cache.digest
    state = {n: t + 0.01 for n, t in model.encoder.state_dict().items()}
    model.encoder.load_state_dict(state)
    model(k, mask)
    assert cache.digest != digest and cache.stats["misses"] == 4
    # another encoder (a different random init) sharing the folder: a miss
    other = _model(seed=1)
    other_cache = attach_feature_cache(other, tmp_path, fixed_masks=True)
    other(k, mask)
    assert other_cache.stats["misses"] == 1 and other_cache.digest not in (digest, cache.digest)
    # a different compute mode (bf16 autocast) is another key too
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(k, mask)
    assert cache.stats["misses"] == 5
    # other preprocessing (percentile) is another identity
    model.percentile = 99.0
    model(k, mask)
    assert cache.stats["misses"] == 6


def test_cache_refuses_per_epoch_masks_and_other_models(tmp_path):
    model = _model()
    with pytest.raises(ConfigError, match="fixed masks"):
        attach_feature_cache(model, tmp_path, fixed_masks=False)
    with pytest.raises(ConfigError, match="FM-UNETR"):
        attach_feature_cache(
            tiny_model("e2e-varnet"), tmp_path, fixed_masks=True
        )  # fmt: skip
    base = ["data.root=/data", "model.name=fm-unetr-clip", f"model.feature_cache={tmp_path}"]
    with pytest.raises(ConfigError, match="data.mask.official: true"):
        load_config(None, base)
    cfg = load_config(None, [*base, "data.mask.official=true"])
    assert cfg["model"]["feature_cache"] == str(tmp_path)
    with pytest.raises(ConfigError, match="feature_cache_dtype"):
        load_config(None, [*base, "data.mask.official=true", "model.feature_cache_dtype=int8"])


def test_damaged_cache_files_are_recomputed(tmp_path):
    model = _model()
    k, mask = _inputs(b=1)
    ref = model(k, mask)
    cache = attach_feature_cache(model, tmp_path, fixed_masks=True)
    model(k, mask)
    (path,) = cache.folder.rglob("*.fc")
    good = path.read_bytes()
    damaged = [good[: len(good) // 2], good[:10], b"", b"garbage" * 10, good + b"x"]
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF  # payload bit flip: caught by the payload hash
    damaged.append(bytes(flipped))
    for n, data in enumerate(damaged, start=1):
        path.write_bytes(data)
        assert torch.equal(model(k, mask), ref)
        assert cache.stats["corrupt"] == n
        assert path.read_bytes() == good  # rewritten
    assert torch.equal(model(k, mask), ref) and cache.stats["corrupt"] == len(damaged)
    # an entry copied under another key is not trusted (the header names its key)
    k2, _ = _inputs(b=1, seed=5)
    key2 = cache.item_keys(k2, mask, "any mode")[0]
    other = cache.path(key2)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(good)
    assert cache.load(key2) is None


def test_float16_storage_halves_the_files_and_is_stable_across_epochs(tmp_path):
    model = _model()
    k, mask = _inputs(b=1)
    ref = model(k, mask)
    c32 = FeatureCache(tmp_path / "a", "float32")
    c16 = attach_feature_cache(model, tmp_path / "b", "float16", fixed_masks=True)
    first = model(k, mask)
    second = model(k, mask)
    assert torch.equal(first, second)  # every epoch sees the same (rounded) features
    assert torch.allclose(first, ref, rtol=1e-2, atol=1e-3 * float(ref.detach().abs().max()))
    model.feature_cache = c32
    model(k, mask)
    size16 = next(c16.folder.rglob("*.fc")).stat().st_size
    size32 = next(c32.folder.rglob("*.fc")).stat().st_size
    assert size16 < 0.6 * size32


@pytest.fixture(scope="module")
def official_cine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cine_official")
    simulate_cmrxrecon(
        root, 3, seed=2, size=(40, 32), n_slices=1, n_frames=2, n_coils=2, lax=False,
        accelerations=(4,),
    )  # fmt: skip
    return root


def _fit(data: Path, cache_dir: Path | None) -> tuple[list[float], object]:
    """Three epochs of a tiny FM-UNETR through ReconModule + Lightning on the
    official-mask slices; returns the per-step training losses and the module."""
    import lightning as L
    from torch.utils.data import DataLoader

    from fmrecon.data.formats import discover
    from fmrecon.data.slices import SliceDataset, collate
    from fmrecon.physics.masks import create_mask
    from fmrecon.training.config import DEFAULTS
    from fmrecon.training.module import ReconModule

    L.seed_everything(0, verbose=False)
    model_cfg = {
        "name": "fm-unetr-clip",
        "options": dict(TINY["fm-unetr"]),
        "encoder_weights": "random",
        "allow_random_encoder": True,
        "encoder_config": dict(TINY_OVERRIDES["clip"]),
        "feature_cache": str(cache_dir) if cache_dir else None,
    }
    run_cfg = {"data": {"mask": {"official": True}}}
    module = ReconModule(model_cfg, dict(DEFAULTS["optim"]), run_config=run_cfg)
    vols = [v for v in discover(data)[0] if v.fully_sampled]
    ds = SliceDataset(vols, create_mask("cmrxrecon-uniform", 4), official_masks=True)
    losses: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
    )  # fmt: skip
    loader = DataLoader(ds, batch_size=1, collate_fn=collate)
    trainer.fit(module, loader, DataLoader(ds, batch_size=1, collate_fn=collate))
    return losses, module


def test_training_with_the_cache_gives_the_same_losses(tmp_path, official_cine):
    plain, _ = _fit(official_cine, None)
    cached, module = _fit(official_cine, tmp_path / "features")
    assert len(plain) == len(cached) == 18  # 6 slices x 3 epochs
    assert plain == cached  # bit-identical trajectory with float32 storage
    stats = module.feature_cache.summary()
    assert stats["misses"] == 6 and stats["hits"] > 0  # each slice encoded once
    assert len(list((tmp_path / "features").rglob("*.fc"))) == 6


# ------------------------------------------------------------- keys from the loader side


def _official_items(root: Path, content_keys: bool = True):
    from fmrecon.data.formats import discover
    from fmrecon.data.slices import SliceDataset
    from fmrecon.physics.masks import create_mask

    vols = [v for v in discover(root)[0] if v.fully_sampled]
    return SliceDataset(vols, create_mask("cmrxrecon-uniform", 4), official_masks=True,
                        content_keys=content_keys)  # fmt: skip


def test_loader_keys_are_the_host_keys_and_never_stale(tmp_path, official_cine):
    """The key a loader computes on the CPU equals the one the forward computes
    by hashing its input on the host; another mask or k-space gives another key,
    so no stale entry is hit; keys are consumed by one forward."""
    from fmrecon.data.slices import collate, content_key

    model = _model()
    cache = attach_feature_cache(model, tmp_path, fixed_masks=True)
    ds = _official_items(official_cine)
    batch = collate([ds[0], ds[1]])
    assert all(len(c) == 64 for c in batch.content_key)
    assert _official_items(official_cine, content_keys=False)[0].content_key == ""
    cache.bind(model)
    with cache.batch_keys(batch.content_key):
        loader = cache.item_keys(batch.kspace, batch.mask, "m")
    assert cache._pending is None  # consumed
    assert loader == cache.item_keys(batch.kspace, batch.mask, "m")  # host-hashed, same keys
    assert (cache.stats["loader_keys"], cache.stats["host_keys"]) == (2, 2)
    with pytest.raises(ValueError, match="2 content keys for a batch of 1"):
        with cache.batch_keys(batch.content_key):
            cache.item_keys(batch.kspace[:1], batch.mask[:1], "m")
    # a changed mask, a changed k-space: other content keys, so misses, never a stale hit
    one = ds[0]
    cols = one.mask[0, 0]
    fewer, more = one.mask.clone(), one.mask.clone()
    fewer[..., int(cols.nonzero()[0])] = False  # a sampled line dropped: other k-space bytes
    more[..., int((~cols).nonzero()[0])] = True  # a line added: same k-space bytes, other mask
    k2 = one.kspace.clone()
    k2[0, 0, 0] += 1e-3
    inputs = [(one.kspace, one.mask), (one.kspace * fewer, fewer), (one.kspace, more),
              (k2, one.mask)]  # fmt: skip
    assert len({content_key(k, m) for k, m in inputs}) == 4
    assert one.content_key == content_key(*inputs[0])
    with torch.no_grad():
        for k, m in inputs[1:]:
            want = model.encode(_pixels(model, k[None]))  # the encoder on this very input
            with cache.batch_keys(content_key(k, m)):
                got = cache.features(model, k[None], m[None], _pixels(model, k[None]))
            assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert cache.stats["misses"] == 3 and cache.stats["hits"] == 0
    # the loader's own item again: hits, each with the right features
    with torch.no_grad(), cache.batch_keys(one.content_key):
        cache.features(model, one.kspace[None], one.mask[None], _pixels(model, one.kspace[None]))
    assert cache.stats["misses"] == 4
    with torch.no_grad(), cache.batch_keys(one.content_key):
        cache.features(model, one.kspace[None], one.mask[None], _pixels(model, one.kspace[None]))
    assert cache.stats["hits"] == 1


class _HostCopies:
    """Records every way a complex tensor (the k-space, or what the forward makes
    of it) could reach the host: ``cpu()``, ``numpy()``, ``tolist()``,
    ``to(<cpu>)``, the byte view used for hashing, and the content-key hash."""

    def __init__(self, monkeypatch):
        from fmrecon.models import feature_cache as fc
        from fmrecon.utils import tensor_bytes

        self.calls: list[str] = []
        for name in ("cpu", "numpy", "tolist", "to"):
            real = getattr(torch.Tensor, name)

            def spy(t, *a, _n=name, _real=real, **k):
                to_host = _n != "to" or any(
                    str(x).startswith("cpu") for x in (*a, k.get("device")) if x is not None
                )
                if t.is_complex() and to_host:
                    self.calls.append(f"Tensor.{_n}")
                return _real(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, spy)

        def hashed(*a, **k):
            self.calls.append("content_key")
            raise AssertionError("the forward hashed its input")

        monkeypatch.setattr(fc, "content_key", hashed)

        def raw(t):  # the features written on a miss are real: only complex ones count
            if t.is_complex():
                self.calls.append("bytes")
            return tensor_bytes(t)

        monkeypatch.setattr(fc, "tensor_bytes", raw)


def test_training_step_never_copies_the_kspace_to_the_host(tmp_path, official_cine, monkeypatch):
    """Training and validation steps with the cache (a miss, then a hit) key the
    batch by its loader-side content keys: nothing complex is copied to the host
    and nothing is hashed in the forward; without loader keys, it would be."""
    from fmrecon.data.slices import collate
    from fmrecon.training.config import DEFAULTS
    from fmrecon.training.module import ReconModule

    model_cfg = {
        "name": "fm-unetr-clip", "options": dict(TINY["fm-unetr"]), "encoder_weights": "random",
        "allow_random_encoder": True, "encoder_config": dict(TINY_OVERRIDES["clip"]),
        "feature_cache": str(tmp_path / "features"),
    }  # fmt: skip
    module = ReconModule(model_cfg, dict(DEFAULTS["optim"]),
                         run_config={"data": {"mask": {"official": True}}})  # fmt: skip
    module.log = lambda *a, **k: None  # no trainer attached
    batch = collate([_official_items(official_cine)[i] for i in (0, 1)])
    spy = _HostCopies(monkeypatch)
    for _ in range(2):  # misses (computed, written), then hits (read back)
        module.train()
        module.training_step(batch, 0).backward()
        module.eval()
        module.on_validation_epoch_start()
        with torch.no_grad():
            module.validation_step(batch, 0)
    stats = module.feature_cache.stats
    assert spy.calls == [] and stats["host_keys"] == 0
    assert (stats["misses"], stats["hits"], stats["loader_keys"]) == (2, 6, 8)
    # the check can fail: the same step with a batch that carries no keys
    batch.content_key = ["", ""]
    module.train()
    with pytest.raises(AssertionError, match="hashed its input"):
        module.training_step(batch, 0)
    assert spy.calls[:2] == ["Tensor.to", "content_key"]
