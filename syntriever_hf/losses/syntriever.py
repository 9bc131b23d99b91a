"""The stage-1 (distillation) loss of Syntriever: soft nearest neighbours over variable positive groups."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import tqdm
from sentence_transformers.base.losses.merged_forward import embed_columns, merge_feature_batches
from sentence_transformers.util import all_gather, all_gather_with_grad, cos_sim, get_rank
from torch import Tensor, nn

from syntriever_hf.citation import SYNTRIEVER_CITATION
from syntriever_hf.data.schema import STAGE1_ROLES
from syntriever_hf.data.stage1_columns import (
    DEFAULT_STAGE1_PRESET,
    GROUPINGS,
    Stage1Recipe,
    resolve_recipe,
    slot_column_names,
)

__all__ = ["SyntrieverLoss", "embed_present_slots", "stage1_loss_terms"]

logger = logging.getLogger(__name__)


def stage1_loss_terms(
    query_emb: Tensor,
    candidate_emb: Tensor,
    candidate_mask: Tensor,
    positive_slots: Tensor,
    *,
    scale: float,
    grouping: str,
    query_rows: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The stage-1 loss of each query, from embeddings (pure tensor maths, no model).

    Args:
        query_emb: ``(b, dim)`` the queries whose losses are computed.
        candidate_emb: ``(n, slots, dim)`` the slots of every query in the (possibly gathered) batch: the set C.
        candidate_mask: ``(n, slots)`` bool, True where a slot holds a text.
        positive_slots: ``(slots,)`` bool, True for the slots whose role is a positive role.
        scale: the inverse temperature that multiplies the cosine similarities.
        grouping: ``"grouped"`` or ``"per_positive"`` (see :class:`SyntrieverLoss`).
        query_rows: ``(b,)`` the row of ``candidate_emb`` that holds each query's own slots (default: ``0..b-1``).

    Returns:
        ``(terms, has_positive)``: ``(b,)`` losses (float32 or wider), 0 for a query with no present positive,
        and ``(b,)`` bool telling which queries have one (the loss: the sum of ``terms`` over that count).
    """
    batch, (rows, slots, dim) = query_emb.size(0), candidate_emb.shape
    device = query_emb.device
    if query_rows is None:
        query_rows = torch.arange(batch, device=device)
    local = torch.arange(batch, device=device)
    similarities = cos_sim(query_emb, candidate_emb.reshape(rows * slots, dim))  # (b, n * slots)
    # At least float32 whatever the autocast dtype: the log-sum-exps need the range.
    similarities = similarities.to(torch.promote_types(similarities.dtype, torch.float32))
    scores = (similarities * scale).view(batch, rows, slots)  # (b, n, slots)
    present = candidate_mask.bool()  # (n, slots)
    own_rows = torch.zeros(batch, rows, dtype=torch.bool, device=device)  # (b, n)
    own_rows[local, query_rows] = True
    own_positive = own_rows[:, :, None] & (present & positive_slots.bool())[None]  # (b, n, slots)
    has_positive = own_positive.flatten(1).any(dim=1)  # (b,)
    # A finite floor instead of -inf keeps every gradient finite when a whole row is masked out.
    floor = torch.finfo(scores.dtype).min
    absent = ~present[None]  # (1, n, slots)
    if grouping == "grouped":
        log_numerator = scores.masked_fill(~own_positive, floor).flatten(1).logsumexp(dim=1)  # (b,)
        log_denominator = scores.masked_fill(absent, floor).flatten(1).logsumexp(dim=1)  # (b,)
        terms = log_denominator - log_numerator
    elif grouping == "per_positive":
        # Everything in C but the query's own positives: each positive competes with these, not its siblings.
        log_rest = scores.masked_fill(absent | own_positive, floor).flatten(1).logsumexp(dim=1)  # (b,)
        own_scores = scores[local, query_rows]  # (b, slots)
        own_positive_slots = own_positive[local, query_rows]  # (b, slots)
        per_positive = torch.logaddexp(own_scores, log_rest[:, None]) - own_scores  # (b, slots)
        per_positive = per_positive.masked_fill(~own_positive_slots, 0.0)
        terms = per_positive.sum(dim=1) / own_positive_slots.sum(dim=1).clamp(min=1)
    else:
        raise ValueError(f"grouping={grouping!r} is not one of {GROUPINGS}.")
    return terms.masked_fill(~has_positive, 0.0), has_positive


