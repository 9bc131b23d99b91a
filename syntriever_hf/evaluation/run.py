"""Retrieval evaluation through MTEB: local BEIR folders, loaded datasets, or MTEB's own tasks by name."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syntriever_hf.data.beir import BeirDataset, load_beir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["TABLE_METRICS", "RetrievalScores", "evaluate_retrieval", "format_scores_table", "load_model"]

logger = logging.getLogger(__name__)

#: The metrics of the compact table: (MTEB score key, column header).
TABLE_METRICS = (
    ("ndcg_at_1", "nDCG@1"),
    ("ndcg_at_3", "nDCG@3"),
    ("ndcg_at_5", "nDCG@5"),
    ("ndcg_at_10", "nDCG@10"),
    ("ndcg_at_100", "nDCG@100"),
    ("recall_at_10", "R@10"),
    ("recall_at_100", "R@100"),
    ("mrr_at_10", "MRR@10"),
)


@dataclass
class RetrievalScores:
    """The scores of one model on one split of one task (every metric MTEB computed)."""

    task: str
    split: str
    scores: dict[str, Any]
    output_dir: Path | None = None
    model_name: str = field(default="")

    @property
    def ndcg_at_10(self) -> float:
        return float(self.scores["ndcg_at_10"])

    def table_row(self) -> dict[str, float]:
        return {header: float(self.scores[key]) for key, header in TABLE_METRICS}


def load_model(model_name_or_path: str, *, device: str | None = None) -> SentenceTransformer:
    """A ``SentenceTransformer`` from a local folder or a Hub id (the model's saved prompts are kept)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_name_or_path, device=device)


def _resolve_task(data: str | Path | BeirDataset, split: str):
    """A loaded BEIR dataset, a BEIR folder, a Hub dataset id, or an MTEB task name -> an MTEB task."""
    from syntriever_hf.evaluation.mteb_task import beir_retrieval_task

    if isinstance(data, BeirDataset):
        return beir_retrieval_task(data, split)
    if Path(data).expanduser().is_dir() or "/" in str(data):
        return beir_retrieval_task(load_beir(data, splits=[split]), split)
    import mteb

    try:
        return mteb.get_task(str(data), eval_splits=[split])
    except KeyError as error:
        raise ValueError(
            f"--data {str(data)!r} is neither a BEIR folder, a Hub dataset id ('org/name') nor an MTEB task name "
            "(e.g. SciFact, NFCorpus, FiQA2018). Check the path, or run `python -c \"import mteb; "
            "print([t.metadata.name for t in mteb.get_tasks(task_types=['Retrieval'])])\"` for task names."
        ) from error


def evaluate_retrieval(
    model: SentenceTransformer | str,
    data: str | Path | BeirDataset,
    *,
    split: str = "test",
    output_dir: str | Path | None = None,
    model_name: str | None = None,
    batch_size: int = 32,
    device: str | None = None,
    show_progress_bar: bool = True,
) -> RetrievalScores:
    """Evaluate a bi-encoder on a retrieval split with MTEB, using the model's query/document prompts.

    Args:
        model: A ``SentenceTransformer`` or its path / Hub id.
        data: A BEIR folder, a :class:`BeirDataset`, a Hub dataset id, or an MTEB task name (online).
        split: The split to evaluate (an evaluation split such as ``test``).
        output_dir: Where MTEB writes its result files (``<output_dir>/results/<model>/<revision>/<task>.json``).
            Results are always recomputed, never read back from a cache.
        model_name: The name results are filed under. Default: the model's own name (a Hub id), else
            ``local/<folder name>``; never MTEB's shared "no_model_name" key.
        batch_size: Encoding batch size.
        device: Torch device when ``model`` is a path or id (default: automatic).
        show_progress_bar: Show encoding progress bars.
    """
    import mteb

    source = str(model) if isinstance(model, str | Path) else None
    if source is not None:
        model = load_model(source, device=device)
    _name_model(model, model_name, source)
    task = _resolve_task(data, split)
    cache = mteb.ResultCache(cache_path=str(Path(output_dir).expanduser())) if output_dir else None
    result = mteb.evaluate(
        model,
        task,
        cache=cache,
        overwrite_strategy="always",  # never return a stale result stored under the same model name
        encode_kwargs={"batch_size": batch_size, "show_progress_bar": show_progress_bar},
        show_progress_bar=show_progress_bar,
    )
    task_result = result.task_results[0]
    scores = dict(task_result.scores[split][0])
    return RetrievalScores(
        task=task.metadata.name, split=split, scores=scores, output_dir=Path(output_dir) if output_dir else None,
        model_name=str(result.model_name),
    )


def _name_model(model: SentenceTransformer, model_name: str | None, source: str | None) -> None:
    """Give the model the name MTEB files its results under, unless it already has one."""
    card = model.model_card_data
    if model_name:
        card.model_name = model_name
    elif not (card.model_name or card.base_model):
        if source and not Path(source).expanduser().exists() and source.count("/") == 1:
            card.model_name = source
        else:
            card.model_name = f"local/{Path(source or 'unnamed-model').name}"


def format_scores_table(rows: dict[str, RetrievalScores]) -> str:
    """A compact plain-text table: one row per named result, the ``TABLE_METRICS`` columns."""
    headers = [header for _, header in TABLE_METRICS]
    name_width = max([len("model"), *map(len, rows)])
    lines = [f"{'model':<{name_width}}  " + "  ".join(f"{h:>8}" for h in headers)]
    for name, scores in rows.items():
        values = scores.table_row()
        lines.append(f"{name:<{name_width}}  " + "  ".join(f"{values[h]:>8.4f}" for h in headers))
    return "\n".join(lines)
