"""A no-duplicates batch sampler for stage-1 columns: the ``""`` of a masked slot is not a text.

sentence-transformers' :class:`~sentence_transformers.base.sampler.NoDuplicatesBatchSampler` keeps every value of a
row out of the other rows of its batch. Stage-1 columns (:func:`syntriever_hf.data.stage1_columns.to_loss_columns`)
write ``""`` into the slots a query lacks, so under the stock sampler two rows that both miss, say, an LLM negative
"share" the text ``""`` and are pushed into different batches, which splits batches for no reason. This sampler
compares only real (non-blank) texts; the label column (the presence mask) is ignored as upstream does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

__all__ = ["NoDuplicateTextsBatchSampler", "row_texts"]

logger = logging.getLogger(__name__)

#: Columns that never hold training texts (sentence-transformers adds ``dataset_name`` for multi-dataset training).
_NON_TEXT_COLUMNS = frozenset({"dataset_name"})


def row_texts(row: dict[str, Any]) -> set[str]:
    """The non-blank texts of one dataset row (strings, or strings inside list columns); other values are ignored."""
    texts: set[str] = set()
    for column, value in row.items():
        if column in _NON_TEXT_COLUMNS:
            continue
        values = value if isinstance(value, list | tuple) else (value,)
        texts.update(text for text in values if isinstance(text, str) and text.strip())
    return texts


class NoDuplicateTextsBatchSampler(NoDuplicatesBatchSampler):
    """Batches in which no real text occurs twice (across all columns); empty slot placeholders do not count.

    Args:
        dataset: The training columns (``query``, slot columns, ``label``).
        batch_size: Rows per batch.
        drop_last: Drop the last incomplete batch.
        valid_label_columns: Label columns to ignore (the trainer passes ``label``, ``score``, ...).
        generator: Random generator for the shuffle.
        seed: Seed of the shuffle (plus the epoch number, so every epoch differs and is reproducible).

    The sampler takes the same arguments as the stock one, so it can be given as
    ``SentenceTransformerTrainingArguments(batch_sampler=NoDuplicateTextsBatchSampler)``;
    :class:`~syntriever_hf.trainers.stage1.Stage1Trainer` uses it for ``batch_sampler="no_duplicates"``.
    """

    def _texts_of_row(self, index: int) -> set[str]:
        return row_texts(self.dataset[index])

    def _iter_one_pass(
        self,
        get_sample_values: Callable[[int], set[str] | np.ndarray],
        has_overlap: Callable[[set[str] | np.ndarray, set[str | np.int64]], bool],
    ) -> Iterator[list[int]]:
        # The parent's pass (shuffle, defer conflicting rows, resample to reach __len__) with our notion of a value.
        return super()._iter_one_pass(self._texts_of_row, has_overlap)
