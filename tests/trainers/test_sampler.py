"""NoDuplicateTextsBatchSampler: no real text twice in a batch, while empty slot placeholders do not count."""

from __future__ import annotations

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

from syntriever_hf.trainers.sampler import NoDuplicateTextsBatchSampler, row_texts


def _columns() -> Dataset:
    """12 rows in stage-1 layout; rows 0 and 1 share a gold text, rows 2 and 3 share a query-vs-slot text, and
    every odd row lacks its LLM negative ("" with mask 0)."""
    rows = []
    for index in range(12):
        rows.append({"query": f"query {index}", "gold_1": f"gold {index}",
                     "llm_negative": "" if index % 2 else f"negative {index}",
                     "label": [1, 0 if index % 2 else 1]})
    rows[1]["gold_1"] = rows[0]["gold_1"]
    rows[3]["llm_negative"], rows[3]["label"] = rows[2]["query"], [1, 1]
    return Dataset.from_list(rows)


def _rows_with_empty_slot(dataset: Dataset) -> set[int]:
    return {index for index, text in enumerate(dataset["llm_negative"]) if text == ""}


def _batches(sampler_class, dataset: Dataset, seed: int, batch_size: int = 4) -> list[list[int]]:
    sampler = sampler_class(dataset, batch_size=batch_size, drop_last=False, valid_label_columns=["label"],
                            generator=torch.Generator(), seed=seed)
    return list(sampler)


def test_rows_sharing_a_real_text_never_share_a_batch():
    dataset = _columns()
    for seed in range(25):
        batches = _batches(NoDuplicateTextsBatchSampler, dataset, seed)
        assert sorted(index for batch in batches for index in batch) == list(range(12))
        for batch in batches:
            assert not {0, 1} <= set(batch)
            assert not {2, 3} <= set(batch)
            texts = [text for index in batch for text in row_texts(dataset[index])]
            assert len(texts) == len(set(texts))


def test_rows_with_empty_slots_share_batches():
    dataset = _columns()
    empty_rows = _rows_with_empty_slot(dataset)
    shared = [len(set(batch) & empty_rows) for seed in range(10)
              for batch in _batches(NoDuplicateTextsBatchSampler, dataset, seed)]
    assert max(shared) >= 2
    assert all(len(batch) == 4 for batch in _batches(NoDuplicateTextsBatchSampler, dataset, 0))


def test_the_stock_sampler_splits_batches_over_empty_slots():
    # The reason this sampler exists: upstream treats every "" as the same text, so rows with an empty slot
    # can never meet, and batches come out short.
    dataset = _columns()
    empty_rows = _rows_with_empty_slot(dataset)
    batches = _batches(NoDuplicatesBatchSampler, dataset, 0)
    assert all(len(set(batch) & empty_rows) <= 1 for batch in batches)
    assert min(len(batch) for batch in batches) == 1


def test_row_texts_ignores_blanks_labels_and_non_strings():
    row = {"query": "q", "gold_1": "  ", "mined": ["a", "", "b"], "label": [1, 0], "dataset_name": "x"}
    assert row_texts(row) == {"q", "a", "b"}
