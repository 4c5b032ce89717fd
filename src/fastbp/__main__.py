# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The ``fastbp`` command (also ``python -m fastbp``)."""

import argparse
import os
import sys

from ._cli import add_commands
from ._cli import run as run_command


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastbp", description="Fast backpropagation neural networks on the CPU."
    )
    parser.add_argument("--version", action="store_true", help="print the version")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="train the single neuron, then fastbp beside scikit-learn on diabetes",
        description="Train the single neuron on y = 2x, then BPRegressor and "
        "MLPRegressor side by side on the diabetes data.",
    )
    add_commands(commands)
    return parser


def main(argv=None):
    """Run the command; return its exit status."""
    try:
        try:
            return _main(argv)
        finally:
            # Flushed here, not at exit, so that a closed pipe is caught
            # below, even after --help.
            sys.stdout.flush()
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader has gone (`fastbp predict ... | head`): stop quietly, as
        # if killed by SIGPIPE. Pointing stdout at devnull keeps Python's own
        # flush at exit from reporting the broken pipe again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141


def _main(argv):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        from ._demo import main as demo

        return demo()
    if hasattr(args, "run"):
        return run_command(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
