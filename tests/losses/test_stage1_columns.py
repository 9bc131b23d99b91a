"""Stage-1 recipes, presets and to_loss_columns: slot columns, presence masks, dropped rows, errors."""

from __future__ import annotations

import logging

import pytest
from datasets import Dataset

from syntriever_hf.data.schema import STAGE1_ROLES, STAGE1_TRAINING_FEATURES
from syntriever_hf.data.stage1_columns import (
    DEFAULT_STAGE1_PRESET,
    STAGE1_PRESETS,
    Stage1Recipe,
    resolve_recipe,
    slot_column_names,
    to_loss_columns,
)

EMPTY = {"gold": [], "llm_positive": None, "cot": None, "llm_negative": None, "rejected_positive": None,
         "mined_negative": []}


def _examples(*rows: dict) -> Dataset:
    return Dataset.from_list(
        [{"query_id": f"q{i}", "query": f"query {i}", **EMPTY, **row} for i, row in enumerate(rows)],
        features=STAGE1_TRAINING_FEATURES,
    )


EXAMPLES = _examples(
    {"gold": ["g0a", "g0b"], "llm_positive": "p0", "cot": "c0", "llm_negative": "n0"},
    {"gold": ["g1"], "cot": "c1", "rejected_positive": "r1", "mined_negative": ["m1a", "m1b", "m1c"]},
    {"llm_positive": "p2", "llm_negative": "n2", "mined_negative": ["m2a"]},
    {"cot": "c3", "llm_negative": "n3", "rejected_positive": "r3"},  # no gold, no verified p+
)


def test_default_preset_is_per_positive_gold_and_llm_positive_without_cot() -> None:
    default = STAGE1_PRESETS[DEFAULT_STAGE1_PRESET]
    assert default == Stage1Recipe(
        ("gold", "llm_positive"), ("llm_negative", "rejected_positive", "mined_negative"), "per_positive"
    )
    assert "cot" not in default.roles


def test_paper_and_authors_code_presets() -> None:
    paper = STAGE1_PRESETS["paper"]
    assert (set(paper.positive_roles), paper.grouping) == ({"gold", "llm_positive", "cot"}, "grouped")
    assert {"llm_negative", "rejected_positive"} <= set(paper.negative_roles)
    authors = STAGE1_PRESETS["authors-code"]
    assert authors.positive_roles == ("gold",) and authors.grouping == "per_positive"
    assert {"llm_positive", "cot", "llm_negative"} <= set(authors.negative_roles)
    assert all(name == recipe.name for name, recipe in STAGE1_PRESETS.items())


def test_per_positive_columns_masks_and_dropped_rows(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="syntriever_hf.data.stage1_columns"):
        columns, slot_roles = to_loss_columns(EXAMPLES, "per-positive")
    assert slot_roles == ("gold", "gold", "llm_positive", "llm_negative", "rejected_positive",
                          "mined_negative", "mined_negative", "mined_negative")
    assert columns.column_names == ["query", "gold_1", "gold_2", "llm_positive", "llm_negative", "rejected_positive",
                                    "mined_negative_1", "mined_negative_2", "mined_negative_3", "label"]
    assert columns.to_list() == [
        {"query": "query 0", "gold_1": "g0a", "gold_2": "g0b", "llm_positive": "p0", "llm_negative": "n0",
         "rejected_positive": "", "mined_negative_1": "", "mined_negative_2": "", "mined_negative_3": "",
         "label": [1, 1, 1, 1, 0, 0, 0, 0]},
        {"query": "query 1", "gold_1": "g1", "gold_2": "", "llm_positive": "", "llm_negative": "",
         "rejected_positive": "r1", "mined_negative_1": "m1a", "mined_negative_2": "m1b", "mined_negative_3": "m1c",
         "label": [1, 0, 0, 0, 1, 1, 1, 1]},
        {"query": "query 2", "gold_1": "", "gold_2": "", "llm_positive": "p2", "llm_negative": "n2",
         "rejected_positive": "", "mined_negative_1": "m2a", "mined_negative_2": "", "mined_negative_3": "",
         "label": [0, 0, 1, 1, 0, 1, 0, 0]},
    ]
    assert [record.getMessage() for record in caplog.records] == [
        "Dropped 1 of 4 stage-1 examples with no text for the positive roles ('gold', 'llm_positive') of recipe "
        "'per-positive'."
    ]


def test_paper_recipe_keeps_the_cot_only_row_and_caps_list_roles() -> None:
    columns, slot_roles = to_loss_columns(EXAMPLES, "paper", max_gold=1, max_mined_negatives=2)
    assert slot_roles == ("gold", "llm_positive", "cot", "llm_negative", "rejected_positive",
                          "mined_negative", "mined_negative")
    assert columns["query"] == ["query 0", "query 1", "query 2", "query 3"]  # row 3 has a CoT positive
    assert columns["gold_1"] == ["g0a", "g1", "", ""]
    assert columns["mined_negative_2"] == ["", "m1b", "", ""]
    assert columns["label"][3] == [0, 0, 1, 1, 1, 0, 0]


