"""``python -m fmrecon_bench [options]``: the benchmark (see ``--help``)."""

import sys

from fmrecon_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
