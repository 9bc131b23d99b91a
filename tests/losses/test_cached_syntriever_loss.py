"""CachedSyntrieverLoss: the same loss and parameter gradients as SyntrieverLoss, computed with GradCache."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from syntriever_hf.data.schema import STAGE1_TRAINING_FEATURES
from syntriever_hf.data.stage1_columns import to_loss_columns
from syntriever_hf.losses import CachedSyntrieverLoss, SyntrieverLoss
from tests.losses.collate import collate_features

WORDS = ["cancer", "virus", "brain", "heart", "liver", "blood", "gene"]


def _examples() -> Dataset:
    """Seven queries with gold lists of 1-2 passages, some LLM positives rejected, some mined negatives."""
    return Dataset.from_list(
        [
            {
                "query_id": str(i),
                "query": f"{word} risk in patients",
                "gold": [f"{word} study evidence"] + ([f"clinical {word} trial result"] if i % 3 == 0 else []),
                "llm_positive": f"the {word} expression levels were higher" if i % 2 == 0 else None,
                "cot": f"the {word} effect is associated with treatment",
                "llm_negative": f"a {word} protein dose" if i != 4 else None,
                "rejected_positive": f"{word} cells" if i % 2 == 1 else None,
                "mined_negative": [f"reduced {word} infection"] * (i % 3),
            }
            for i, word in enumerate(WORDS)
        ],
        features=STAGE1_TRAINING_FEATURES,
    )


def _loss_and_parameter_grads(model, loss, columns) -> tuple[float, dict[str, torch.Tensor]]:
    features, labels = collate_features(model, columns)
    value = loss(features, labels)
    value.backward()
    return value.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(("recipe", "mini_batch_size"), [("per-positive", 2), ("paper", 3), ("authors-code", 1)])
def test_cached_equals_plain_in_loss_and_parameter_gradients(tiny_model_path, recipe: str, mini_batch_size: int):
    columns, slot_roles = to_loss_columns(_examples(), recipe)
    assert any(0 in row for row in columns["label"])  # the batch really has masked slots

    results = []
    for loss_class, kwargs in ((SyntrieverLoss, {}), (CachedSyntrieverLoss, {"mini_batch_size": mini_batch_size})):
        # float64 and eval mode (no dropout): the two computations must agree to rounding, not to a loose tolerance
        model = SentenceTransformer(str(tiny_model_path), device="cpu").eval().double()
        loss = loss_class(model, slot_roles, recipe=recipe, **kwargs)
        results.append(_loss_and_parameter_grads(model, loss, columns))
    (plain_value, plain_grads), (cached_value, cached_grads) = results

    assert cached_value == pytest.approx(plain_value, abs=1e-10)
    assert cached_grads.keys() == plain_grads.keys() and len(plain_grads) > 30
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, rtol=0, atol=1e-10, msg=name)
    assert any(grad.abs().max() > 1e-4 for grad in plain_grads.values())


def test_cached_loss_trains_with_the_stock_trainer(tiny_model, tmp_path) -> None:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    columns, slot_roles = to_loss_columns(_examples(), "per-positive")
    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters() if ".pooler." not in name}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=2, learning_rate=1e-2,
        use_cpu=True, report_to=[], save_strategy="no", seed=0,
    )
    loss = CachedSyntrieverLoss(tiny_model, slot_roles, mini_batch_size=2)
    result = SentenceTransformerTrainer(model=tiny_model, args=args, train_dataset=columns, loss=loss).train()
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    parameters = dict(tiny_model.named_parameters())
    assert [name for name, value in before.items() if torch.equal(parameters[name].detach(), value)] == []


def test_cached_config_checks_and_citation(tiny_model) -> None:
    loss = CachedSyntrieverLoss(tiny_model, ("gold", "llm_negative"), recipe="gold-llm-negative", mini_batch_size=8)
    assert loss.get_config_dict() == {
        **SyntrieverLoss(tiny_model, ("gold", "llm_negative"), recipe="gold-llm-negative").get_config_dict(),
        "mini_batch_size": 8,
        "mini_batch_num_tokens": None,
    }
    assert loss.citation.startswith("@inproceedings{kim-baek-2025-syntriever")
    assert loss.slot_columns == ("gold_1", "llm_negative") and loss.recipe.name == "gold-llm-negative"
    with pytest.raises(ValueError, match=r"mini_batch_size must be a positive integer, got 0"):
        CachedSyntrieverLoss(tiny_model, ("gold",), mini_batch_size=0)
    with pytest.raises(ValueError, match=r"expected 3 input columns \('query', 'gold_1', 'llm_negative'\)"):
        loss([{"input_ids": torch.ones(1, 2, dtype=torch.long)}], torch.ones(1, 2))