def test_only_the_recipes_roles_become_columns() -> None:
    recipe = Stage1Recipe(("llm_positive",), ("cot",), "grouped")
    columns, slot_roles = to_loss_columns(EXAMPLES, recipe)
    assert slot_roles == ("llm_positive", "cot")
    assert columns.column_names == ["query", "llm_positive", "cot", "label"]
    assert columns["label"] == [[1, 1], [1, 0]]


def test_blank_text_counts_as_missing() -> None:
    examples = _examples({"gold": ["  ", "g"], "llm_positive": "", "llm_negative": "\n"})
    columns, slot_roles = to_loss_columns(examples, "per-positive")
    # blank single-text roles count as missing in every row, so they get no slot; a blank gold is masked
    assert slot_roles == ("gold", "gold")
    assert columns.to_list() == [{"query": "query 0", "gold_1": "", "gold_2": "g", "label": [0, 1]}]


def test_no_usable_positive_anywhere_is_an_error() -> None:
    examples = _examples({"cot": "c", "llm_negative": "n"})
    with pytest.raises(ValueError, match=r"No stage-1 example has a text for the positive roles \('gold', "
                                         r"'llm_positive'\) of recipe 'per-positive'"):
        to_loss_columns(examples, "per-positive")
    with pytest.raises(ValueError, match=r"positive roles \('gold',\) of recipe 'gold'"):
        to_loss_columns(examples, "gold")


def test_missing_column_and_bad_caps_are_errors() -> None:
    examples = EXAMPLES.remove_columns(["cot"])
    with pytest.raises(ValueError, match=r"lack the column\(s\) \['cot'\] that recipe 'paper' needs"):
        to_loss_columns(examples, "paper")
    assert to_loss_columns(examples, "per-positive")[1][0] == "gold"  # cot is not needed there
    with pytest.raises(ValueError, match=r"max_gold must be a positive integer or None \(no cap\), got 0"):
        to_loss_columns(EXAMPLES, "paper", max_gold=0)
    with pytest.raises(ValueError, match=r"max_mined_negatives must be a positive integer .* got 1.5"):
        to_loss_columns(EXAMPLES, "paper", max_mined_negatives=1.5)


def test_recipe_validation() -> None:
    with pytest.raises(ValueError, match=r"Unknown role\(s\) \['passage'\] in positive_roles; the stage-1 roles are"):
        Stage1Recipe(("passage",))
    with pytest.raises(ValueError, match=r"Unknown role\(s\) \['negative'\] in negative_roles"):
        Stage1Recipe(("gold",), ("negative",))
    with pytest.raises(ValueError, match=r"Role\(s\) \['cot'\] appear in both positive_roles .* remove it from one"):
        Stage1Recipe(("gold", "cot"), ("cot",))
    with pytest.raises(ValueError, match=r"positive_roles is empty"):
        Stage1Recipe((), ("cot",))
    with pytest.raises(ValueError, match=r"grouping='sum' is not one of \('grouped', 'per_positive'\)"):
        Stage1Recipe(("gold",), grouping="sum")
    with pytest.raises(ValueError, match=r"Role\(s\) \['gold'\] listed more than once in positive_roles"):
        Stage1Recipe(("gold", "gold"))
    with pytest.raises(TypeError, match=r"positive_roles must be a tuple of role names, got the string 'gold'"):
        Stage1Recipe("gold")
    with pytest.raises(ValueError, match=r"Unknown stage-1 recipe 'best'; use one of the presets \['authors-code'"):
        resolve_recipe("best")


def test_recipe_is_frozen_hashable_data() -> None:
    recipe = Stage1Recipe(["cot", "gold"], ["mined_negative"], "grouped", name="mine")
    assert recipe.positive_roles == ("cot", "gold")
    assert recipe.roles == ("gold", "cot", "mined_negative")  # canonical order
    assert recipe.to_dict() == {"name": "mine", "positive_roles": ["cot", "gold"],
                                "negative_roles": ["mined_negative"], "grouping": "grouped"}
    assert resolve_recipe(recipe) is recipe
    assert hash(recipe) == hash(Stage1Recipe(("cot", "gold"), ("mined_negative",), "grouped"))
    with pytest.raises(AttributeError):
        recipe.grouping = "per_positive"  # type: ignore[misc]
    assert set(STAGE1_ROLES) >= set(recipe.roles)


def test_slot_column_names_number_list_roles() -> None:
    assert slot_column_names(("gold", "gold", "cot", "mined_negative")) == ("gold_1", "gold_2", "cot",
                                                                             "mined_negative_1")


def test_roles_missing_in_every_row_get_no_slot() -> None:
    from datasets import Dataset

    from syntriever_hf.data.schema import STAGE1_TRAINING_FEATURES
    from syntriever_hf.data.stage1_columns import to_loss_columns

    rows = [
        {"query_id": f"q{i}", "query": f"query {i}", "gold": [f"gold {i}"], "llm_positive": None, "cot": None,
         "llm_negative": None, "rejected_positive": None, "mined_negative": [f"mined {i}"]}
        for i in range(3)
    ]
    examples = Dataset.from_list(rows, features=STAGE1_TRAINING_FEATURES)
    columns, slot_roles = to_loss_columns(examples, "per-positive")
    assert slot_roles == ("gold", "mined_negative")
    assert columns.column_names == ["query", "gold_1", "mined_negative_1", "label"]
    assert columns["label"] == [[1, 1]] * 3
