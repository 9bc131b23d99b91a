"""The main job: what ``syntriever demo`` (and ``make demo``) runs on the bundled data and model, offline."""

from __future__ import annotations

import logging
from pathlib import Path

from syntriever_hf.evaluation import RetrievalScores, evaluate_retrieval
from syntriever_hf.resources import bundled_minilm_path, bundled_scifact_path

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)


def run_demo(output_dir: str | Path = "runs/demo", *, show_progress_bar: bool = True) -> dict[str, RetrievalScores]:
    """Evaluate the bundled all-MiniLM-L6-v2 on the bundled SciFact test split; MTEB results go to ``output_dir``.

    Returns ``{row name: scores}`` for :func:`~syntriever_hf.evaluation.format_scores_table`.
    """
    output = Path(output_dir)
    logger.info("Evaluating the base encoder all-MiniLM-L6-v2 on SciFact test (results in %s)", output)
    base = evaluate_retrieval(
        str(bundled_minilm_path()), bundled_scifact_path(), split="test", output_dir=output / "mteb",
        model_name="sentence-transformers/all-MiniLM-L6-v2", show_progress_bar=show_progress_bar,
    )
    return {"all-MiniLM-L6-v2 (base)": base}
