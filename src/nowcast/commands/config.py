"""``nowcast config``: validate the configuration and print it as the daemon sees it."""

from __future__ import annotations

import argparse
import json

HELP = "validate the configuration and print the effective settings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--check-dirs", action="store_true",
        help="also require the input and output directories to exist",
    )


def run(args, settings) -> int:
    if args.check_dirs:
        settings.require_dirs("input_dir", "output_dir")
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0
