"""Collating loss columns as the trainer does, for loss tests."""

from __future__ import annotations

import torch
from datasets import Dataset
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator


def collate_features(model, columns: Dataset) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Collate ``columns`` as the trainer does and split the batch into per-column features and the labels."""
    batch = SentenceTransformerDataCollator(preprocess_fn=model.preprocess)(list(columns))
    names = [name for name in columns.column_names if name != "label"]
    features = [{key[len(name) + 1:]: value for key, value in batch.items() if key.startswith(name + "_")}
                for name in names]
    return features, batch["label"]
