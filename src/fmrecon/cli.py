"""The ``fmrecon`` command. Each verb lives in ``fmrecon.commands.<verb>``
with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; bad input
raises :class:`fmrecon.errors.FmreconError`, printed here as one line with
exit code 2 and no traceback. A verb may also define
``preset_defaults(parser, args) -> dict``: option values read from a file
named on its command line (``evaluate --preset``), used as the verb's
defaults, so that every option given on the command line wins."""

from __future__ import annotations

import argparse
import copy
import importlib
import sys

from fmrecon import __version__
from fmrecon.errors import FmreconError

# the verbs that exist, in the order `fmrecon --help` lists them
VERBS = ("simulate", "train", "evaluate", "reconstruct", "models", "export")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose defaults may come from a file the command line
    names: ``preset_defaults(parser, first_pass) -> {dest: value}``. The
    arguments are parsed once to find the file, then again into a namespace
    holding the file's values, which argparse treats as defaults (it fills only
    the attributes a namespace lacks, then overwrites those the command line
    gives). So an option given on the command line wins whatever its value,
    also one equal to the built-in default; the parser itself is not changed.
    ``args.from_preset`` lists the options whose value came from the file."""

    preset_defaults = None

    def parse_known_args(self, args=None, namespace=None):
        hook = self.preset_defaults
        if hook is None:
            return super().parse_known_args(args, namespace)
        args = list(sys.argv[1:] if args is None else args)
        first, _ = super().parse_known_args(args, copy.copy(namespace))
        try:
            defaults = hook(self, first)
        except FmreconError as err:
            err.prog = self.prog  # main() prints it as "fmrecon VERB: error: ..."
            raise
        if namespace is None:
            namespace = argparse.Namespace()
        for dest, value in defaults.items():
            setattr(namespace, dest, value)
        namespace, extra = super().parse_known_args(args, namespace)
        # argparse replaces a value only when the command line gives the option
        namespace.from_preset = [d for d, v in defaults.items() if getattr(namespace, d) is v]
        return namespace, extra


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fmrecon",
        description="Accelerated multi-coil MRI reconstruction with foundation-model priors.",
    )
    parser.add_argument("--version", action="version", version=f"fmrecon {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)  # verbs: Parser too
    for verb in VERBS:
        module = importlib.import_module(f"fmrecon.commands.{verb}")
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
        p.preset_defaults = getattr(module, "preset_defaults", None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except FmreconError as err:  # a verb's preset file that cannot be used
        print(f"{getattr(err, 'prog', 'fmrecon')}: error: {err}", file=sys.stderr)
        return 2
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
