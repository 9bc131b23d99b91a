"""Stage-1 training end to end on a tiny model and a tiny BEIR folder: parameters, prompts, precision, the dev set,
the best checkpoint, resuming, and the errors of the trainer."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from syntriever_hf.data import load_beir
from syntriever_hf.data.schema import STAGE1_SYNTHETIC_FEATURES
from syntriever_hf.data.stage1 import build_stage1_examples
from syntriever_hf.data.stage1_columns import to_loss_columns
from syntriever_hf.losses import SyntrieverLoss
from syntriever_hf.trainers.stage1 import (
    Stage1Trainer,
    best_metric_key,
    dev_split,
    load_stage1_synthetic,
    train_stage1,
)
from tests.trainers.conftest import fast_stage1_args, fast_training_args
from tests.trainers.tiny_data import TRAIN_QUERIES

#: BERT's pooler is not used by mean pooling, so no gradient reaches it: the only weights allowed to stay put.
UNUSED_BY_MEAN_POOLING = {"pooler.dense.weight", "pooler.dense.bias"}


def _weights(model_folder: Path) -> dict[str, torch.Tensor]:
    files = list(model_folder.rglob("model.safetensors"))
    assert len(files) == 1, files
    return load_file(str(files[0]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_path, tiny_beir_dir, tiny_recording_dir) -> Path:
    """One short run with recorded synthetic data, mined negatives and the e5 prompts."""
    output = tmp_path_factory.mktemp("stage1-run") / "model"
    args = fast_stage1_args(tiny_model_path, tiny_beir_dir, synthetic=f"recorded:{tiny_recording_dir}",
                            num_mined_negatives=1, query_prompt="query: ", document_prompt="passage: ")
    assert train_stage1(args, fast_training_args(output)) == output
    return output


def test_every_used_parameter_changed(trained, tiny_model_path):
    before, after = _weights(tiny_model_path), _weights(trained)
    assert before.keys() == after.keys()
    unchanged = {name for name in before if torch.equal(before[name], after[name])}
    assert unchanged == UNUSED_BY_MEAN_POOLING


def test_saved_model_reloads_with_its_prompts(trained):
    model = SentenceTransformer(str(trained), device="cpu")  # stock loading, nothing of ours
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    text = "cancer risk in patients"
    assert torch.allclose(model.encode_query([text], convert_to_tensor=True),
                          model.encode([f"query: {text}"], convert_to_tensor=True), atol=1e-6)
    assert torch.allclose(model.encode_document([text], convert_to_tensor=True),
                          model.encode([f"passage: {text}"], convert_to_tensor=True), atol=1e-6)
    assert not torch.allclose(model.encode_query([text], convert_to_tensor=True),
                              model.encode([text], convert_to_tensor=True), atol=1e-4)


def test_model_card_states_the_run(trained):
    card = (trained / "README.md").read_text(encoding="utf-8")
    front_matter = yaml.safe_load(card.split("---")[1])
    assert front_matter["library_name"] == "sentence-transformers"
    assert front_matter["pipeline_tag"] == "sentence-similarity"
    assert "base_model" not in front_matter  # a local folder is not a Hub id
    assert "`SyntrieverLoss` with the recipe `per-positive`" in card
    assert "| rejected_positive | 7 |" in card  # every fifth recorded positive was rejected
    assert f"| queries | {TRAIN_QUERIES} |" in card
    assert f"| mined_negative | {TRAIN_QUERIES} |" in card
    assert "| max_steps | 3 |" in card
    assert "| Query prompt | `query: ` |" in card


def test_bf16_on_cpu_trains(tiny_model, tiny_beir_dir, tmp_path):
    columns, slot_roles = to_loss_columns(build_stage1_examples(load_beir(tiny_beir_dir)), "gold")
    before = {name: value.clone() for name, value in tiny_model.state_dict().items()}
    trainer = Stage1Trainer(model=tiny_model, args=fast_training_args(tmp_path, bf16=True), train_dataset=columns,
                            loss=SyntrieverLoss(tiny_model, slot_roles, recipe="gold"))
    result = trainer.train()
    assert trainer.accelerator.mixed_precision == "bf16"
    assert math.isfinite(result.training_loss)
    assert all(param.dtype == torch.float32 for param in tiny_model.parameters())  # fp32 master weights
    unchanged = {name for name, value in tiny_model.state_dict().items() if torch.equal(before[name], value)}
    assert {name.removeprefix("0.model.") for name in unchanged} == UNUSED_BY_MEAN_POOLING
    # The extra training metrics: every 4th tiny query has a second gold passage, so some gold_2 slots are empty.
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3
    assert all(0.5 <= entry["filled_slots"] <= 1 and 1 <= entry["positives_per_query"] <= 2 for entry in logged)
    assert any(entry["filled_slots"] < 1 for entry in logged)


def test_best_checkpoint_is_chosen_by_dev_ndcg(tiny_model_path, tiny_beir_dir, tmp_path):
    output = tmp_path / "model"
    args = fast_stage1_args(tiny_model_path, tiny_beir_dir, dev_queries=6, dev_corpus_size=None)
    training = fast_training_args(output, max_steps=4, eval_strategy="steps", eval_steps=1, save_strategy="steps",
                                  save_steps=1, load_best_model_at_end=True)
    train_stage1(args, training)
    state = json.loads((output / "checkpoint-4" / "trainer_state.json").read_text())
    key = "eval_dev_cosine_ndcg@10"
    scores = {entry["step"]: entry[key] for entry in state["log_history"] if key in entry}
    assert sorted(scores) == [1, 2, 3, 4]
    assert state["best_metric"] == max(scores.values())
    best_step = max(scores, key=lambda step: (scores[step], -step))
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    # The saved model is the best checkpoint: it scores the best dev nDCG@10 again (not the last step's).
    dev = dev_split(load_beir(tiny_beir_dir), 6, seed=training.seed)
    saved = SentenceTransformer(str(output), device="cpu")
    rescored = dev.evaluator(similarity_fn_name=saved.similarity_fn_name)(saved)["dev_cosine_ndcg@10"]
    assert rescored == pytest.approx(state["best_metric"], abs=1e-5)
    card = (output / "README.md").read_text(encoding="utf-8")
    assert f"| {key} | {state['best_metric']:.4f} |" in card
    assert f"| queries | {TRAIN_QUERIES - 6} |" in card  # the dev queries were not trained on


class _StepCounter(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_resume_from_the_last_checkpoint(tiny_model_path, tiny_beir_dir, tmp_path, caplog):
    args = fast_stage1_args(tiny_model_path, tiny_beir_dir)  # the default preset, without synthetic data
    first, second = _StepCounter(), _StepCounter()
    with caplog.at_level(logging.WARNING, logger="syntriever_hf.trainers.stage1"):
        train_stage1(args, fast_training_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2),
                     callbacks=[first])
    assert "uses the LLM roles ['llm_positive', 'llm_negative', 'rejected_positive'] but --synthetic is unset" \
        in caplog.text
    train_stage1(args, fast_training_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=2,
                                          resume_from_checkpoint="last"), callbacks=[second])
    assert first.steps == [1, 2]
    assert second.steps == [3, 4]  # continued from checkpoint-2, not from scratch
    state = json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]


def test_dev_queries_zero_with_evaluation_on_is_refused(tiny_model_path, tiny_beir_dir, tmp_path):
    with pytest.raises(ValueError, match="dev_queries=0 leaves nothing to evaluate, but eval_strategy='epoch'"):
        train_stage1(fast_stage1_args(tiny_model_path, tiny_beir_dir),
                     fast_training_args(tmp_path, eval_strategy="epoch", save_strategy="epoch"))


def test_a_dev_set_without_evaluation_is_refused(tiny_model_path, tiny_beir_dir, tmp_path):
    with pytest.raises(ValueError, match="dev_queries=5 holds out training queries, but eval_strategy='no'"):
        train_stage1(fast_stage1_args(tiny_model_path, tiny_beir_dir, dev_queries=5), fast_training_args(tmp_path))


def test_cached_loss_trains_every_used_parameter(tiny_model_path, tiny_beir_dir, tmp_path):
    args = fast_stage1_args(tiny_model_path, tiny_beir_dir, preset="gold", cached=True, mini_batch_size=2)
    train_stage1(args, fast_training_args(tmp_path))
    before, after = _weights(tiny_model_path), _weights(tmp_path)
    assert {name for name in before if torch.equal(before[name], after[name])} == UNUSED_BY_MEAN_POOLING
    assert "`CachedSyntrieverLoss` with the recipe `gold`" in (tmp_path / "README.md").read_text(encoding="utf-8")


def test_training_prompts_belong_to_stage1_arguments(tiny_model_path, tiny_beir_dir, tmp_path):
    with pytest.raises(ValueError, match="use --query_prompt and --document_prompt"):
        train_stage1(fast_stage1_args(tiny_model_path, tiny_beir_dir),
                     fast_training_args(tmp_path, prompts={"query": "q: "}))


def test_trainer_refuses_columns_that_do_not_match_the_loss(tiny_model, tiny_beir_dir, tmp_path):
    columns, slot_roles = to_loss_columns(build_stage1_examples(load_beir(tiny_beir_dir)), "gold")
    loss = SyntrieverLoss(tiny_model, slot_roles, recipe="gold")
    with pytest.raises(ValueError, match=r"train_dataset has the columns \['gold_1', 'query'"):
        Stage1Trainer(model=tiny_model, args=fast_training_args(tmp_path), loss=loss,
                      train_dataset=columns.select_columns(["gold_1", "query", "gold_2", "label"]))
    with pytest.raises(ValueError, match="Stage1Trainer needs a loss"):
        Stage1Trainer(model=tiny_model, args=fast_training_args(tmp_path), train_dataset=columns)


def test_best_metric_key_of_a_dev_evaluator(tiny_beir_dir):
    evaluator = dev_split(load_beir(tiny_beir_dir), 4).evaluator(name="dev", similarity_fn_name="dot")
    assert best_metric_key(evaluator) == "eval_dev_dot_ndcg@10"
    with pytest.raises(ValueError, match="Cannot tell the nDCG key of a str"):
        best_metric_key("not an evaluator")


def test_dev_split_holds_out_seeded_training_queries(tiny_beir_dir):
    beir = load_beir(tiny_beir_dir)
    first, again, other = (dev_split(beir, 5, seed=seed, corpus_size=20) for seed in (1, 1, 2))
    assert first == again and first.query_ids != other.query_ids
    assert first.query_ids <= set(beir.training_queries("train")["id"])
    assert not first.query_ids & beir.evaluation_query_ids()
    positives = set().union(*first.relevant_docs.values())
    assert positives <= set(first.corpus) and len(first.corpus) == 20
    assert first.corpus == {doc_id: beir.corpus_texts()[doc_id] for doc_id in first.corpus}
    assert len(dev_split(beir, 5).corpus) == len(beir.corpus)


def test_dev_split_errors(tiny_beir_dir):
    beir = load_beir(tiny_beir_dir)
    with pytest.raises(ValueError, match=f"dev_queries={TRAIN_QUERIES} but .* hold out between 1 and "
                                         f"{TRAIN_QUERIES - 1}"):
        dev_split(beir, TRAIN_QUERIES)
    with pytest.raises(ValueError, match=r"dev_corpus_size=2 is smaller than the .* positives"):
        dev_split(beir, 5, corpus_size=2)


def test_synthetic_from_a_saved_folder(tiny_beir_dir, tmp_path):
    beir = load_beir(tiny_beir_dir)
    row = {"query_id": "q1", "query": beir.query_texts()["q1"], "gold_ids": ["d1"], "llm_positive": "p",
           "llm_positive_verdict": "yes", "llm_negative": "n", "llm_negative_verdict": "no", "cot": "c",
           "failures": []}
    Dataset.from_list([row], features=STAGE1_SYNTHETIC_FEATURES).save_to_disk(str(tmp_path / "synthetic"))
    loaded = load_stage1_synthetic(str(tmp_path / "synthetic"), beir)
    assert loaded.to_list() == [row]
    assert load_stage1_synthetic(None, beir) is None
    with pytest.raises(FileNotFoundError, match=r"no such folder\. Pass a folder written by Dataset\.save_to_disk"):
        load_stage1_synthetic(str(tmp_path / "absent"), beir)
