"""Stage-1 arguments: flags, a YAML file, flags over the file, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentence_transformers.base.sampler import BatchSamplers

from syntriever_hf.data.stage1_columns import DEFAULT_STAGE1_PRESET
from syntriever_hf.trainers.stage1_arguments import (
    Stage1Arguments,
    Stage1TrainingArguments,
    format_help,
    parse_stage1_arguments,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_flags_alone(tmp_path):
    args, training = parse_stage1_arguments(["--data", "some/beir", "--output_dir", str(tmp_path), "--cached",
                                             "--query_prompt", "", "--max_gold", "2"])
    assert isinstance(args, Stage1Arguments) and isinstance(training, Stage1TrainingArguments)
    assert (args.data, args.cached, args.query_prompt, args.max_gold) == ("some/beir", True, "", 2)
    assert args.model_name_or_path == "intfloat/e5-base-v2"
    assert args.preset == DEFAULT_STAGE1_PRESET
    assert args.document_prompt == "passage: "


def test_stage1_training_defaults(tmp_path):
    training = Stage1TrainingArguments(output_dir=str(tmp_path))
    assert training.batch_sampler == BatchSamplers.NO_DUPLICATES
    assert (training.learning_rate, training.per_device_train_batch_size) == (2e-5, 60)
    assert training.eval_strategy == "epoch" and training.save_strategy == "epoch"
    assert training.load_best_model_at_end


def test_yaml_file_with_flags_overriding(tmp_path):
    config = _write(tmp_path / "cfg.yaml", f"""
data: {tmp_path / 'beir'}
preset: paper
num_mined_negatives: 3
learning_rate: 3e-5
num_train_epochs: 7
bf16: true
output_dir: {tmp_path / 'from-yaml'}
use_cpu: true
""")
    args, training = parse_stage1_arguments(["--num_train_epochs", "2", "--preset", "gold"], config=config)
    assert args.data == str(tmp_path / "beir")
    assert args.num_mined_negatives == 3
    assert args.preset == "gold"  # the flag wins
    assert training.num_train_epochs == 2  # the flag wins
    assert training.learning_rate == pytest.approx(3e-5)  # YAML reads "3e-5" as a string; it is converted
    assert training.bf16 is True and training.use_cpu is True
    assert training.output_dir == str(tmp_path / "from-yaml")


def test_unknown_yaml_key_is_named(tmp_path):
    config = _write(tmp_path / "cfg.yaml", "data: x\nlearning_rat: 1e-5\n")
    with pytest.raises(ValueError, match=r"cfg.yaml' names unknown argument\(s\) \['learning_rat'\]"):
        parse_stage1_arguments([], config=config)


def test_yaml_that_is_not_a_mapping(tmp_path):
    config = _write(tmp_path / "cfg.yaml", "- data\n- x\n")
    with pytest.raises(ValueError, match="holds a list, not a mapping"):
        parse_stage1_arguments([], config=config)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        parse_stage1_arguments([], config=tmp_path / "absent.yaml")


def test_missing_data_and_unknown_flag_are_errors():
    with pytest.raises(ValueError, match="Invalid stage-1 arguments"):
        parse_stage1_arguments(["--output_dir", "x"])
    with pytest.raises(ValueError, match="Some specified arguments are not used"):
        parse_stage1_arguments(["--data", "x", "--no_such_flag", "1"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preset": "best"}, r"preset='best' is not a stage-1 preset; use one of \["),
        ({"dev_queries": -1}, "dev_queries must be 0 or more, got -1"),
        ({"max_gold": 0}, "max_gold must be a positive integer or unset, got 0"),
        ({"synthetic": "recorded:"}, "names no folder; write 'recorded:<folder>'"),
    ],
)
def test_invalid_stage1_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        Stage1Arguments(data="x", **overrides)


def test_help_lists_both_argument_families():
    text = format_help()
    assert "--data" in text and "--query_prompt" in text and "--per_device_train_batch_size" in text
