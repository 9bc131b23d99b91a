"""Stage trainers and their argument dataclasses (installed as ``syntriever_hf.trainers``)."""

from __future__ import annotations

from syntriever_hf.trainers.sampler import NoDuplicateTextsBatchSampler
from syntriever_hf.trainers.stage1 import DevSplit, Stage1Trainer, dev_split, train_stage1
from syntriever_hf.trainers.stage1_arguments import Stage1Arguments, Stage1TrainingArguments, parse_stage1_arguments

__all__ = [
    "DevSplit",
    "NoDuplicateTextsBatchSampler",
    "Stage1Arguments",
    "Stage1Trainer",
    "Stage1TrainingArguments",
    "dev_split",
    "parse_stage1_arguments",
    "train_stage1",
]
