"""Measurement processes: every measurement (task) runs in a fresh Python
process, so that its memory figures start from a clean slate and one
measurement's state (allocator, threads, kernels) does not leak into the
next. A task is a function that returns a JSON-able dict: the table's
``"run"`` (:func:`fmrecon_bench.table.measure_model`) and each goal's
``measure``, under the goal's key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import fmrecon
import fmrecon_bench
from fmrecon.utils import set_tf32
from fmrecon_bench.config import BenchConfig
from fmrecon_bench.goals import GOALS
from fmrecon_bench.profile import component_profile
from fmrecon_bench.report import json_default
from fmrecon_bench.table import measure_model

TASKS: dict[str, Callable[..., dict]] = {
    "run": measure_model,
    "profile": component_profile,
    **{g.key: g.measure for g in GOALS if g.measure is not None},
}
_CHILD = "import sys; from fmrecon_bench.tasks import child_main; sys.exit(child_main())"


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of a measurement process: ``TASK_JSON RESULT_JSON``."""
    task_file, result_file = argv if argv is not None else sys.argv[1:3]
    spec = json.loads(Path(task_file).read_text())
    set_tf32(spec.get("tf32", False))  # the run's TF32 policy (BenchConfig.tf32)
    try:
        result = TASKS[spec["task"]](**spec["args"])
        code = 0
    except Exception as err:  # reported to the parent, which carries on
        result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        code = 1
    Path(result_file).write_text(json.dumps(result, default=json_default))
    return code


def _child_env() -> dict:
    """This environment with the folders holding fmrecon and fmrecon_bench
    first on PYTHONPATH: the child imports the same code as this process."""
    roots = {str(Path(m.__file__).resolve().parents[1]) for m in (fmrecon, fmrecon_bench)}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*sorted(roots), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_task(name: str, args: dict, cfg: BenchConfig) -> dict:
    """Run task ``name`` with ``args`` in a fresh Python process (or in this
    one without ``cfg.isolate``). Failures come back as ``{"error": ...}``.
    Either way the task runs with ``cfg.tf32`` (:func:`fmrecon.utils.set_tf32`)."""
    if not cfg.isolate:
        set_tf32(cfg.tf32)
        try:
            return json.loads(json.dumps(TASKS[name](**args), default=json_default))
        except Exception as err:
            return {"error": f"{type(err).__name__}: {err}"}
    with tempfile.TemporaryDirectory(prefix="fmrecon-bench-") as tmp:
        task_file, result_file = Path(tmp) / "task.json", Path(tmp) / "result.json"
        spec = {"task": name, "args": args, "tf32": cfg.tf32}
        task_file.write_text(json.dumps(spec, default=json_default))
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(task_file), str(result_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
            start_new_session=True,  # its own process group: loader workers end with it
        )
        try:
            _, err = proc.communicate(timeout=cfg.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"error": f"timed out after {cfg.timeout:g} s"}
        if result_file.exists():
            return json.loads(result_file.read_text())
        tail = (err or "").strip().splitlines()[-3:]
        return {"error": f"process ended with code {proc.returncode}: " + " | ".join(tail)}