def embed_present_slots(model: nn.Module, slot_features: list[dict[str, Any]], mask: Tensor) -> Tensor:
    """Embed the slot columns, ``(batch, slots, dim)``, skipping the texts that ``mask`` marks absent (left zero).

    The columns are merged into one forward pass (``merge_feature_batches``, as sentence-transformers' own losses
    do) and only the present rows of it are embedded, trimmed of the padding they no longer need: absent slots
    are often most of a batch (a second gold passage, a rejected positive). Where the columns cannot be merged,
    every text is embedded, column by column.
    """
    batch, slots = len(mask), len(slot_features)
    merged = merge_feature_batches(slot_features) if slots > 1 else slot_features[0]
    if merged is None:
        return torch.stack(embed_columns(model, slot_features, separate_first=False), dim=1)
    present = mask.bool().T.reshape(-1)  # (slots * batch,), column-major like the merged rows
    if bool(present.all()) or not bool(present.any()):
        embeddings = model(merged)["sentence_embedding"]  # (slots * batch, dim)
    else:
        rows = present.nonzero().squeeze(1)  # (present,)
        kept = model(_select_rows(merged, rows, slots * batch))["sentence_embedding"]  # (present, dim)
        embeddings = kept.new_zeros(slots * batch, kept.size(1)).index_copy(0, rows, kept)  # (slots * batch, dim)
    return embeddings.view(slots, batch, -1).transpose(0, 1)  # (batch, slots, dim)


def _select_rows(features: dict[str, Any], rows: Tensor, total: int) -> dict[str, Any]:
    """The ``rows`` of a padded text batch of ``total`` rows, without the padding columns none of them needs."""
    selected = {
        key: value[rows] if isinstance(value, Tensor) and value.ndim >= 1 and value.size(0) == total else value
        for key, value in features.items()
    }
    attention_mask = selected.get("attention_mask")
    if not isinstance(attention_mask, Tensor) or attention_mask.ndim != 2:
        return selected
    width = attention_mask.size(1)
    active = attention_mask.bool().any(dim=0).nonzero()
    end = int(active.max()) + 1 if len(active) else width
    return {
        key: value[:, :end] if isinstance(value, Tensor) and value.ndim >= 2 and value.size(1) == width else value
        for key, value in selected.items()
    }


