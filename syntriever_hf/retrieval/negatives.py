"""Hard-negative mining for the training queries of a BEIR dataset, by corpus id.

This reuses :func:`sentence_transformers.util.mine_hard_negatives`, which fits: it encodes with ``encode_query`` /
``encode_document`` (so the model's prompts apply), searches exactly (torch, or faiss when asked), offers the
usual selection knobs (``range_min``/``range_max``, absolute/relative margins to the positive's score, a maximum
score, top or random sampling) and, with ``include_positives=False``, leaves out every positive of a query, since
it groups all (anchor, positive) pairs of one anchor text. What it does not do, and this module adds:

* it works on texts, not ids: the (query, positive) pairs are built from the split's qrels (every judgement with
  score > 0, so all known positives are passed, not one per query), and the mined texts are mapped back to corpus
  ids. It deduplicates the corpus by text, so a document whose text equals a positive's is never mined either;
* the result is checked against the qrels anyway: a mined id that is a known positive of the query, or the query's
  own id (BEIR's ``ignore_identical_ids``), is removed and logged, never returned;
* it prints its statistics when ``verbose=True``; it is called with ``verbose=False`` (no ``print`` in a library)
  and a summary is logged instead. Its encoding and search progress bars still show.

Random sampling (``sampling_strategy="random"``) draws from Python's global ``random`` state: seed it (for example
``transformers.set_seed``) before mining for a reproducible result.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Literal

from datasets import Dataset

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from syntriever_hf.data.beir import BeirDataset

__all__ = ["mine_hard_negatives"]

logger = logging.getLogger(__name__)


def mine_hard_negatives(
    model: SentenceTransformer,
    beir: BeirDataset,
    *,
    split: str = "train",
    num_negatives: int = 5,
    range_min: int = 0,
    range_max: int | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    sampling_strategy: Literal["top", "random"] = "top",
    batch_size: int = 32,
    query_chunk_size: int = 1024,
    use_faiss: bool = False,
    cache_folder: str | None = None,
) -> dict[str, list[str]]:
    """Mine up to ``num_negatives`` hard negatives per training query: ``{query_id: [corpus_id, ...]}``, hardest first.

    Args:
        model: The bi-encoder that ranks the corpus for each query.
        beir: The dataset; its training ``split`` gives the queries and their positives (an evaluation split is
            refused, and queries also judged in an evaluation split are left out).
        split: The training split.
        num_negatives: Negatives per query (fewer when the selection rules leave fewer candidates).
        range_min: Skip the ``range_min`` best-ranked non-positive candidates (likely unlabelled positives).
        range_max: Consider candidates up to this rank (default: enough for ``num_negatives``).
        absolute_margin: Keep a candidate only if its score is at least this much below the query's
            lowest-scoring positive.
        relative_margin: Keep a candidate only if its score is below that positive's score minus this fraction of
            its magnitude (NV-Retriever's TopK-PercPos uses 0.05).
        max_score: Keep a candidate only if its score is at most this.
        sampling_strategy: ``"top"`` takes the best remaining candidates, ``"random"`` samples among them.
        batch_size: Encoding batch size.
        query_chunk_size: Queries scored at once against the whole corpus: the torch search holds a
            ``query_chunk_size x len(corpus)`` score matrix, so lower it (or pass ``use_faiss=True``) for large
            corpora.
        use_faiss: Search with faiss (``faiss-cpu``) instead of torch.
        cache_folder: Where sentence-transformers may cache the embeddings between runs.

    Returns:
        Every training query with a positive maps to its negatives (possibly an empty list).
    """
    from sentence_transformers.util import mine_hard_negatives as st_mine_hard_negatives

    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got num_negatives={num_negatives}.")
    pairs, query_ids_by_text, positives = _positive_pairs(beir, split)
    corpus = beir.corpus_texts()
    mined = st_mine_hard_negatives(
        pairs, model, anchor_column_name="query", positive_column_name="positive", corpus=list(corpus.values()),
        range_min=range_min, range_max=range_max, absolute_margin=absolute_margin, relative_margin=relative_margin,
        max_score=max_score, num_negatives=num_negatives, sampling_strategy=sampling_strategy,
        output_format="labeled-pair", batch_size=batch_size, faiss_batch_size=query_chunk_size,
        use_faiss=use_faiss, verbose=False, cache_folder=cache_folder,
    )
    ids_by_text: dict[str, list[str]] = defaultdict(list)
    for doc_id, text in corpus.items():
        ids_by_text[text].append(doc_id)
    negatives: dict[str, list[str]] = {query_id: [] for ids in query_ids_by_text.values() for query_id in ids}
    for query_text, text, label in zip(mined["query"], mined["positive"], mined["label"], strict=True):
        if label == 0:
            for query_id in query_ids_by_text[query_text]:
                negatives[query_id].append(ids_by_text[text][0])
    return _without_known_positives(negatives, positives, num_negatives)


def _positive_pairs(beir: BeirDataset, split: str) -> tuple[Dataset, dict[str, list[str]], dict[str, set[str]]]:
    """(query text, positive text) pairs of every judgement with score > 0, query ids by text, positives by id."""
    queries = beir.training_queries(split)  # refuses evaluation splits, drops queries judged in one
    relevant = beir.relevant_docs(split)
    corpus = beir.corpus_texts()
    pairs: dict[str, list[str]] = {"query": [], "positive": []}
    query_ids_by_text: dict[str, list[str]] = defaultdict(list)
    positives: dict[str, set[str]] = {}
    for query_id, query_text in zip(queries["id"], queries["text"], strict=True):
        positives[query_id] = {doc for doc, score in relevant.get(query_id, {}).items() if score > 0}
        if not positives[query_id]:
            continue
        query_ids_by_text[query_text].append(query_id)
        for doc_id in sorted(positives[query_id]):
            pairs["query"].append(query_text)
            pairs["positive"].append(corpus[doc_id])
    if not pairs["query"]:
        raise ValueError(
            f"split {split!r} of {beir.name} has no training query with a positive judgement (score > 0): "
            "there is nothing to mine negatives against."
        )
    skipped = len(queries) - sum(len(ids) for ids in query_ids_by_text.values())
    if skipped:
        logger.info("%d training queries of %s/%s have no positive judgement; no negatives are mined for them.",
                    skipped, beir.name, split)
    return Dataset.from_dict(pairs), dict(query_ids_by_text), positives


def _without_known_positives(
    negatives: dict[str, list[str]], positives: dict[str, set[str]], num_negatives: int
) -> dict[str, list[str]]:
    """Drop known positives and the query's own id from the mined ids (and duplicates), and log a summary."""
    removed = 0
    for query_id, doc_ids in negatives.items():
        kept = [doc for doc in dict.fromkeys(doc_ids) if doc not in positives[query_id] and doc != query_id]
        removed += len(doc_ids) - len(kept)
        negatives[query_id] = kept[:num_negatives]
    if removed:
        logger.warning("Removed %d mined ids that were known positives, query ids or duplicates.", removed)
    total = sum(len(doc_ids) for doc_ids in negatives.values())
    short = sum(1 for doc_ids in negatives.values() if len(doc_ids) < num_negatives)
    logger.info("Mined %d hard negatives for %d queries (%d with fewer than %d).", total, len(negatives), short,
                num_negatives)
    return negatives
