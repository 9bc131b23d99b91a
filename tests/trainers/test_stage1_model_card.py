"""The stage-1 model card: filled from the run's objects, rendered with StrictUndefined, never holding a secret."""

from __future__ import annotations

import pytest
import yaml

from syntriever_hf.citation import SYNTRIEVER_CITATION
from syntriever_hf.hub.model_card import (
    non_default_arguments,
    render_stage1_model_card,
    stage1_card_data,
    without_local_folders,
)
from syntriever_hf.losses import CachedSyntrieverLoss
from syntriever_hf.trainers.stage1_arguments import Stage1Arguments, Stage1TrainingArguments

SECRET = "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"


@pytest.fixture
def card_objects(tiny_model, tmp_path):
    tiny_model.prompts = {"query": "query: ", "document": "passage: "}
    loss = CachedSyntrieverLoss(tiny_model, ("gold", "llm_positive", "mined_negative"), recipe="per-positive",
                                mini_batch_size=8)
    args = Stage1Arguments(data="BeIR/scifact", model_name_or_path="intfloat/e5-base-v2", cached=True,
                           num_mined_negatives=2, license="mit")
    training = Stage1TrainingArguments(output_dir=str(tmp_path / "run"), hub_token=SECRET, num_train_epochs=10,
                                       use_cpu=True, hub_model_id="my-org/syntriever-scifact")
    return tiny_model, loss, args, training


def _card(card_objects, **overrides):
    model, loss, args, training = card_objects
    values = {"model": model, "loss": loss, "stage1_args": args, "training_args": training,
              "dataset_name": "scifact", "statistics": {"queries": 809, "gold": 919},
              "evaluation": [{"dataset": "scifact", "split": "test", "metric": "nDCG@10", "value": 0.71234}]}
    return stage1_card_data(**{**values, **overrides})


def test_card_is_rendered_from_the_objects(card_objects):
    text = render_stage1_model_card(_card(card_objects))
    front_matter = yaml.safe_load(text.split("---")[1])
    assert front_matter == {
        "library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity",
        "tags": ["sentence-transformers", "sentence-similarity", "feature-extraction", "dense-retrieval",
                 "syntriever"],
        "base_model": "intfloat/e5-base-v2", "datasets": ["BeIR/scifact"], "license": "mit",
    }
    assert "# my-org/syntriever-scifact" in text
    assert 'SentenceTransformer("my-org/syntriever-scifact")' in text
    assert "model.encode_query(queries)" in text and "model.encode_document(documents)" in text
    assert "`CachedSyntrieverLoss` with the recipe `per-positive`" in text
    assert '"mini_batch_size": 8' in text  # the loss's get_config_dict
    assert SYNTRIEVER_CITATION.strip() in text  # the loss's citation
    assert "| scifact | test | nDCG@10 | 0.7123 |" in text
    assert "| queries | 809 |" in text
    assert "| num_train_epochs | 10 |" in text and "| cached | true |" in text
    assert "| learning_rate |" not in text  # a default value is not listed


def test_no_token_reaches_the_card(card_objects):
    data = _card(card_objects)
    assert "hub_token" not in data.training_arguments
    text = render_stage1_model_card(data)
    assert SECRET not in text and "HUB_TOKEN" not in text and "hub_token" not in text


def test_a_secret_anywhere_in_the_card_is_refused(card_objects):
    with pytest.raises(ValueError, match="contains the value of a credential argument"):
        render_stage1_model_card(_card(card_objects, dataset_name=f"scifact {SECRET}"))


def test_card_without_prompts_or_evaluation(card_objects):
    model = card_objects[0]
    model.prompts = {"query": "", "document": ""}  # what a model saved without prompts reloads with
    text = render_stage1_model_card(_card(card_objects, evaluation=[]))
    assert "| Query prompt | (none) |" in text and "| Document prompt | (none) |" in text
    assert "No evaluation was run." in text


def test_non_default_arguments_skip_secrets_and_local_paths(tmp_path):
    training = Stage1TrainingArguments(output_dir=str(tmp_path), hub_token=SECRET, seed=7, use_cpu=True)
    default = Stage1TrainingArguments(output_dir="elsewhere", use_cpu=True)
    assert non_default_arguments(training, default) == {"seed": 7}


def test_local_folders_are_cut_to_their_names(card_objects, tmp_path):
    model, loss, _, training = card_objects
    base = tmp_path / "home" / "alice" / "models" / "minilm"
    base.mkdir(parents=True)
    args = Stage1Arguments(data=str(tmp_path / "home" / "alice" / "beir" / "scifact"), model_name_or_path=str(base),
                           synthetic=f"recorded:{tmp_path}/home/alice/synthetic/scifact/")
    data = _card((model, loss, args, training))
    text = render_stage1_model_card(data)
    assert "alice" not in text and str(tmp_path) not in text
    assert data.base_model == "minilm" and not data.base_model_on_hub
    assert data.arguments["data"] == "scifact" and data.arguments["synthetic"] == "recorded:scifact"


@pytest.mark.parametrize("value", ["BeIR/scifact", "data/scifact", "https://example.org/a/b", 3, None])
def test_hub_ids_relative_paths_and_urls_are_kept(value):
    assert without_local_folders(value) == value
