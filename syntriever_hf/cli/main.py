"""The ``syntriever`` command: a thin dispatcher over the subcommand modules of this package.

Each subcommand lives in its own module exposing ``register(subparsers)``; heavy imports (torch, mteb) happen
inside the handlers, so ``syntriever --help`` and ``syntriever synthesize`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

#: Modules of ``syntriever_hf.cli`` that register a subcommand, in the order ``--help`` lists them.
SUBCOMMAND_MODULES = ("demo", "evaluate", "train_stage1", "synthesize")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syntriever",
        description="Train dense retrievers with synthetic data from LLMs (Syntriever), on the Hugging Face stack.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="Logging verbosity (default: INFO).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"syntriever_hf.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.handler(args, extra) or 0)


if __name__ == "__main__":
    sys.exit(main())
