"""Hub layer: card rendering (pure, ``cards``) and publishing of datasets and checkpoints (``push``)."""

from __future__ import annotations

from syntriever_hf.hub.cards import render_card, template_text
from syntriever_hf.hub.push import check_saved_model_folder, push_dataset_dict, push_model_folder, validate_repo_id

__all__ = [
    "check_saved_model_folder",
    "push_dataset_dict",
    "push_model_folder",
    "render_card",
    "template_text",
    "validate_repo_id",
]
