"""Losses of Syntriever, in the sentence-transformers loss contract (pure tensor maths over the model's embeddings)."""

from __future__ import annotations

from syntriever_hf.losses.cached_syntriever import CachedSyntrieverLoss
from syntriever_hf.losses.syntriever import SyntrieverLoss, stage1_loss_terms

__all__ = ["CachedSyntrieverLoss", "SyntrieverLoss", "stage1_loss_terms"]
