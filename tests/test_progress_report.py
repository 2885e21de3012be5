"""Progress on stderr (a bar on a terminal, nothing of it in a pipe or under
--quiet) and the evaluation's report.html, opened in a real headless browser."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

SUB = Path("MultiCoil/Cine/TrainingSet")


def _fmrecon(argv: list[str], terminal: bool) -> tuple[int, str, str]:
    """Run ``fmrecon ARGV`` in a fresh process with stderr on a pseudo-terminal
    (``terminal``) or a pipe; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fmrecon.cli", *map(str, argv)]
    if not terminal:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal has exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=300), out, b"".join(chunks).decode(errors="replace")


# 3 cine files of 2 slices x 4 frames and a T1map of 2 slices x 9 weightings,
# every image scored (fastMRI convention): 42 images per setting, 2 settings
EVAL_IMAGES = 2 * (3 * 8 + 18)


def test_evaluate_shows_a_bar_on_a_terminal_only(cmrx_tree, tmp_path):
    argv = ["evaluate", "--model", "zero-filled", "--data", cmrx_tree, "--mask"]
    argv += ["cmrxrecon-uniform", "--accelerations", "4", "8", "--no-figures", "--out"]
    code, out, err = _fmrecon([*argv, tmp_path / "tty"], terminal=True)
    assert code == 0, err
    assert "\r" in err  # the bar redraws in place
    assert f"{EVAL_IMAGES}/{EVAL_IMAGES}" in err  # images done / total
    assert "file 8/8" in err and "file 1/8" in err  # 4 files x 2 settings
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", err)  # elapsed < ETA
    assert "x8 P003/cine_sax.mat" in err  # the current setting, subject and file
    assert "zero-filled R=8 cine_sax.mat: ssim=" in err  # the per-file lines still come

    code, out, err = _fmrecon([*argv, tmp_path / "pipe"], terminal=False)
    assert code == 0, err
    assert "\r" not in err and f"/{EVAL_IMAGES}" not in err and "file 1/8" not in err
    assert err.count("zero-filled R=") == 8  # one line per file and setting: the log

    code, out, err = _fmrecon([*argv, tmp_path / "quiet", "--quiet"], terminal=True)
    assert code == 0, err
    assert "\r" not in err and f"/{EVAL_IMAGES}" not in err and "ssim=" not in err
    assert "| Model |" in out  # the table still goes to stdout


def test_reconstruct_shows_a_bar_on_a_terminal_only(cmrx_tree, tmp_path):
    from fmrecon.models.io import save_model
    from fmrecon.models.registry import create_model

    ckpt = save_model(create_model("zero-filled"), tmp_path / "zf.ckpt")
    argv = ["reconstruct", "--checkpoint", ckpt, cmrx_tree / SUB / "FullSample", "--mask"]
    argv += ["cmrxrecon-uniform", "--acceleration", "4", "--format", "nifti", "--out"]
    code, out, err = _fmrecon([*argv, tmp_path / "tty"], terminal=True)
    assert code == 0, err
    assert "\r" in err and "24/24" in err and "file 3/3" in err  # 3 files of 8 images
    assert "P003/cine_sax.mat" in err and re.search(r"\[\d\d:\d\d<\d\d:\d\d", err)
    code, out, err = _fmrecon([*argv, tmp_path / "pipe"], terminal=False)
    assert code == 0, err
    assert "\r" not in err and "24/24" not in err
    code, out, err = _fmrecon([*argv, tmp_path / "quiet", "--quiet"], terminal=True)
    assert code == 0 and "\r" not in err and "24/24" not in err


# ----------------------------------------------------------------------------- report.html

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "chrome")
_CHECK_PAGE = """<!DOCTYPE html><html><body><pre id="result">not loaded</pre>
<iframe id="f" src="{url}" width="1200" height="800"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {{
  var d = this.contentDocument;
  var imgs = Array.from(d.images).map(function (i) {{
    return {{alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}}; }});
  var tables = Array.from(d.querySelectorAll("table")).map(function (t) {{
    return Array.from(t.rows).map(function (r) {{
      return Array.from(r.cells).map(function (c) {{ return c.textContent; }}); }}); }});
  var heads = Array.from(d.querySelectorAll("h2")).map(function (h) {{ return h.id; }});
  document.getElementById("result").textContent = JSON.stringify(
    {{title: d.title, images: imgs, tables: tables, sections: heads}});
}});
</script></body></html>
"""


def _chromium() -> str:
    import shutil

    import pytest

    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "report.html browser check skipped: no Chromium on this machine "
        "(apt-get install chromium; .ci/run installs it)"
    )


def browser_view(page: Path, work: Path) -> dict:
    """What headless Chromium sees of ``page``: its title, every image (loaded,
    natural size), every table's cells and the section ids, read from inside
    the browser by a page that frames it (file pages share an origin under
    --allow-file-access-from-files). A fresh empty profile, no network use."""
    import json

    chromium = _chromium()
    check = work / "check.html"
    check.write_text(_CHECK_PAGE.format(url=page.resolve().as_uri()))
    profile = work / "profile"
    profile.mkdir()
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--allow-file-access-from-files",
        "--virtual-time-budget=15000",
        "--dump-dom",
        check.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1) != "not loaded", done.stdout[:2000]
    import html as html_lib

    return json.loads(html_lib.unescape(found.group(1)))


