"""The benchmark as a script: ``python benchmarks/run_bench.py [options]`` is
``fmrecon bench [options]`` (see ``fmrecon bench --help``)."""

from __future__ import annotations

import sys
from pathlib import Path

# run from a checkout without installing: put src/ on the path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fmrecon.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
