"""Any BEIR dataset as an MTEB retrieval task, evaluated offline from memory."""

from __future__ import annotations

import re
from typing import Any

from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.task_metadata import TaskMetadata

from syntriever_hf.data.beir import BeirDataset

__all__ = ["beir_retrieval_task"]


def _task_name(dataset_name: str) -> str:
    """A task name MTEB accepts and that cannot collide with one of MTEB's own tasks."""
    return "BEIRLocal-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset_name).strip("-") or "dataset")


def beir_retrieval_task(
    beir: BeirDataset, split: str = "test", *, ignore_identical_ids: bool = True
) -> AbsTaskRetrieval:
    """Wrap one split of ``beir`` as a ready-loaded MTEB ``AbsTaskRetrieval``.

    Args:
        beir: The dataset; its corpus, the queries judged in ``split`` and their qrels are handed to MTEB.
        split: The qrels split to evaluate on.
        ignore_identical_ids: Leave a document out of a query's ranking when it has the query's id, as BEIR's
            evaluation does (it only matters for datasets whose queries are drawn from the corpus).
    """
    queries = beir.queries_of_split(split)
    relevant_docs = beir.relevant_docs(split)
    metadata = TaskMetadata(
        name=_task_name(beir.name),
        description=f"BEIR-layout retrieval dataset {beir.name!r} loaded from {beir.source}.",
        dataset={"path": beir.source, "revision": "local"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
    )
    task_class = type(
        "BeirLocalRetrieval",
        (AbsTaskRetrieval,),
        {"metadata": metadata, "ignore_identical_ids": ignore_identical_ids, "load_data": _loaded_already},
    )
    task = task_class()
    task.dataset = {
        "default": {
            split: {"corpus": beir.corpus, "queries": queries, "relevant_docs": relevant_docs, "top_ranked": None}
        }
    }
    task.data_loaded = True
    return task


def _loaded_already(self: AbsTaskRetrieval, **kwargs: Any) -> None:
    """The data is set when the task is built: never fetch anything."""
    self.data_loaded = True
