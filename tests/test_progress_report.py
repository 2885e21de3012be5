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
