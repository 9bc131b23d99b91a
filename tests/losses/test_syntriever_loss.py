"""SyntrieverLoss: reduction to InfoNCE, hand-computed values, masking, checks and a short training run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from syntriever_hf.citation import SYNTRIEVER_CITATION
from syntriever_hf.data.schema import STAGE1_TRAINING_FEATURES
from syntriever_hf.data.stage1_columns import Stage1Recipe, to_loss_columns
from syntriever_hf.losses import SyntrieverLoss
from syntriever_hf.losses.syntriever import embed_present_slots
from tests.losses.collate import collate_features

GROUPED = Stage1Recipe(("gold", "llm_positive"), ("llm_negative",), "grouped")
PER_POSITIVE = Stage1Recipe(("gold", "llm_positive"), ("llm_negative",), "per_positive")


def _leaf(rows: list, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype, requires_grad=True)


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.clone().requires_grad_()


def _loss_and_grads(loss: SyntrieverLoss, query, slots, mask) -> tuple[float, list[torch.Tensor]]:
    value = loss.compute_loss_from_embeddings(query, slots, mask)
    grads = torch.autograd.grad(value, [query, slots])
    return value.item(), list(grads)


# ---------------------------------------------------------------- equivalence with MultipleNegativesRankingLoss


@pytest.mark.parametrize("recipe", ["per-positive", "grouped", "paper", "authors-code"])
def test_one_positive_no_negative_equals_mnrl_in_value_and_gradients(recipe: str) -> None:
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(6, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    positive = torch.randn(6, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    mnrl = MultipleNegativesRankingLoss(model=None, scale=20.0)
    expected = mnrl.compute_loss_from_embeddings([query, positive], None)
    expected_grads = torch.autograd.grad(expected, [query, positive])

    ours = SyntrieverLoss(None, ("gold",), recipe=recipe, scale=20.0)
    value = ours.compute_loss_from_embeddings(query, positive[:, None, :], torch.ones(6, 1, dtype=torch.long))
    grads = torch.autograd.grad(value, [query, positive])

    assert value.item() == pytest.approx(expected.item(), abs=1e-6)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-6)


def test_one_positive_and_one_negative_each_equals_mnrl_triplets() -> None:
    generator = torch.Generator().manual_seed(2)
    query, positive, negative = (
        torch.randn(5, 8, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(3)
    )
    expected = MultipleNegativesRankingLoss(model=None).compute_loss_from_embeddings([query, positive, negative], None)
    expected_grads = torch.autograd.grad(expected, [query, positive, negative])

    ours = SyntrieverLoss(None, ("gold", "llm_negative"), recipe=PER_POSITIVE)
    value = ours.compute_loss_from_embeddings(
        query, torch.stack([positive, negative], dim=1), torch.ones(5, 2, dtype=torch.long)
    )
    grads = torch.autograd.grad(value, [query, positive, negative])

    assert value.item() == pytest.approx(expected.item(), abs=1e-6)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-6)


def test_equals_mnrl_through_the_model_in_parameter_gradients(tiny_model_path) -> None:
    texts = {
        "query": ["cancer risk in patients", "virus infection of cells", "blood dose response", "brain tumor"],
        "gold_1": ["tumor evidence in a study", "infection result", "clinical trial dose", "brain expression"],
    }
    gradients = []
    values = []
    for make_loss in (
        lambda model: MultipleNegativesRankingLoss(model),
        lambda model: SyntrieverLoss(model, ("gold",), recipe="per-positive"),
    ):
        # float64, so that float32 rounding (about 1e-6 on gradients of order 1) cannot hide or fake a difference
        model = SentenceTransformer(str(tiny_model_path), device="cpu").eval().double()
        features, labels = collate_features(model, Dataset.from_dict({**texts, "label": [[1]] * 4}))
        value = make_loss(model)(features, labels)
        value.backward()
        values.append(value.item())
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert values[1] == pytest.approx(values[0], abs=1e-6)
    assert gradients[0].keys() == gradients[1].keys() and len(gradients[0]) > 10
    for name, grad in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], grad, rtol=0, atol=1e-6, msg=name)


# ---------------------------------------------------------------- hand computations on small fixed vectors
# Queries q1 = (1, 0), q2 = (0, 1); unit slot vectors, so every cosine is a dot product read off by eye.
# Slots: (gold, gold, llm_positive, llm_negative); row 2 has no second gold and no llm_negative (masked).
# Masked slots hold arbitrary vectors that must not matter.
QUERIES = [[1.0, 0.0], [0.0, 1.0]]
SLOTS = [
    [[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [-1.0, 0.0]],
    [[0.0, 1.0], [3.0, -7.0], [-0.6, 0.8], [0.5, 0.5]],
]
MASK = [[1, 1, 1, 1], [1, 0, 1, 0]]
ROLES = ("gold", "gold", "llm_positive", "llm_negative")
SCALE = 2.0
# cos(q1, .): row 1: 1, .6, .8, -1; row 2: 0, -, -.6, -.      cos(q2, .): row 1: 0, .8, .6, 0; row 2: 1, -, .8, -


def _lse(*scores: float) -> float:
    return math.log(sum(math.exp(score) for score in scores))


def test_grouped_two_queries_matches_hand_computation() -> None:
    s = SCALE
    # q1: positives {gold_1, gold_2, llm_positive} of row 1; C = the 6 present slots of both rows.
    loss_1 = -_lse(s * 1, s * 0.6, s * 0.8) + _lse(s * 1, s * 0.6, s * 0.8, s * -1, s * 0, s * -0.6)
    # q2: positives {gold_1, llm_positive} of row 2.
    loss_2 = -_lse(s * 1, s * 0.8) + _lse(s * 0, s * 0.8, s * 0.6, s * 0, s * 1, s * 0.8)
    expected = (loss_1 + loss_2) / 2

    loss = SyntrieverLoss(None, ROLES, recipe=GROUPED, scale=SCALE)
    value = loss.compute_loss_from_embeddings(_leaf(QUERIES), _leaf(SLOTS), torch.tensor(MASK))
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_per_positive_two_queries_matches_hand_computation() -> None:
    s = SCALE
    # Each positive p competes with p itself plus C minus the query's own positives.
    rest_1 = [s * -1, s * 0, s * -0.6]  # q1: its llm_negative, then row 2's gold_1 and llm_positive
    loss_1 = sum(-p + _lse(p, *rest_1) for p in (s * 1, s * 0.6, s * 0.8)) / 3
    rest_2 = [s * 0, s * 0.8, s * 0.6, s * 0]  # q2: all four slots of row 1
    loss_2 = sum(-p + _lse(p, *rest_2) for p in (s * 1, s * 0.8)) / 2
    expected = (loss_1 + loss_2) / 2

    loss = SyntrieverLoss(None, ROLES, recipe=PER_POSITIVE, scale=SCALE)
    value = loss.compute_loss_from_embeddings(_leaf(QUERIES), _leaf(SLOTS), torch.tensor(MASK))
    assert value.item() == pytest.approx(expected, abs=1e-12)
    grouped = SyntrieverLoss(None, ROLES, recipe=GROUPED, scale=SCALE)
    assert value.item() != pytest.approx(grouped.compute_loss_from_embeddings(
        _leaf(QUERIES), _leaf(SLOTS), torch.tensor(MASK)).item(), abs=1e-3)


def test_paper_preset_matches_the_grouped_formula_by_hand() -> None:
    # Slots (gold, llm_positive, cot, llm_negative, rejected_positive). Paper: P = {gold, p+, CoT} in one
    # log-sum-exp; p- and the rejected p+ are negatives. Row 2's p+ was rejected (llm_positive masked).
    roles = ("gold", "llm_positive", "cot", "llm_negative", "rejected_positive")
    slots = [
        [[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, -1.0], [9.0, 9.0]],
        [[0.0, 1.0], [1.0, 1.0], [0.8, 0.6], [-0.6, -0.8], [-1.0, 0.0]],
    ]
    mask = [[1, 1, 1, 1, 0], [1, 0, 1, 1, 1]]
    s = 20.0  # the paper's tau = 0.05
    # cos(q1, .): row 1: 1, .8, .6, 0, -;   row 2: 0, -, .8, -.6, -1
    # cos(q2, .): row 1: 0, .6, .8, -1, -;  row 2: 1, -, .6, -.8, 0
    candidates_1 = [s * 1, s * 0.8, s * 0.6, s * 0, s * 0, s * 0.8, s * -0.6, s * -1]
    candidates_2 = [s * 0, s * 0.6, s * 0.8, s * -1, s * 1, s * 0.6, s * -0.8, s * 0]
    loss_1 = -_lse(s * 1, s * 0.8, s * 0.6) + _lse(*candidates_1)
    loss_2 = -_lse(s * 1, s * 0.6) + _lse(*candidates_2)
    expected = (loss_1 + loss_2) / 2

    loss = SyntrieverLoss(None, roles, recipe="paper")
    assert loss.scale == 20.0
    value = loss.compute_loss_from_embeddings(_leaf(QUERIES), _leaf(slots), torch.tensor(mask))
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_query_without_a_present_positive_contributes_nothing() -> None:
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 1]])  # row 2: only its llm_negative is present
    s = SCALE
    expected = -_lse(s * 1, s * 0.6, s * 0.8) + _lse(s * 1, s * 0.6, s * 0.8, s * -1, s * 0.5 / math.sqrt(0.5))
    loss = SyntrieverLoss(None, ROLES, recipe=GROUPED, scale=SCALE)
    query = _leaf(QUERIES)
    value = loss.compute_loss_from_embeddings(query, _leaf(SLOTS), mask)
    assert value.item() == pytest.approx(expected, abs=1e-12)
    (query_grad,) = torch.autograd.grad(value, [query])
    assert torch.isfinite(query_grad).all() and torch.count_nonzero(query_grad[1]) == 0


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("recipe", [GROUPED, PER_POSITIVE])
def test_masked_slot_changes_neither_loss_nor_gradient(recipe: Stage1Recipe) -> None:
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(3, 8, generator=generator, dtype=torch.float64)
    slots = torch.randn(3, 4, 8, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 0]])
    loss = SyntrieverLoss(None, ROLES, recipe=recipe)

    value, (query_grad, slot_grad) = _loss_and_grads(loss, _copy(query), _copy(slots), mask)
    changed = slots.clone()
    changed[mask == 0] = torch.randn(3, 8, generator=generator, dtype=torch.float64) * 5
    other_value, (other_query_grad, other_slot_grad) = _loss_and_grads(
        loss, _copy(query), _copy(changed), mask
    )
    assert other_value == pytest.approx(value, abs=1e-12)
    torch.testing.assert_close(other_query_grad, query_grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(other_slot_grad, slot_grad, rtol=0, atol=1e-12)
    assert torch.count_nonzero(slot_grad[mask == 0]) == 0
    assert torch.count_nonzero(slot_grad[mask == 1]) == int(mask.sum()) * 8

    # A slot masked in every row is the same as no such column at all.
    mask[:, 3] = 0
    value, (query_grad, slot_grad) = _loss_and_grads(loss, _copy(query), _copy(slots), mask)
    without = SyntrieverLoss(None, ROLES[:3], recipe=recipe)
    other_value, (other_query_grad, other_slot_grad) = _loss_and_grads(
        without, _copy(query), _copy(slots[:, :3]), mask[:, :3]
    )
    assert other_value == pytest.approx(value, abs=1e-12)
    torch.testing.assert_close(other_query_grad, query_grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(other_slot_grad, slot_grad[:, :3], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- embedding only the present slots


def test_embed_present_slots_embeds_only_present_texts_and_zeros_the_rest(tiny_model) -> None:
    columns = Dataset.from_dict({
        "gold_1": ["cancer study evidence", "virus infection result", "brain"],
        "gold_2": ["", "clinical trial of the heart and liver with a long text", ""],
        "llm_negative": ["blood dose", "", "gene expression levels"],
        "label": [[1, 0, 1], [1, 1, 0], [1, 0, 1]],
    })
    features, labels = collate_features(tiny_model, columns)
    shapes = []
    handle = tiny_model[0].register_forward_pre_hook(lambda module, args: shapes.append(args[0]["input_ids"].shape))
    try:
        with torch.no_grad():
            slot_emb = embed_present_slots(tiny_model, features, labels)
    finally:
        handle.remove()
    present_texts = [(row, slot, columns[name][row]) for slot, name in enumerate(["gold_1", "gold_2", "llm_negative"])
                     for row in range(3) if labels[row, slot]]
    assert len(shapes) == 1 and shapes[0][0] == len(present_texts) == 6  # one forward, present rows only
    assert slot_emb.shape == (3, 3, 32)
    expected = tiny_model.encode([text for _, _, text in present_texts], convert_to_tensor=True)
    for (row, slot, _), embedding in zip(present_texts, expected, strict=True):
        torch.testing.assert_close(slot_emb[row, slot], embedding, rtol=0, atol=1e-5)
    assert torch.count_nonzero(slot_emb[labels == 0]) == 0

    # Columns that cannot be merged into one forward pass are embedded one by one, all rows, to the same values.
    features[1] = {key: value for key, value in features[1].items() if key != "token_type_ids"}
    with torch.no_grad():
        unmerged = embed_present_slots(tiny_model, features, labels)
    torch.testing.assert_close(unmerged[labels == 1], slot_emb[labels == 1], rtol=0, atol=1e-5)


# ---------------------------------------------------------------- checks and configuration


def test_forward_refuses_a_wrong_number_of_columns(tiny_model) -> None:
    loss = SyntrieverLoss(tiny_model, ("gold", "llm_positive", "llm_negative"), recipe=PER_POSITIVE)
    features, labels = collate_features(tiny_model, Dataset.from_dict({"query": ["a"], "gold_1": ["b"], "label": [[1]]}))
    with pytest.raises(ValueError, match=r"expected 4 input columns \('query', 'gold_1', 'llm_positive', "
                                         r"'llm_negative'\) \(then the 'label' mask\), got 2\. .*to_loss_columns"):
        loss(features, labels)


def test_forward_refuses_missing_or_misshapen_labels(tiny_model) -> None:
    loss = SyntrieverLoss(tiny_model, ("gold", "llm_negative"), recipe=PER_POSITIVE)
    data = Dataset.from_dict(
        {"query": ["a", "b"], "gold_1": ["c", "d"], "llm_negative": ["e", ""], "label": [[1, 1], [1, 0]]}
    )
    features, labels = collate_features(tiny_model, data)
    with pytest.raises(ValueError, match=r"needs the presence mask as labels: a 'label' column .*"
                                         r"\('gold_1', 'llm_negative'\)"):
        loss(features, None)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, slots=2\), one 0/1 per slot column .*got \(2, 1\)"):
        loss(features, labels[:, :1])
    with pytest.raises(ValueError, match=r"mask must hold only 0 and 1, got values \[0, 1, 2\]"):
        loss(features, torch.tensor([[1, 2], [1, 0]]))


def test_constructor_refuses_roles_the_recipe_does_not_use() -> None:
    with pytest.raises(ValueError, match=r"slot_roles\[1\]='cot' is neither a positive nor a negative role of recipe "
                                         r"'per-positive'"):
        SyntrieverLoss(None, ("gold", "cot"), recipe="per-positive")
    with pytest.raises(ValueError, match=r"slot_roles\[0\]='passage' is not a stage-1 role"):
        SyntrieverLoss(None, ("passage",))
    with pytest.raises(ValueError, match=r"None of slot_roles \('llm_negative',\) is a positive role"):
        SyntrieverLoss(None, ("llm_negative",))
    with pytest.raises(ValueError, match=r"Unknown stage-1 recipe 'papr'"):
        SyntrieverLoss(None, ("gold",), recipe="papr")
    with pytest.raises(ValueError, match=r"scale must be positive .* got 0"):
        SyntrieverLoss(None, ("gold",), scale=0)


def test_config_and_citation() -> None:
    loss = SyntrieverLoss(None, ("gold", "gold", "llm_positive"), recipe="grouped", scale=10.0)
    config = loss.get_config_dict()
    assert json.loads(json.dumps(config)) == {
        "recipe": {"name": "grouped", "positive_roles": ["gold", "llm_positive"],
                   "negative_roles": ["llm_negative", "rejected_positive", "mined_negative"], "grouping": "grouped"},
        "slot_roles": ["gold", "gold", "llm_positive"],
        "scale": 10.0,
        "gather_across_devices": False,
    }
    assert loss.citation == SYNTRIEVER_CITATION
    assert "@inproceedings{kim-baek-2025-syntriever" in loss.citation and "2502.03824" in loss.citation
    assert loss.slot_columns == ("gold_1", "gold_2", "llm_positive")
    assert loss.temperature == pytest.approx(0.1)


# ---------------------------------------------------------------- the stock trainer


def test_trains_with_the_stock_trainer_on_to_loss_columns(tiny_model, tmp_path) -> None:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    examples = Dataset.from_list(
        [
            {"query_id": str(i), "query": f"query {word} risk", "gold": [f"{word} passage evidence"],
             "llm_positive": f"relevant {word} result" if i % 2 else None, "cot": None,
             "llm_negative": f"the {word} trial", "rejected_positive": None if i % 2 else f"a {word} dose",
             "mined_negative": []}
            for i, word in enumerate(["cancer", "virus", "brain", "heart", "liver", "blood", "gene", "mice"])
        ],
        features=STAGE1_TRAINING_FEATURES,
    )
    train_dataset, slot_roles = to_loss_columns(examples, "per-positive")
    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters()}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=2, learning_rate=1e-2,
        use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, seed=0,
    )
    trainer = SentenceTransformerTrainer(
        model=tiny_model, args=args, train_dataset=train_dataset, loss=SyntrieverLoss(tiny_model, slot_roles)
    )
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    # BERT's pooler head is not part of a mean-pooling sentence-transformer, so it never gets a gradient.
    trained = {name: p for name, p in tiny_model.named_parameters() if ".pooler." not in name}
    unchanged = [name for name, p in trained.items() if torch.equal(p.detach(), before[name])]
    assert len(trained) > 30 and unchanged == []

