"""The arguments of stage-1 training: what to train on (:class:`Stage1Arguments`) and how (training arguments).

Both are dataclasses that ``HfArgumentParser`` reads from flags, from a YAML file, or from a YAML file with flags
overriding it (:func:`parse_stage1_arguments`, which the ``syntriever train-stage1`` command calls).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

import yaml
from sentence_transformers.base.sampler import BatchSamplers, DefaultBatchSampler
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from transformers import HfArgumentParser
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from syntriever_hf.data.stage1_columns import DEFAULT_STAGE1_PRESET, STAGE1_PRESETS

__all__ = [
    "RECORDED_PREFIX",
    "Stage1Arguments",
    "Stage1TrainingArguments",
    "format_help",
    "parse_stage1_arguments",
    "stage1_argument_parser",
]

logger = logging.getLogger(__name__)

#: ``--synthetic recorded:<folder>`` reads recorded LLM answers (``stage1.jsonl`` + ``verify.jsonl``).
RECORDED_PREFIX = "recorded:"


@dataclass
class Stage1Arguments:
    """What stage 1 trains on: the base model, the data, the loss recipe and the prompts."""

    data: str = field(metadata={"help": "BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv) or Hub "
                                        "dataset id with the training queries, corpus and qrels."})
    model_name_or_path: str = field(
        default="intfloat/e5-base-v2", metadata={"help": "Base model: a sentence-transformers folder or Hub id."}
    )
    train_split: str = field(default="train", metadata={"help": "The qrels split whose queries are trained on."})
    synthetic: str | None = field(
        default=None,
        metadata={"help": "Stage-1 synthetic data: a folder written by Dataset.save_to_disk "
                          "(STAGE1_SYNTHETIC_FEATURES), or 'recorded:<folder>' for recorded LLM answers "
                          "(stage1.jsonl + verify.jsonl). Unset: gold passages (and mined negatives) only."},
    )
    preset: str = field(
        default=DEFAULT_STAGE1_PRESET,
        metadata={"help": "Loss recipe: which texts are positives/negatives and how positives are scored.",
                  "choices": sorted(STAGE1_PRESETS)},
    )
    scale: float = field(default=20.0, metadata={"help": "Inverse temperature of the loss (20 = tau 0.05)."})
    cached: bool = field(
        default=False, metadata={"help": "Use CachedSyntrieverLoss (GradCache): large batches in little memory."}
    )
    mini_batch_size: int = field(default=32, metadata={"help": "Mini-batch size of the cached loss."})
    gather_across_devices: bool = field(
        default=False,
        metadata={"help": "Under DDP, gather every process's texts into each loss (more in-batch negatives)."},
    )
    max_gold: int | None = field(
        default=None, metadata={"help": "Keep at most this many gold passages per query (default: all)."}
    )
    num_mined_negatives: int = field(
        default=0,
        metadata={"help": "Hard negatives mined per training query with the base model before training (0: none)."},
    )
    mining_range_min: int = field(
        default=0, metadata={"help": "Skip this many top-ranked non-positive documents when mining (false negatives)."}
    )
    mining_range_max: int | None = field(
        default=None, metadata={"help": "Deepest rank mined from (default: just enough for the negatives asked)."}
    )
    mining_relative_margin: float | None = field(
        default=None,
        metadata={"help": "Keep a mined document only if its score is below the positive's by this fraction."},
    )
    dev_queries: int = field(
        default=50,
        metadata={"help": "Training queries held out (seeded) as the dev set that evaluation during training and "
                          "the best checkpoint use (nDCG@10). 0: no dev set (then also set --eval_strategy no "
                          "and --load_best_model_at_end false)."},
    )
    dev_corpus_size: int | None = field(
        default=10_000,
        metadata={"help": "Documents of the dev corpus: the dev queries' positives plus a seeded random sample; "
                          "unset (null) for the full corpus."},
    )
    query_prompt: str = field(default="query: ", metadata={"help": "Prompt before queries ('' for none)."})
    document_prompt: str = field(default="passage: ", metadata={"help": "Prompt before documents ('' for none)."})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Truncate texts to this many tokens (default: the model's setting)."}
    )
    evaluate_split: str | None = field(
        default=None,
        metadata={"help": "After training, evaluate on this split with MTEB (e.g. test) and put the scores in the "
                          "model card."},
    )
    license: str | None = field(default=None, metadata={"help": "Licence of the trained model, for its card."})

    def __post_init__(self) -> None:
        if self.preset not in STAGE1_PRESETS:
            raise ValueError(f"preset={self.preset!r} is not a stage-1 preset; use one of {sorted(STAGE1_PRESETS)}.")
        for name in ("dev_queries", "num_mined_negatives", "mining_range_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)!r}.")
        for name in ("max_gold", "dev_corpus_size", "max_seq_length", "mini_batch_size", "mining_range_max"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer{'' if name == 'mini_batch_size' else ' or unset'}"
                                 f", got {value!r}.")
        if self.synthetic == RECORDED_PREFIX:
            raise ValueError(f"synthetic={self.synthetic!r} names no folder; write '{RECORDED_PREFIX}<folder>'.")


@dataclass
class Stage1TrainingArguments(SentenceTransformerTrainingArguments):
    """``SentenceTransformerTrainingArguments`` with stage-1 defaults; every other default is unchanged.

    Changed defaults: ``batch_sampler="no_duplicates"`` (no text twice in a batch; ``Stage1Trainer`` ignores the
    ``""`` of missing slots), ``learning_rate=2e-5`` and ``per_device_train_batch_size=60`` (the paper's values),
    ``eval_strategy="epoch"`` and ``save_strategy="epoch"`` with ``load_best_model_at_end=True`` (the best dev
    nDCG@10 checkpoint is the result, never simply the latest), and ``logging_steps=10``.
    """

    batch_sampler: Union[  # noqa: UP007 (HfArgumentParser reads the first two members of a typing.Union)
        BatchSamplers, str, DefaultBatchSampler, Callable[..., DefaultBatchSampler]
    ] = field(default=BatchSamplers.NO_DUPLICATES, metadata={"help": "The batch sampler to use."})
    learning_rate: float = field(default=2e-5, metadata={"help": "The initial learning rate for AdamW."})
    per_device_train_batch_size: int = field(default=60, metadata={"help": "Training batch size per device."})
    eval_strategy: IntervalStrategy | str = field(
        default="epoch", metadata={"help": "When to evaluate on the dev set: 'no', 'steps', 'epoch'."}
    )
    save_strategy: SaveStrategy | str = field(
        default="epoch", metadata={"help": "When to save a checkpoint: 'no', 'epoch', 'steps', 'best'."}
    )
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Load the checkpoint with the best dev metric at the end of training."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every X update steps (a float < 1: a ratio)."})


def stage1_argument_parser() -> HfArgumentParser:
    """The parser of ``(Stage1Arguments, Stage1TrainingArguments)`` flags."""
    return HfArgumentParser((Stage1Arguments, Stage1TrainingArguments))


def parse_stage1_arguments(
    argv: Sequence[str] = (), *, config: str | Path | None = None
) -> tuple[Stage1Arguments, Stage1TrainingArguments]:
    """Parse stage-1 arguments from flags, a YAML file, or both (flags override the file).

    Args:
        argv: Flags such as ``["--data", "scifact", "--num_train_epochs", "3"]``.
        config: A YAML file mapping argument names to values (the flag names without ``--``).

    Raises:
        ValueError: the file is not a mapping, names an unknown argument, or a flag is unknown.
    """
    parser = stage1_argument_parser()
    if config is not None:
        values = _read_config(Path(config))
        _check_config_keys(values, Path(config))
        parser.set_defaults(**values)
        for action in parser._actions:  # values given by the file are no longer required on the command line
            if action.dest in values:
                action.required = False
    try:
        stage1_args, training_args = parser.parse_args_into_dataclasses(args=list(argv), look_for_args_file=False)
    except SystemExit as error:  # argparse exits on a missing required flag or a bad choice (it printed why)
        if not error.code:
            raise
        raise ValueError(
            f"Invalid stage-1 arguments {list(argv)}: see the argparse message above; --help lists the arguments."
        ) from error
    return stage1_args, training_args


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"--config {str(path)!r}: no such file; pass a YAML file of argument: value lines.")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(
            f"--config {str(path)!r} holds a {type(values).__name__}, not a mapping; write one 'argument: value' "
            "per line, e.g. 'data: path/to/scifact'."
        )
    return values


def _check_config_keys(values: dict[str, Any], path: Path) -> None:
    known = {item.name for kind in (Stage1Arguments, Stage1TrainingArguments) for item in fields(kind) if item.init}
    unknown = sorted(str(key) for key in values if key not in known)
    if unknown:
        raise ValueError(
            f"--config {str(path)!r} names unknown argument(s) {unknown}; use the flag names without '--' "
            "(`syntriever train-stage1 --help` lists them)."
        )


def format_help() -> str:
    """The help text of every stage-1 argument (what ``syntriever train-stage1 --help`` shows)."""
    parser = stage1_argument_parser()
    parser.prog = "syntriever train-stage1 [--config CONFIG.yaml]"
    return parser.format_help()