class SyntrieverLoss(nn.Module):
    def __init__(
        self,
        model: nn.Module,
        slot_roles: Sequence[str],
        recipe: Stage1Recipe | str = DEFAULT_STAGE1_PRESET,
        scale: float = 20.0,
        gather_across_devices: bool = False,
    ) -> None:
        r"""
        The stage-1 (distillation) loss of Syntriever: it pulls a query towards its positive texts (gold passages,
        the LLM's verified passage, optionally the chain-of-thought text) and away from every other text in the
        batch, with groups of variable size handled by a presence mask.

        With :math:`s(a, b) = \text{scale} \cdot \cos(a, b)`, :math:`P_i` the present positive slots of query
        :math:`q_i` and :math:`C` every present slot of every query in the batch (positives of the other queries,
        and all negatives, included), the loss is the mean over the queries that have a positive of

        - ``grouping="grouped"`` (the paper's soft-nearest-neighbour form, one log-sum-exp numerator)::

            L_i = -log sum_{x in P_i} exp s(q_i, x) + log sum_{x in C} exp s(q_i, x)

        - ``grouping="per_positive"`` (every positive its own InfoNCE term, averaged over the query's positives)::

            L_i = 1/|P_i| sum_{p in P_i} [ -s(q_i, p) + log sum_{x in (C \ P_i) ∪ {p}} exp s(q_i, x) ]

          Each positive competes with the negatives and the other queries' texts but not with its own siblings,
          so the easiest positive cannot carry the numerator for the others.

        Which roles are positives, which are negatives and which grouping applies is the ``recipe``: a
        :class:`~syntriever_hf.data.stage1_columns.Stage1Recipe` or a preset name of ``STAGE1_PRESETS``
        (``"paper"``, ``"authors-code"``, ``"per-positive"`` (the default), ``"grouped"``, ``"gold"``,
        ``"gold-llm-negative"``).

        Args:
            model: the SentenceTransformer model to train.
            slot_roles: the role of each slot column, in column order, as returned by
                :func:`~syntriever_hf.data.stage1_columns.to_loss_columns`, e.g.
                ``("gold", "gold", "llm_positive", "llm_negative")``. Every role must be used by the recipe.
            recipe: a ``Stage1Recipe`` or the name of a preset (default: ``DEFAULT_STAGE1_PRESET``).
            scale: the inverse temperature: ``scale=20.0`` is ``tau=0.05``, the paper's value.
            gather_across_devices: under DDP, gather the slots of every process into C (with gradients), so each
                query meets ``world_size`` times more in-batch negatives. Assumes equal per-process batch sizes.

        References:
            - Kim & Baek, Syntriever: How to Train Your Retriever with Synthetic Data from LLMs, Findings of NAACL
              2025: https://arxiv.org/abs/2502.03824

        Requirements:
            1. One row per query with its slot texts and a presence mask, as built by ``to_loss_columns``.
            2. At least one present positive slot per row (``to_loss_columns`` drops the rows without one;
               a row without one would contribute nothing).

        Inputs:
            +-------------------------------------------------------------+------------------------------------+
            | Inputs                                                      | Labels                             |
            +=============================================================+====================================+
            | (query, gold_1, ..., gold_G, llm_positive, cot,             | ``label``: (batch, slots) 0/1      |
            | llm_negative, rejected_positive, mined_negative_1, ...,     | presence mask, one entry per slot  |
            | mined_negative_M): only the recipe's roles, in this order   | column, 0 where the text is ""     |
            +-------------------------------------------------------------+------------------------------------+

        Recommendations:
            - Keep duplicate texts out of a batch (e.g. ``BatchSamplers.NO_DUPLICATES``): a query's positive
              repeated as another query's slot becomes a false in-batch negative. Note that the stock sampler
              also counts the ``""`` written into masked slots as a duplicate, so rows with a missing slot
              cannot share a batch under it: use a sampler that ignores empty strings.
            - Masked slots are not embedded (their rows are left out of the forward pass), so sparse columns cost
              little here; :class:`~syntriever_hf.losses.CachedSyntrieverLoss` does embed them. Cap rare extra gold
              passages with ``to_loss_columns(..., max_gold=...)`` anyway: every slot column widens the batch.

        Relations:
            - With one positive slot per query, no negative slots and a full mask, both groupings equal
              :class:`~sentence_transformers.sentence_transformer.losses.MultipleNegativesRankingLoss` (InfoNCE)
              in value and gradients.
            - :class:`~syntriever_hf.losses.CachedSyntrieverLoss` computes the same loss and gradients with
              GradCache, so a large batch fits in little memory.

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

                from syntriever_hf.data.schema import STAGE1_TRAINING_FEATURES
                from syntriever_hf.data.stage1_columns import to_loss_columns
                from syntriever_hf.losses import SyntrieverLoss

                model = SentenceTransformer("intfloat/e5-base-v2")
                examples = Dataset.from_list(
                    [
                        {"query_id": "1", "query": "Aspirin lowers the risk of colorectal cancer.",
                         "gold": ["Daily aspirin reduced colorectal cancer incidence in long-term follow-up."],
                         "llm_positive": "Randomised trials report fewer colorectal adenomas with aspirin.",
                         "cot": None, "llm_negative": "Aspirin was first synthesised by Bayer in 1897.",
                         "rejected_positive": None, "mined_negative": []},
                        {"query_id": "2", "query": "Vitamin D prevents fractures in older adults.",
                         "gold": ["Vitamin D alone did not reduce hip fractures in a pooled analysis."],
                         "llm_positive": None, "cot": None,
                         "llm_negative": "Vitamin D is synthesised in the skin under UVB light.",
                         "rejected_positive": "Vitamin D is important for health.", "mined_negative": []},
                    ],
                    features=STAGE1_TRAINING_FEATURES,
                )
                train_dataset, slot_roles = to_loss_columns(examples, "per-positive")
                loss = SyntrieverLoss(model, slot_roles, recipe="per-positive")

                trainer = SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss)
                trainer.train()
        """
        super().__init__()
        self.model = model
        self.recipe = resolve_recipe(recipe)
        self.slot_roles = _checked_slot_roles(slot_roles, self.recipe)
        if not scale > 0:
            raise ValueError(f"scale must be positive (scale = 1 / temperature; the paper uses 20.0), got {scale!r}.")
        self.scale = float(scale)
        self.gather_across_devices = bool(gather_across_devices)

    @property
    def slot_columns(self) -> tuple[str, ...]:
        """The slot column names the loss expects after ``query``, e.g. ``("gold_1", "llm_positive")``."""
        return slot_column_names(self.slot_roles)

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        sentence_features = list(sentence_features)
        self.check_columns(sentence_features, labels)
        self.check_mask(labels)
        query_emb = self.model(sentence_features[0])["sentence_embedding"]  # (batch, dim)
        slot_emb = embed_present_slots(self.model, sentence_features[1:], labels)  # (batch, slots, dim)
        return self.compute_loss_from_embeddings(query_emb, slot_emb, labels)

    def compute_loss_from_embeddings(
        self,
        query_emb: Tensor,
        slot_emb: Tensor,
        mask: Tensor,
        *,
        mini_batch_size: int | None = None,
        with_backward: bool = False,
        show_progress_bar: bool = False,
    ) -> Tensor:
        """The loss from embeddings: ``query_emb`` (batch, dim), ``slot_emb`` (batch, slots, dim), ``mask``
        (batch, slots) 0/1.

        ``mini_batch_size`` computes the loss over chunks of queries (all against the full C); with
        ``with_backward`` each chunk is back-propagated at once and the detached total returned (GradCache).
        """
        batch = query_emb.size(0)
        if slot_emb.shape[:2] != (batch, len(self.slot_roles)):
            raise ValueError(
                f"slot_emb must be (batch={batch}, slots={len(self.slot_roles)}, dim), got {tuple(slot_emb.shape)}."
            )
        mask = self.check_mask(mask, batch)
        candidate_emb, candidate_mask, offset = self.gather_candidates(slot_emb, mask)
        positive_slots = torch.tensor(
            [self.recipe.is_positive(role) for role in self.slot_roles], dtype=torch.bool, device=mask.device
        )  # (slots,)
        count = (mask & positive_slots).any(dim=1).sum().clamp(min=1)  # queries with a positive
        step = mini_batch_size or max(batch, 1)
        total = []
        for begin in tqdm.trange(0, batch, step, desc="Stage-1 loss", disable=not show_progress_bar):
            end = min(begin + step, batch)
            terms, _ = stage1_loss_terms(
                query_emb[begin:end],
                candidate_emb,
                candidate_mask,
                positive_slots,
                scale=self.scale,
                grouping=self.recipe.grouping,
                query_rows=torch.arange(offset + begin, offset + end, device=query_emb.device),
            )
            chunk = terms.sum() / count
            if with_backward:
                chunk.backward()
                chunk = chunk.detach()
            total.append(chunk)
        return torch.stack(total).sum()

    def gather_candidates(self, slot_emb: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, int]:
        """``(candidate_emb, candidate_mask, offset)``: the slots of every process under
        ``gather_across_devices`` (else this process's), and the row of this process's first query."""
        if not self.gather_across_devices:
            return slot_emb, mask, 0
        candidate_emb = all_gather_with_grad(slot_emb)  # (world * batch, slots, dim)
        candidate_mask = all_gather(mask.to(torch.long)).bool()  # (world * batch, slots)
        return candidate_emb, candidate_mask, get_rank() * slot_emb.size(0)

    def check_columns(self, sentence_features: list[dict[str, Tensor]], labels: Tensor | None) -> None:
        """Refuse inputs that do not have one query column, one column per slot and the ``label`` mask."""
        expected = ("query", *self.slot_columns)
        if len(sentence_features) != len(expected):
            raise ValueError(
                f"{type(self).__name__} expected {len(expected)} input columns {expected} (then the 'label' mask), "
                f"got {len(sentence_features)}. Build the training columns with "
                "syntriever_hf.data.stage1_columns.to_loss_columns(examples, recipe) and pass the slot_roles it "
                "returns to the loss."
            )
        if labels is None:
            raise ValueError(
                f"{type(self).__name__} needs the presence mask as labels: a 'label' column holding one 0/1 per "
                f"slot {self.slot_columns}, as written by to_loss_columns; the batch had no label column."
            )

    def check_mask(self, mask: Tensor, batch: int | None = None) -> Tensor:
        """Check that the mask is (batch, slots) and 0/1 (any batch size if ``batch`` is None); return it as bool."""
        slots = len(self.slot_roles)
        if mask.ndim != 2 or mask.size(1) != slots or (batch is not None and mask.size(0) != batch):
            raise ValueError(
                f"The 'label' mask must have shape (batch{'' if batch is None else f'={batch}'}, slots={slots}), one "
                f"0/1 per slot column {self.slot_columns}; got {tuple(mask.shape)}. Rebuild the columns with "
                "to_loss_columns."
            )
        if mask.dtype != torch.bool and ((mask != 0) & (mask != 1)).any():
            raise ValueError(f"The 'label' mask must hold only 0 and 1, got values {mask.unique().tolist()}.")
        return mask.bool()

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_dict(),
            "slot_roles": list(self.slot_roles),
            "scale": self.scale,
            "gather_across_devices": self.gather_across_devices,
        }

    @property
    def citation(self) -> str:
        return SYNTRIEVER_CITATION


