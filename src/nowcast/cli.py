"""The ``nowcast`` command line: one entry point, one module a subcommand.

Contract
--------
Each module listed in :data:`COMMANDS` (under :mod:`nowcast.commands`) exposes
``HELP`` (one line for ``nowcast --help``), ``add_arguments(parser)`` and
``run(args, settings) -> int``. This module parses, loads the configuration once
(``--config FILE``, accepted by every subcommand), sets up logging, and maps errors
to exit statuses: 78 for a configuration error (one line naming the key), 1 for any
other :class:`~nowcast.errors.NowcastError` (one line naming the file and reason),
130 on Ctrl-C. Subcommand modules import their heavy dependencies inside ``run`` so
that ``nowcast --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nowcast import __version__
from nowcast.errors import ConfigError, NowcastError

COMMANDS = (
    "inspect",
    "config",
    "simulate",
    "predict",
    "eval",
    "plot",
    "train",
    "run",
    "health",
    "retrain",
    "demo",
)


def _load_commands():
    found = {}
    for name in COMMANDS:  # a missing command module is a broken install: raise
        found[name] = importlib.import_module(f"nowcast.commands.{name}")
    return found


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    commands = _load_commands()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="configuration file (default: built-in defaults)"
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )
    common.add_argument(
        "--log-format", choices=("auto", "json", "console"), default="auto",
        help="log lines as JSON or for a terminal (default: JSON unless a terminal)",
    )
    parser = argparse.ArgumentParser(
        prog="nowcast",
        description="Operational 3D radar nowcasting: ConvLSTM3D forecasts for TITAN.",
    )
    parser.add_argument("--version", action="version", version=f"nowcast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in commands.items():
        p = sub.add_parser(
            name, parents=[common], help=module.HELP, description=module.HELP
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what was asked for
    module = args._module
    from nowcast.config import load_config
    from nowcast.logging import configure_logging

    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    stream = "stdout" if getattr(module, "LOGS_TO_STDOUT", False) else "stderr"
    configure_logging("debug" if args.verbose else "info", stream=stream, json=json_logs)
    try:
        settings = load_config(args.config)
        return int(module.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"nowcast: configuration error: {exc}", file=sys.stderr)
        return ConfigError.exit_status
    except NowcastError as exc:
        print(f"nowcast: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
