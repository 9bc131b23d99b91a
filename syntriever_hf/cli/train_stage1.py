"""``syntriever train-stage1``: train a stage-1 retriever from a YAML config and/or flags (flags win).

A thin driver: it parses (:func:`~syntriever_hf.trainers.stage1_arguments.parse_stage1_arguments`), sets the log
levels (replicas of a multi-process run log warnings only) and calls
:func:`~syntriever_hf.trainers.stage1.train_stage1`. Run it under ``accelerate launch`` or ``torchrun`` for several
processes; every flag of ``SentenceTransformerTrainingArguments`` (``--bf16``, ``--report_to``,
``--resume_from_checkpoint last``, ...) is accepted.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-stage1",
        help="Train a retriever with stage 1 of Syntriever (synthetic data + gold passages).",
        description="Fine-tune a sentence-transformers bi-encoder with the stage-1 loss. Arguments come from a "
        "YAML file (--config) and/or flags; a flag overrides the file. --help lists every argument.",
        add_help=False,
        allow_abbrev=False,
    )
    parser.add_argument("--config", default=None, metavar="CONFIG.yaml",
                        help="YAML file of 'argument: value' lines (the flag names without '--').")
    parser.add_argument("-h", "--help", action="store_true", help="Show every stage-1 argument and exit.")
    parser.set_defaults(handler=run, accepts_extra_args=True)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from syntriever_hf.trainers.stage1_arguments import format_help, parse_stage1_arguments

    if args.help:
        print(format_help())  # the requested help text is the command's output
        return 0
    stage1_args, training_args = parse_stage1_arguments(extra, config=args.config)
    _configure_logging(training_args)
    from syntriever_hf.trainers.stage1 import train_stage1

    output_dir = train_stage1(stage1_args, training_args)
    logger.info("Stage-1 retriever saved to %s", output_dir)
    return 0


def _configure_logging(training_args: SentenceTransformerTrainingArguments) -> None:
    """TRL-style: the main process keeps the chosen levels; replicas (other ranks) log warnings only."""
    import datasets
    import transformers

    level = training_args.get_process_log_level()
    transformers.utils.logging.set_verbosity(level)
    datasets.utils.logging.set_verbosity(level)
    if not training_args.should_log:
        logging.getLogger("syntriever_hf").setLevel(logging.WARNING)
