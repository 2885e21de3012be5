"""The ``fmrecon`` command. Each verb lives in ``fmrecon.commands.<verb>``
with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; bad input
raises :class:`fmrecon.errors.FmreconError`, printed here as one line with
exit code 2 and no traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

from fmrecon import __version__
from fmrecon.errors import FmreconError

# the verbs that exist, in the order `fmrecon --help` lists them
VERBS = ("simulate", "train", "evaluate", "reconstruct", "models")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmrecon",
        description="Accelerated multi-coil MRI reconstruction with foundation-model priors.",
    )
    parser.add_argument("--version", action="version", version=f"fmrecon {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        module = importlib.import_module(f"fmrecon.commands.{verb}")
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow the options (`train --config C --resume a=1`)
    if extra and isinstance(getattr(args, "overrides", None), list):
        if all("=" in a and not a.startswith("-") for a in extra):
            args.overrides += extra
            extra = []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.run(args) or 0)
    except FmreconError as err:
        print(f"fmrecon {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fmrecon {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
