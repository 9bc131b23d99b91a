"""Fixtures of the trainer tests: a tiny BEIR folder, a recording for it, and fast stage-1 arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syntriever_hf.trainers.stage1_arguments import Stage1Arguments, Stage1TrainingArguments
from tests.trainers.tiny_data import write_tiny_beir, write_tiny_recording


@pytest.fixture(scope="session")
def tiny_beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_beir(tmp_path_factory.mktemp("tiny-beir"))


@pytest.fixture(scope="session")
def tiny_recording_dir(tmp_path_factory: pytest.TempPathFactory, tiny_beir_dir: Path) -> Path:
    return write_tiny_recording(tmp_path_factory.mktemp("tiny-recording"), tiny_beir_dir)


def fast_stage1_args(model: Path, data: Path, **overrides: Any) -> Stage1Arguments:
    """Stage-1 arguments for a tiny model: no dev set, no prompts unless asked."""
    values: dict[str, Any] = {"model_name_or_path": str(model), "data": str(data), "dev_queries": 0,
                              "query_prompt": "", "document_prompt": ""}
    return Stage1Arguments(**{**values, **overrides})


def fast_training_args(output_dir: Path, **overrides: Any) -> Stage1TrainingArguments:
    """A few CPU steps with a large learning rate (so every used weight moves), no evaluation, no saving."""
    values: dict[str, Any] = {
        "output_dir": str(output_dir), "use_cpu": True, "per_device_train_batch_size": 4, "max_steps": 3,
        "learning_rate": 1e-3, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False,
        "logging_steps": 1, "report_to": "none", "disable_tqdm": True, "seed": 0,
    }
    return Stage1TrainingArguments(**{**values, **overrides})
