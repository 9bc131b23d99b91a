"""The stage-1 loss with GradCache: the same loss and gradients as :class:`SyntrieverLoss`, in bounded memory."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from sentence_transformers.base.losses.gradcache import (
    CachedLossMixin,
    _validate_mini_batch_num_tokens,
    has_static_embedding_input,
)
from torch import Tensor, nn

from syntriever_hf.data.stage1_columns import DEFAULT_STAGE1_PRESET, Stage1Recipe
from syntriever_hf.losses.syntriever import SyntrieverLoss

__all__ = ["CachedSyntrieverLoss"]

logger = logging.getLogger(__name__)


class CachedSyntrieverLoss(CachedLossMixin, nn.Module):
    def __init__(
        self,
        model: nn.Module,
        slot_roles: Sequence[str],
        recipe: Stage1Recipe | str = DEFAULT_STAGE1_PRESET,
        scale: float = 20.0,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        gather_across_devices: bool = False,
        show_progress_bar: bool = False,
    ) -> None:
        """
        :class:`~syntriever_hf.losses.SyntrieverLoss` with GradCache (Gao et al., 2021): the same loss and the
        same gradients, but the texts are embedded ``mini_batch_size`` at a time, so a large batch (many in-batch
        negatives) fits in the memory of a small one, at the cost of a second forward pass (roughly 20-40%
        slower).

        How: (1) embed every column in mini-batches without gradients; (2) compute the loss on those detached
        embeddings, chunk of queries by chunk of queries, and back-propagate it to the embeddings, whose gradients
        are cached; (3) in the backward pass, re-embed each mini-batch with gradients (replaying the random state
        of step 1, so dropout draws the same masks) and push the cached gradients through the model.

        Args:
            model: the SentenceTransformer model to train.
            slot_roles: the role of each slot column, as returned by ``to_loss_columns`` (see ``SyntrieverLoss``).
            recipe: a ``Stage1Recipe`` or the name of a preset (default: ``DEFAULT_STAGE1_PRESET``).
            scale: the inverse temperature (``20.0`` is ``tau=0.05``).
            mini_batch_size: texts embedded per forward pass, and queries per loss chunk; it bounds the memory.
            mini_batch_num_tokens: if set, pack the embedding mini-batches by token count instead.
            gather_across_devices: under DDP, gather the slots of every process into the candidate set.
            show_progress_bar: show progress bars over the mini-batches.

        References:
            - Kim & Baek, Syntriever, Findings of NAACL 2025: https://arxiv.org/abs/2502.03824
            - Gao et al., Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup:
              https://arxiv.org/abs/2101.06983

        Requirements:
            1. The columns and ``label`` mask built by ``to_loss_columns`` (the same as ``SyntrieverLoss``).
            2. A transformer-based model (a ``StaticEmbedding`` model cannot be split into mini-batches).

        Inputs:
            +-------------------------------------------------------------+------------------------------------+
            | Inputs                                                      | Labels                             |
            +=============================================================+====================================+
            | (query, gold_1, ..., gold_G, llm_positive, cot,             | ``label``: (batch, slots) 0/1      |
            | llm_negative, rejected_positive, mined_negative_1, ...,     | presence mask, one entry per slot  |
            | mined_negative_M): only the recipe's roles, in this order   | column, 0 where the text is ""     |
            +-------------------------------------------------------------+------------------------------------+

        Recommendations:
            - A large ``per_device_train_batch_size`` with a ``mini_batch_size`` as large as memory allows.
            - Keep duplicate texts out of a batch, with a sampler that ignores the ``""`` of masked slots.

        Relations:
            - Equal to :class:`~syntriever_hf.losses.SyntrieverLoss` in loss and gradients (up to dropout
              sampling, which is replayed exactly), only computed in bounded memory.

        Example:
            ::

                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

                from syntriever_hf.data.stage1_columns import to_loss_columns
                from syntriever_hf.losses import CachedSyntrieverLoss

                model = SentenceTransformer("intfloat/e5-base-v2")
                train_dataset, slot_roles = to_loss_columns(examples, "per-positive")  # STAGE1_TRAINING_FEATURES rows
                loss = CachedSyntrieverLoss(model, slot_roles, recipe="per-positive", mini_batch_size=16)

                trainer = SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss)
                trainer.train()
        """
        super().__init__()
        if has_static_embedding_input(model):
            raise ValueError(
                "CachedSyntrieverLoss cannot split a StaticEmbedding model's inputs into mini-batches; "
                "use SyntrieverLoss instead."
            )
        if not isinstance(mini_batch_size, int) or mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be a positive integer, got {mini_batch_size!r}.")
        _validate_mini_batch_num_tokens(mini_batch_num_tokens)
        self.model = model
        # The plain loss owns the recipe, the checks and the maths; this class adds the gradient caching.
        self.loss = SyntrieverLoss(
            model, slot_roles, recipe=recipe, scale=scale, gather_across_devices=gather_across_devices
        )
        self.mini_batch_size = mini_batch_size
        self.mini_batch_num_tokens = mini_batch_num_tokens
        self.show_progress_bar = show_progress_bar

    @property
    def recipe(self) -> Stage1Recipe:
        return self.loss.recipe

    @property
    def slot_roles(self) -> tuple[str, ...]:
        return self.loss.slot_roles

    @property
    def slot_columns(self) -> tuple[str, ...]:
        return self.loss.slot_columns

    @property
    def scale(self) -> float:
        return self.loss.scale

    @property
    def temperature(self) -> float:
        return self.loss.temperature

    @property
    def gather_across_devices(self) -> bool:
        return self.loss.gather_across_devices

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        sentence_features = list(sentence_features)
        self.loss.check_columns(sentence_features, labels)
        return self.forward_cached(sentence_features, labels)

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        """The loss from the mini-batch embeddings ``reps`` (one list per column), chunked by ``mini_batch_size``
        queries; with ``with_backward`` each chunk is back-propagated to the embeddings (the gradient cache)."""
        query_emb = torch.cat(reps[0])  # (batch, dim)
        slot_emb = torch.stack([torch.cat(column) for column in reps[1:]], dim=1)  # (batch, slots, dim)
        return self.loss.compute_loss_from_embeddings(
            query_emb,
            slot_emb,
            labels,
            mini_batch_size=self.mini_batch_size,
            with_backward=with_backward,
            show_progress_bar=self.show_progress_bar,
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {
            **self.loss.get_config_dict(),
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": self.mini_batch_num_tokens,
        }

    @property
    def citation(self) -> str:
        return self.loss.citation
