"""syntriever-hf: train dense retrievers with synthetic data from black-box LLMs (Syntriever), on the HF stack.

Everything is reachable from here; names are imported on first use, so ``import syntriever_hf`` stays light and
the synthesis engine never pulls in torch::

    import syntriever_hf as st

    scifact = st.load_beir("path/to/scifact")
    scores = st.evaluate_retrieval("intfloat/e5-base-v2", scifact, split="test")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "BeirDataset": "syntriever_hf.data",
    "BeirFormatError": "syntriever_hf.data",
    "load_beir": "syntriever_hf.data",
    "load_recorded_stage1": "syntriever_hf.data.recorded",
    "build_stage1_examples": "syntriever_hf.data.stage1",
    "stage1_statistics": "syntriever_hf.data.stage1",
    "Stage1Recipe": "syntriever_hf.data.stage1_columns",
    "STAGE1_PRESETS": "syntriever_hf.data.stage1_columns",
    "DEFAULT_STAGE1_PRESET": "syntriever_hf.data.stage1_columns",
    "to_loss_columns": "syntriever_hf.data.stage1_columns",
    "evaluate_retrieval": "syntriever_hf.evaluation",
    "format_scores_table": "syntriever_hf.evaluation",
    "RetrievalScores": "syntriever_hf.evaluation",
    "SyntrieverLoss": "syntriever_hf.losses",
    "CachedSyntrieverLoss": "syntriever_hf.losses",
    "search": "syntriever_hf.retrieval",
    "mine_hard_negatives": "syntriever_hf.retrieval",
    "Engine": "syntriever_hf.llm",
    "ChatRequest": "syntriever_hf.llm",
    "QuerySet": "syntriever_hf.synthesis",
    "synthesize_stage1": "syntriever_hf.synthesis",
    "Stage1Trainer": "syntriever_hf.trainers.stage1",
    "train_stage1": "syntriever_hf.trainers.stage1",
    "Stage1Arguments": "syntriever_hf.trainers.stage1_arguments",
    "Stage1TrainingArguments": "syntriever_hf.trainers.stage1_arguments",
    "parse_stage1_arguments": "syntriever_hf.trainers.stage1_arguments",
    "push_dataset_dict": "syntriever_hf.hub",
    "push_model_folder": "syntriever_hf.hub",
    "render_card": "syntriever_hf.hub",
    "SYNTRIEVER_CITATION": "syntriever_hf.citation",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'syntriever_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