def test_report_html_opens_in_a_browser_with_its_tables_and_images(cmrx_tree, tmp_path):
    import json

    from fmrecon.cli import main

    out = tmp_path / "eval"
    argv = ["evaluate", "--model", "zero-filled", "--data", str(cmrx_tree), "--mask"]
    argv += ["cmrxrecon-uniform", "--accelerations", "4", "8", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    page = out / "report.html"
    text = page.read_text()
    # self-contained: every src/href is a data: URI, nothing is fetched from elsewhere
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert not re.search(r"https?:|url\(|@import|<script|<link", text)

    seen = browser_view(page, tmp_path)
    assert seen["title"] == "fmrecon evaluation"
    assert seen["sections"] == ["tables", "distributions", "figures"]
    # the distributions and the two comparison figures (x4, x8), each decoded
    assert [i["alt"] for i in seen["images"]] == ["metric distributions", "x4", "x8"]
    for img in seen["images"]:
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, img
    figure_png = (out / "figures" / "x4.png").read_bytes()
    width, height = struct.unpack(">II", figure_png[16:24])  # the PNG's IHDR
    assert (seen["images"][1]["w"], seen["images"][1]["h"]) == (width, height)
    # the tables of summary.md, with summary.json's numbers
    summary = json.loads((out / "summary.json").read_text())
    main_table, fingerprints = seen["tables"]
    assert main_table[0] == ["Model"] + [
        f"x{a} {m}" for a in (4, 8) for m in ("SSIM", "PSNR", "NMSE")
    ]
    cells = [f"{s['ssim']:.4f}" for s in summary] + [f"{s['psnr']:.2f}" for s in summary]
    assert main_table[1][0] == "zero-filled" and all(c in main_table[1] for c in cells)
    assert [row[:2] for row in fingerprints[1:]] == [["zero-filled", "x4"], ["zero-filled", "x8"]]


# ----------------------------------------------------------------------------- TensorBoard


def test_validation_images_go_to_tensorboard_every_epoch(tmp_path):
    """Two epochs of a tiny VarNet: every validation logs target, reconstruction
    and error map of the same slices (read back from the event file with
    TensorBoard's EventAccumulator); the last epoch's reconstruction is the
    saved model's output on that slice, scaled by the target's max."""
    import io

    import numpy as np
    import torch
    import yaml
    from matplotlib.image import imread
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fmrecon.cli import main
    from fmrecon.data.simulate import simulate_cmrxrecon
    from fmrecon.inference.engine import Engine
    from fmrecon.models.io import load_model
    from fmrecon.training.config import load_config
    from fmrecon.training.data import ReconDataModule

    data = tmp_path / "cine"
    # 6 subjects: 4 train, 1 validation (1 slice x 2 frames = 2 batches), 1 test
    simulate_cmrxrecon(data, 6, seed=1, size=(48, 40), n_slices=1, n_frames=2, n_coils=3, lax=False)
    tiny = {"num_cascades": 1, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2}
    cfg = {
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "e2e-varnet", "options": tiny},
        "data": {"root": str(data), "num_workers": 0},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False},
        "optim": {"lr": 0.01},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 0
    run = tmp_path / "runs" / "tiny"
    (events,) = (run / "tensorboard" / "version_0").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"images": 0})
    acc.Reload()
    names = ("target", "reconstruction", "error")
    assert sorted(acc.Tags()["images"]) == sorted(
        f"val_images_idx_{i}/{n}" for i in (0, 1) for n in names
    )

    def image(tag: str, epoch: int) -> np.ndarray:
        ev = acc.Images(tag)[epoch]
        rgb = imread(io.BytesIO(ev.encoded_image_string), format="png")  # floats in [0, 1]
        assert rgb.ndim == 3 and np.all(rgb == rgb[..., :1])  # grey, stored as RGB
        return rgb[..., 0]

    steps = [ev.step for ev in acc.Images("val_images_idx_0/target")]
    assert len(steps) == 2 and steps[0] < steps[1]  # one per epoch, at the training step
    modules = ReconDataModule(load_config(path)["data"], split_path=run / "split.json")
    modules.setup()
    batch = next(iter(modules.val_dataloader()))
    model = load_model(run / "checkpoints" / "last.ckpt").eval()
    with torch.no_grad():
        out = Engine(model).predict(batch)[0].numpy()
    target = batch.target[0].numpy()
    scale = target.max()
    # PNG holds 8 bits: TensorBoard stores floor(255 x value)
    step = 1 / 255 + 1e-6
    for epoch in (0, 1):
        np.testing.assert_allclose(
            image("val_images_idx_0/target", epoch), target / scale, atol=step
        )
    recon = image("val_images_idx_0/reconstruction", 1)
    np.testing.assert_allclose(recon, np.clip(out / scale, 0, 1), atol=step)
    err = np.abs(out - target)
    np.testing.assert_allclose(image("val_images_idx_0/error", 1), err / err.max(), atol=step)
    # the model changed between the epochs: so did its logged reconstruction
    assert np.abs(image("val_images_idx_0/reconstruction", 0) - recon).max() > 2 * step
