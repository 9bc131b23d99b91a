"""Exact top-K dense retrieval over a corpus with a sentence-transformers model.

Queries are encoded with ``model.encode_query`` and documents with ``model.encode_document``, so the model's
``"query"`` / ``"document"`` prompts (e5's ``"query: "`` / ``"passage: "``) apply exactly as in MTEB. Scores are the
model's similarity function: cosine and dot product by matrix products (cosine on normalised embeddings), any
other function through ``model.similarity``.

The torch search is exact and memory-bounded: it scores ``query_chunk_size x corpus_chunk_size`` blocks and keeps
a running top-K per query, so the full query-by-corpus matrix never exists. ``use_faiss=True`` uses a faiss
``IndexFlatIP`` (also exact; faster on large corpora) when faiss is installed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["CorpusEmbeddings", "encode_corpus", "search"]

logger = logging.getLogger(__name__)

_INNER_PRODUCT_FUNCTIONS = ("cosine", "dot")


@dataclass(frozen=True)
class CorpusEmbeddings:
    """Document embeddings with their corpus ids, as :func:`search` needs them.

    Attributes:
        ids: Corpus ids, row ``i`` of ``embeddings`` belongs to ``ids[i]``.
        embeddings: ``(len(ids), dim)`` float tensor, normalised when the similarity is cosine.
        similarity_fn_name: The model's similarity function when they were encoded.
    """

    ids: list[str]
    embeddings: torch.Tensor
    similarity_fn_name: str


def encode_corpus(
    model: SentenceTransformer,
    corpus: Mapping[str, str],
    *,
    batch_size: int = 32,
    show_progress_bar: bool = True,
) -> CorpusEmbeddings:
    """Encode ``{doc_id: text}`` with ``model.encode_document`` (the model's document prompt applies)."""
    if not corpus:
        raise ValueError("corpus is empty: pass a mapping {doc_id: text} with at least one document.")
    function = _similarity_fn_name(model)
    embeddings = model.encode_document(
        list(corpus.values()), batch_size=batch_size, show_progress_bar=show_progress_bar, convert_to_tensor=True,
        normalize_embeddings=function == "cosine",
    )
    return CorpusEmbeddings(ids=list(corpus), embeddings=embeddings, similarity_fn_name=function)


def search(
    model: SentenceTransformer,
    queries: Mapping[str, str],
    corpus: Mapping[str, str] | CorpusEmbeddings,
    top_k: int,
    *,
    exclude: Mapping[str, Collection[str]] | None = None,
    ignore_identical_ids: bool = False,
    batch_size: int = 32,
    query_chunk_size: int = 1024,
    corpus_chunk_size: int = 65536,
    use_faiss: bool = False,
    show_progress_bar: bool = True,
) -> dict[str, list[tuple[str, float]]]:
    """Return the ``top_k`` documents of every query, best first: ``{query_id: [(doc_id, score), ...]}``.

    Args:
        model: The bi-encoder; queries go through ``encode_query``, documents through ``encode_document``.
        queries: ``{query_id: text}``.
        corpus: ``{doc_id: text}``, or embeddings from :func:`encode_corpus` to reuse across calls.
        top_k: Documents per query (fewer when the corpus, minus exclusions, is smaller).
        exclude: Per query id, document ids never returned for it (e.g. its known positives).
        ignore_identical_ids: Never return a document whose id equals the query id (BEIR's evaluation rule).
        batch_size: Encoding batch size.
        query_chunk_size: Queries scored at once (bounds memory with ``corpus_chunk_size``).
        corpus_chunk_size: Documents scored at once by the torch search.
        use_faiss: Search with a faiss ``IndexFlatIP`` (needs ``faiss-cpu``; cosine or dot similarity only).
        show_progress_bar: Show encoding and search progress.
    """
    for name, value in (("top_k", top_k), ("query_chunk_size", query_chunk_size),
                        ("corpus_chunk_size", corpus_chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {name}={value}.")
    if not isinstance(corpus, CorpusEmbeddings):
        corpus = encode_corpus(model, corpus, batch_size=batch_size, show_progress_bar=show_progress_bar)
    if corpus.similarity_fn_name != _similarity_fn_name(model):
        raise ValueError(
            f"corpus was encoded for similarity {corpus.similarity_fn_name!r} but the model uses "
            f"{_similarity_fn_name(model)!r}: encode the corpus again with this model."
        )
    if not queries:
        return {}
    excluded = _exclusions(queries, exclude, ignore_identical_ids)
    depth = min(top_k + max((len(ids) for ids in excluded.values()), default=0), len(corpus.ids))
    query_embeddings = model.encode_query(
        list(queries.values()), batch_size=batch_size, show_progress_bar=show_progress_bar, convert_to_tensor=True,
        normalize_embeddings=corpus.similarity_fn_name == "cosine",
    )
    if use_faiss:
        scores, indices = _faiss_top_k(query_embeddings, corpus, depth, query_chunk_size, show_progress_bar)
    else:
        scores, indices = _torch_top_k(model, query_embeddings, corpus, depth, query_chunk_size, corpus_chunk_size,
                                       show_progress_bar)
    return _results(list(queries), corpus.ids, scores, indices, excluded, top_k)


def _similarity_fn_name(model: SentenceTransformer) -> str:
    return str(model.similarity_fn_name or "cosine")


def _exclusions(
    queries: Mapping[str, str], exclude: Mapping[str, Collection[str]] | None, ignore_identical_ids: bool
) -> dict[str, set[str]]:
    excluded = {query_id: set((exclude or {}).get(query_id, ())) for query_id in queries}
    if ignore_identical_ids:
        for query_id, ids in excluded.items():
            ids.add(query_id)
    return excluded


def _block_scores(model: SentenceTransformer, queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
    """``(n_queries, n_docs)`` scores; a matrix product for cosine (normalised inputs) and dot."""
    if _similarity_fn_name(model) in _INNER_PRODUCT_FUNCTIONS:
        return queries @ documents.T
    return model.similarity(queries, documents)


def _torch_top_k(
    model: SentenceTransformer,
    query_embeddings: torch.Tensor,
    corpus: CorpusEmbeddings,
    depth: int,
    query_chunk_size: int,
    corpus_chunk_size: int,
    show_progress_bar: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``depth`` by blocks, merging each corpus block into a running top-K per query."""
    documents = corpus.embeddings.to(query_embeddings.device)
    all_scores, all_indices = [], []
    for start in tqdm(range(0, len(query_embeddings), query_chunk_size), desc="Searching",
                      disable=not show_progress_bar):
        block = query_embeddings[start:start + query_chunk_size]  # (q, dim)
        best_scores = block.new_full((len(block), 0), float("-inf"))  # (q, <=depth)
        best_indices = torch.empty((len(block), 0), dtype=torch.long, device=block.device)
        for offset in range(0, len(documents), corpus_chunk_size):
            scores = _block_scores(model, block, documents[offset:offset + corpus_chunk_size])  # (q, c)
            k = min(depth, scores.size(1))
            chunk_scores, chunk_indices = torch.topk(scores, k=k, dim=1)
            merged_scores = torch.cat([best_scores, chunk_scores], dim=1)
            merged_indices = torch.cat([best_indices, chunk_indices + offset], dim=1)
            best_scores, order = torch.topk(merged_scores, k=min(depth, merged_scores.size(1)), dim=1)
            best_indices = torch.gather(merged_indices, 1, order)
        all_scores.append(best_scores.cpu())
        all_indices.append(best_indices.cpu())
    return torch.cat(all_scores), torch.cat(all_indices)


def _faiss_top_k(
    query_embeddings: torch.Tensor,
    corpus: CorpusEmbeddings,
    depth: int,
    query_chunk_size: int,
    show_progress_bar: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "use_faiss=True needs faiss: pip install faiss-cpu (or the 'faiss' extra of syntriever-hf), or pass "
            "use_faiss=False for the exact torch search."
        ) from error
    if corpus.similarity_fn_name not in _INNER_PRODUCT_FUNCTIONS:
        raise ValueError(
            f"use_faiss=True searches by inner product, which matches the similarities {_INNER_PRODUCT_FUNCTIONS}, "
            f"not the model's {corpus.similarity_fn_name!r}: pass use_faiss=False."
        )
    documents = corpus.embeddings.detach().float().cpu().contiguous().numpy()
    index = faiss.IndexFlatIP(documents.shape[1])
    index.add(documents)
    queries = query_embeddings.detach().float().cpu().contiguous().numpy()
    all_scores, all_indices = [], []
    for start in tqdm(range(0, len(queries), query_chunk_size), desc="Searching (faiss)",
                      disable=not show_progress_bar):
        scores, indices = index.search(queries[start:start + query_chunk_size], depth)
        all_scores.append(torch.from_numpy(scores))
        all_indices.append(torch.from_numpy(indices))
    return torch.cat(all_scores), torch.cat(all_indices)


def _results(
    query_ids: list[str],
    doc_ids: list[str],
    scores: torch.Tensor,
    indices: torch.Tensor,
    excluded: dict[str, set[str]],
    top_k: int,
) -> dict[str, list[tuple[str, float]]]:
    results: dict[str, list[tuple[str, float]]] = {}
    for query_id, row_scores, row_indices in zip(query_ids, scores.tolist(), indices.tolist(), strict=True):
        hits = [
            (doc_ids[index], score)
            for index, score in zip(row_indices, row_scores, strict=True)
            if index >= 0 and doc_ids[index] not in excluded[query_id]
        ]
        results[query_id] = hits[:top_k]
    return results
