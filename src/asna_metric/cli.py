"""The ``asna-metric`` command line.

Each group of subcommands lives beside the code it drives and registers
itself here through a ``register(subparsers)`` function; heavy imports
happen inside the command handlers, so ``asna-metric --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from asna_metric._version import __version__
from asna_metric.errors import InputError, WeightsIntegrityError, WeightsNotFoundError

__all__ = ["build_parser", "main"]

# Modules that define ``register(subparsers)``; each adds its subcommands and
# sets ``func`` (a callable taking the parsed namespace, returning an exit code).
_COMMAND_MODULES = (
    "asna_metric._cli_score",  # score, score-dir, map
    "asna_metric.data._cli_synth",  # synth
    "asna_metric.data._cli_eval",  # eval
    "asna_metric.train._cli",  # train, finetune, ensemble
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand.

    Returns:
        The top-level parser.
    """
    parser = argparse.ArgumentParser(
        prog="asna-metric",
        description="ASNA learned full-reference image-quality metric.",
    )
    parser.add_argument("--version", action="version", version=f"asna-metric {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit code: 0 on success, 1 when some items failed,
        2 on bad usage or input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (InputError, WeightsNotFoundError, WeightsIntegrityError) as exc:
        print(f"asna-metric {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"asna-metric {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