def _checked_slot_roles(slot_roles: Sequence[str], recipe: Stage1Recipe) -> tuple[str, ...]:
    if isinstance(slot_roles, str):
        raise TypeError(f"slot_roles must be a sequence of role names, got the string {slot_roles!r}.")
    slot_roles = tuple(slot_roles)
    if not slot_roles:
        raise ValueError("slot_roles is empty; pass the slot roles returned by to_loss_columns(examples, recipe).")
    for index, role in enumerate(slot_roles):
        if role not in STAGE1_ROLES:
            raise ValueError(f"slot_roles[{index}]={role!r} is not a stage-1 role; the roles are {STAGE1_ROLES}.")
        if role not in recipe.roles:
            raise ValueError(
                f"slot_roles[{index}]={role!r} is neither a positive nor a negative role of recipe "
                f"{recipe.name or 'custom'!r} (positives {recipe.positive_roles}, negatives {recipe.negative_roles}); "
                "build the columns with to_loss_columns(examples, recipe) using the same recipe as the loss."
            )
    if not any(recipe.is_positive(role) for role in slot_roles):
        raise ValueError(
            f"None of slot_roles {slot_roles} is a positive role of recipe {recipe.name or 'custom'!r} "
            f"{recipe.positive_roles}: no query could have a positive."
        )
    return slot_roles
