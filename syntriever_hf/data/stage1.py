"""Stage-1 training examples: the one path from BEIR qrels, synthetic data and mined negatives to training rows.

Inputs (:func:`build_stage1_examples`):

* the BEIR dataset and its training split (the gold passages come from the corpus, ``title + " " + text``);
* optionally, stage-1 synthetic data in ``STAGE1_SYNTHETIC_FEATURES`` (what the synthesis engine writes, and what
  :func:`syntriever_hf.data.recorded.load_recorded_stage1` reads from a recording): then its rows are the queries,
  and their ``gold_ids`` the gold passages (empty in the zero-label setting);
* optionally, mined negative corpus ids per query id (:func:`syntriever_hf.retrieval.mine_hard_negatives`).

Without synthetic data, every training query with at least one positive (score > 0) in the split becomes a row
with its gold passages (and its mined negatives): training without an LLM, the gold-only benchmark.

Output: ``STAGE1_TRAINING_FEATURES``, one row per query, one column per text role (``STAGE1_ROLES``). The
verification verdicts decide the roles:

============================  =======================  ==========================================
synthetic text                verdict                  role
============================  =======================  ==========================================
LLM positive                  "yes"                    ``llm_positive``
LLM positive                  "no"                     ``rejected_positive`` (a hard negative)
LLM positive                  ``None`` (unverified)    dropped: never a positive, never a negative
LLM negative                  "no"                     ``llm_negative``
LLM negative                  "yes" (relevant)         dropped (it would be a false negative)
LLM negative                  ``None`` (unverified)    dropped (only a checked negative is kept)
chain of thought              (not verified)           ``cot``
mined corpus id               (qrels)                  ``mined_negative``, unless it is a positive
============================  =======================  ==========================================

A mined id that is a known positive of the query (its ``gold_ids`` or any score > 0 in the split's qrels) is
dropped and counted. Rows are kept even when a role choice leaves them without a positive (say, no gold and a
rejected LLM positive): which roles are positives is the loss's choice, so filtering belongs to the trainer.
Evaluation queries are refused.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from datasets import Dataset

from syntriever_hf.data.schema import (
    STAGE1_LIST_ROLES,
    STAGE1_ROLES,
    STAGE1_SYNTHETIC_FEATURES,
    STAGE1_TRAINING_FEATURES,
    VERDICTS,
)

if TYPE_CHECKING:
    from syntriever_hf.data.beir import BeirDataset

__all__ = ["Stage1DataError", "build_stage1_examples", "stage1_statistics"]

logger = logging.getLogger(__name__)


class Stage1DataError(ValueError):
    """Stage-1 inputs that cannot become training examples; the message names the query and the fix."""


def build_stage1_examples(
    beir: BeirDataset,
    *,
    split: str = "train",
    synthetic: Dataset | None = None,
    mined_negatives: Mapping[str, Sequence[str]] | None = None,
) -> Dataset:
    """Build stage-1 training examples (``STAGE1_TRAINING_FEATURES``), applying the verification rules.

    Args:
        beir: The BEIR dataset: corpus texts, queries and qrels.
        split: The training split (an evaluation split is refused).
        synthetic: Stage-1 synthetic data (``STAGE1_SYNTHETIC_FEATURES``); its rows become the examples.
        mined_negatives: Corpus ids per query id, hardest first; known positives among them are dropped.

    Returns:
        One row per query, in the order of ``synthetic`` (or of the split's training queries).

    Raises:
        Stage1DataError: ``synthetic`` lacks a column, repeats a query, names an evaluation or unknown query, or an
            id (gold or mined) is not in the corpus.
    """
    training_ids = set(beir.training_queries(split)["id"])  # refuses evaluation splits
    positives = {
        query_id: [doc for doc, score in docs.items() if score > 0]
        for query_id, docs in beir.relevant_docs(split).items()
    }
    if synthetic is None:
        texts = beir.query_texts(split)
        sources = [
            {"query_id": query_id, "query": texts[query_id], "gold_ids": positives[query_id]}
            for query_id in texts
            if query_id in training_ids and positives.get(query_id)
        ]
    else:
        sources = _checked_synthetic_rows(synthetic, beir)
        uncovered = {q for q in training_ids if positives.get(q)} - {row["query_id"] for row in sources}
        if uncovered:
            logger.info("%d training queries of %s/%s with gold passages have no synthetic row and are not used.",
                        len(uncovered), beir.name, split)
    counts: Counter[str] = Counter()
    corpus = beir.corpus_texts()
    mined = dict(mined_negatives or {})
    rows = []
    for source in sources:
        query_id = source["query_id"]
        known = {*positives.get(query_id, ()), *source["gold_ids"]}
        rows.append(_example(source, corpus, mined.pop(query_id, ()), known, counts))
    if mined:
        logger.warning("%d query ids of mined_negatives have no stage-1 row and were ignored (e.g. %r).",
                       len(mined), next(iter(mined)))
    _log_summary(beir.name, split, len(rows), counts)
    return Dataset.from_list(rows, features=STAGE1_TRAINING_FEATURES)


def stage1_statistics(examples: Dataset) -> dict[str, int]:
    """Counts of a stage-1 training dataset, for cards.

    Keys: ``queries``, ``queries_with_gold``, one key per role of ``STAGE1_ROLES`` (the number of texts in that
    role: passages for the list roles, non-empty cells for the others) and ``queries_with_mined_negative``.
    """
    missing = [column for column in STAGE1_TRAINING_FEATURES if column not in examples.column_names]
    if missing:
        raise Stage1DataError(
            f"examples lacks the columns {missing}: pass the output of build_stage1_examples "
            f"(columns {list(STAGE1_TRAINING_FEATURES)})."
        )
    statistics = {"queries": len(examples), "queries_with_gold": sum(1 for gold in examples["gold"] if gold)}
    for role in STAGE1_ROLES:
        column = examples[role]
        if role in STAGE1_LIST_ROLES:
            statistics[role] = sum(len(texts) for texts in column)
        else:
            statistics[role] = sum(1 for text in column if text is not None)
    statistics["queries_with_mined_negative"] = sum(1 for texts in examples["mined_negative"] if texts)
    return statistics


def _checked_synthetic_rows(synthetic: Dataset, beir: BeirDataset) -> list[dict[str, Any]]:
    """The synthetic rows, after checking columns, unique ids, and that no evaluation query is among them."""
    missing = [column for column in STAGE1_SYNTHETIC_FEATURES if column not in synthetic.column_names]
    if missing:
        raise Stage1DataError(
            f"synthetic lacks the columns {missing}: it must follow STAGE1_SYNTHETIC_FEATURES "
            f"({list(STAGE1_SYNTHETIC_FEATURES)}), as the synthesis engine and load_recorded_stage1 write it."
        )
    held_out, known_queries = beir.evaluation_query_ids(), set(beir.queries["id"])
    seen: set[str] = set()
    rows = synthetic.select_columns(list(STAGE1_SYNTHETIC_FEATURES)).to_list()
    for index, row in enumerate(rows):
        query_id = row["query_id"]
        if query_id in held_out:
            raise Stage1DataError(
                f"synthetic row {index}: query_id {query_id!r} is an evaluation query of {beir.name}; evaluation "
                "queries are never used for training. Remove that row."
            )
        if query_id not in known_queries:
            raise Stage1DataError(
                f"synthetic row {index}: query_id {query_id!r} is not a query of {beir.name}: the synthetic data "
                "was made for another dataset."
            )
        if query_id in seen:
            raise Stage1DataError(f"synthetic row {index}: duplicate query_id {query_id!r}; keep one row per query.")
        seen.add(query_id)
        for column in ("llm_positive_verdict", "llm_negative_verdict"):
            if row[column] is not None and row[column] not in VERDICTS:
                raise Stage1DataError(
                    f"synthetic row {index} (query {query_id!r}): {column} is {row[column]!r}; a verdict is exactly "
                    f"one of {list(VERDICTS)} or None (not verified). Parse verdicts strictly before building."
                )
    return rows


def _texts(ids: Sequence[str], corpus: Mapping[str, str], query_id: str, what: str) -> list[str]:
    unknown = [doc_id for doc_id in ids if doc_id not in corpus]
    if unknown:
        raise Stage1DataError(
            f"query {query_id!r}: {what} ids {unknown[:5]} are not in the corpus: the ids must be corpus ids of "
            "the same BEIR dataset."
        )
    return [corpus[doc_id] for doc_id in ids]


def _example(
    source: dict[str, Any],
    corpus: Mapping[str, str],
    mined: Sequence[str],
    known_positives: set[str],
    counts: Counter[str],
) -> dict[str, Any]:
    """One training row from a synthetic (or gold-only) row; ``counts`` collects the decisions."""
    query_id = source["query_id"]
    example: dict[str, Any] = {"query_id": query_id, "query": source["query"]}
    example["gold"] = _texts(source["gold_ids"], corpus, query_id, "gold")
    example.update(_verified_roles(source, counts))
    kept = [doc_id for doc_id in dict.fromkeys(mined) if doc_id not in known_positives]
    counts["mined_dropped_positive"] += sum(1 for doc_id in set(mined) if doc_id in known_positives)
    example["mined_negative"] = _texts(kept, corpus, query_id, "mined negative")
    counts["queries"] += 1
    counts["with_gold"] += bool(example["gold"])
    counts["gold"] += len(example["gold"])
    counts["mined"] += len(kept)
    return {column: example[column] for column in STAGE1_TRAINING_FEATURES}


def _verified_roles(source: dict[str, Any], counts: Counter[str]) -> dict[str, str | None]:
    """The single-text roles of a row under the verification rules (see the module docstring)."""
    roles: dict[str, str | None] = {"llm_positive": None, "rejected_positive": None, "cot": source.get("cot"),
                                    "llm_negative": None}
    positive, positive_verdict = source.get("llm_positive"), source.get("llm_positive_verdict")
    if positive is not None:
        decision = {"yes": "llm_positive", "no": "rejected_positive"}.get(positive_verdict)
        counts[f"positive_{positive_verdict or 'unverified'}"] += 1
        if decision is not None:
            roles[decision] = positive
    negative, negative_verdict = source.get("llm_negative"), source.get("llm_negative_verdict")
    if negative is not None:
        counts[f"negative_{negative_verdict or 'unverified'}"] += 1
        if negative_verdict == "no":
            roles["llm_negative"] = negative
    counts["cot"] += roles["cot"] is not None
    return roles


def _log_summary(name: str, split: str, rows: int, counts: Counter[str]) -> None:
    logger.info(
        "Stage-1 examples of %s/%s: %d queries (%d with gold, %d gold passages); LLM positives %d verified, "
        "%d rejected (now negatives), %d unverified (dropped); LLM negatives %d kept, %d dropped as relevant, "
        "%d unverified (dropped); %d CoT texts; %d mined negatives (%d known positives dropped).",
        name, split, rows, counts["with_gold"], counts["gold"], counts["positive_yes"], counts["positive_no"],
        counts["positive_unverified"], counts["negative_no"], counts["negative_yes"], counts["negative_unverified"],
        counts["cot"], counts["mined"], counts["mined_dropped_positive"],
    )
