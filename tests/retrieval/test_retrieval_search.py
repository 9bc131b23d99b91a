"""Exact top-K search: chunked torch and faiss agree with a brute-force ranking, prompts apply, exclusions hold."""

from __future__ import annotations

import pytest
import torch

from syntriever_hf.data import load_beir
from syntriever_hf.retrieval import CorpusEmbeddings, encode_corpus, search
from tests.conftest import SCIFACT_DIR


@pytest.fixture(scope="module")
def texts() -> tuple[dict[str, str], dict[str, str]]:
    """(queries, corpus): 8 SciFact training queries and 40 documents."""
    scifact = load_beir(SCIFACT_DIR)
    corpus = dict(list(scifact.corpus_texts().items())[:40])
    queries = dict(list(scifact.query_texts("train").items())[:8])
    return queries, corpus


def _brute_force(model, queries, corpus, query_prompt=None, document_prompt=None) -> dict[str, dict[str, float]]:
    """Every query-document score, from whole-matrix encodings and ``model.similarity``."""
    encode = {"convert_to_tensor": True, "show_progress_bar": False}
    if query_prompt is None:
        q = model.encode_query(list(queries.values()), **encode)
        d = model.encode_document(list(corpus.values()), **encode)
    else:
        q = model.encode(list(queries.values()), prompt=query_prompt, **encode)
        d = model.encode(list(corpus.values()), prompt=document_prompt, **encode)
    scores = model.similarity(q, d).tolist()
    return {query_id: dict(zip(corpus, row, strict=True)) for query_id, row in zip(queries, scores, strict=True)}


def _assert_top_k(results, expected: dict[str, dict[str, float]], top_k: int) -> None:
    """Each hit carries its brute-force score, and the hits' scores are the ``top_k`` best (up to float ties)."""
    assert results.keys() == expected.keys()
    for query_id, hits in results.items():
        assert len(hits) == top_k
        best = sorted(expected[query_id].values(), reverse=True)[:top_k]
        assert [score for _, score in hits] == pytest.approx(best, abs=1e-5)
        assert [expected[query_id][doc] for doc, _ in hits] == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize("use_faiss", [False, True])
def test_search_matches_brute_force(tiny_model, texts, use_faiss):
    queries, corpus = texts
    results = search(tiny_model, queries, corpus, 10, query_chunk_size=3, corpus_chunk_size=7, use_faiss=use_faiss,
                     show_progress_bar=False)
    _assert_top_k(results, _brute_force(tiny_model, queries, corpus), 10)


def test_search_applies_the_model_prompts(tiny_model, texts):
    queries, corpus = texts
    tiny_model.prompts = {"query": "query: ", "document": "passage: "}
    results = search(tiny_model, queries, corpus, 5, show_progress_bar=False)
    with_prompts = _brute_force(tiny_model, queries, corpus, "query: ", "passage: ")
    _assert_top_k(results, with_prompts, 5)
    without = _brute_force(tiny_model, queries, corpus, "", "")
    query_id, hits = next(iter(results.items()))
    assert hits[0][1] != pytest.approx(without[query_id][hits[0][0]], abs=1e-4)


def test_non_inner_product_similarity_uses_the_model(tiny_model, texts):
    queries, corpus = texts
    tiny_model.similarity_fn_name = "euclidean"
    results = search(tiny_model, queries, corpus, 4, corpus_chunk_size=9, show_progress_bar=False)
    _assert_top_k(results, _brute_force(tiny_model, queries, corpus), 4)
    with pytest.raises(ValueError, match=r"not the model's 'euclidean': pass use_faiss=False"):
        search(tiny_model, queries, corpus, 4, use_faiss=True, show_progress_bar=False)


def test_precomputed_corpus_embeddings_give_the_same_result(tiny_model, texts):
    queries, corpus = texts
    embeddings = encode_corpus(tiny_model, corpus, show_progress_bar=False)
    assert isinstance(embeddings, CorpusEmbeddings) and embeddings.ids == list(corpus)
    assert torch.linalg.vector_norm(embeddings.embeddings, dim=1) == pytest.approx(1.0, abs=1e-5)
    direct = search(tiny_model, queries, corpus, 6, show_progress_bar=False)
    reused = search(tiny_model, queries, embeddings, 6, show_progress_bar=False)
    for query_id in queries:
        assert [doc for doc, _ in reused[query_id]] == [doc for doc, _ in direct[query_id]]
    tiny_model.similarity_fn_name = "dot"
    with pytest.raises(ValueError, match=r"corpus was encoded for similarity 'cosine' but the model uses 'dot'"):
        search(tiny_model, queries, embeddings, 6, show_progress_bar=False)


def test_excluded_and_identical_ids_are_never_returned(tiny_model, texts):
    queries, corpus = texts
    query_id, query_text = next(iter(queries.items()))
    with_self = {**corpus, query_id: query_text}
    first = search(tiny_model, {query_id: query_text}, with_self, 3, show_progress_bar=False)[query_id]
    assert first[0] == (query_id, pytest.approx(1.0, abs=1e-5))
    excluded = {first[1][0]}
    hits = search(tiny_model, {query_id: query_text}, with_self, 3, exclude={query_id: excluded},
                  ignore_identical_ids=True, show_progress_bar=False)[query_id]
    expected = _brute_force(tiny_model, {query_id: query_text}, with_self)[query_id]
    ranking = [doc for doc in sorted(expected, key=expected.get, reverse=True) if doc not in {query_id, *excluded}]
    assert [doc for doc, _ in hits] == ranking[:3]


def test_top_k_is_capped_by_the_corpus_and_checked(tiny_model, texts):
    queries, corpus = texts
    small = dict(list(corpus.items())[:4])
    results = search(tiny_model, queries, small, 10, show_progress_bar=False)
    assert all(sorted(doc for doc, _ in hits) == sorted(small) for hits in results.values())
    assert search(tiny_model, {}, small, 3, show_progress_bar=False) == {}
    with pytest.raises(ValueError, match=r"top_k must be a positive integer, got top_k=0"):
        search(tiny_model, queries, small, 0)
    with pytest.raises(ValueError, match=r"corpus is empty"):
        search(tiny_model, queries, {}, 3)
