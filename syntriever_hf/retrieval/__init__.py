"""Dense retrieval: corpus encoding, exact top-K search (torch or faiss), and hard-negative mining by corpus id."""

from __future__ import annotations

from syntriever_hf.retrieval.negatives import mine_hard_negatives
from syntriever_hf.retrieval.search import CorpusEmbeddings, encode_corpus, search

__all__ = ["CorpusEmbeddings", "encode_corpus", "mine_hard_negatives", "search"]
