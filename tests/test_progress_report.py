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
