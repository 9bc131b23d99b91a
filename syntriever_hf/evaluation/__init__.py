"""Evaluation through MTEB: any BEIR folder becomes an MTEB retrieval task; compact result tables."""

from syntriever_hf.evaluation.run import (
    TABLE_METRICS,
    RetrievalScores,
    evaluate_retrieval,
    format_scores_table,
    load_model,
)

__all__ = ["TABLE_METRICS", "RetrievalScores", "evaluate_retrieval", "format_scores_table", "load_model"]
