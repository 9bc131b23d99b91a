"""The citation of the Syntriever paper, shared by the losses (``citation``) and the model cards."""

from __future__ import annotations

__all__ = ["SYNTRIEVER_CITATION"]

SYNTRIEVER_CITATION = """@inproceedings{kim-baek-2025-syntriever,
    title = "Syntriever: How to Train Your Retriever with Synthetic Data from {LLM}s",
    author = "Kim, Minsang and Baek, Seungjun",
    booktitle = "Findings of the Association for Computational Linguistics: NAACL 2025",
    year = "2025",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/2502.03824",
}
"""
