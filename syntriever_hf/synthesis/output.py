"""The stage-1 output: a ``DatasetDict({"train": ...})`` in ``STAGE1_SYNTHETIC_FEATURES`` and its dataset card.

Rows stream from the response store into an Arrow file (memory flat in the number of queries); the card's
provenance (model, endpoint, sampling, prompt versions and hashes, counts, tokens, cost, source, licence) comes
from the objects of the run, never typed by hand.
"""

from __future__ import annotations

import datetime
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_from_disk

from syntriever_hf.data.schema import STAGE1_SYNTHETIC_FEATURES
from syntriever_hf.llm.client import redact, redact_url
from syntriever_hf.llm.engine import EngineSettings
from syntriever_hf.llm.pricing import PriceTable
from syntriever_hf.llm.store import StoreTotals
from syntriever_hf.synthesis.inputs import QuerySet
from syntriever_hf.synthesis.stage1 import GENERATION_TASKS, Stage1Settings, Stage1Tasks

__all__ = ["CARD_TEMPLATE", "Stage1Counts", "TaskCount", "count_rows", "render_stage1_card", "write_dataset"]

logger = logging.getLogger(__name__)

CARD_TEMPLATE = "stage1_dataset_card.md"

_TASK_COLUMNS = {
    "positive": "llm_positive", "negative": "llm_negative", "cot": "cot",
    "verify_positive": "llm_positive_verdict", "verify_negative": "llm_negative_verdict",
}


def write_dataset(rows: Callable[[], Iterator[dict[str, Any]]], output_dir: str | Path) -> DatasetDict:
    """Stream rows into ``DatasetDict({"train": ...})``, ``save_to_disk(output_dir)``, and return it from there."""
    with tempfile.TemporaryDirectory(prefix="syntriever-stage1-") as cache_dir:
        train = Dataset.from_generator(
            rows, features=STAGE1_SYNTHETIC_FEATURES, cache_dir=cache_dir, fingerprint=uuid.uuid4().hex
        )
        DatasetDict({"train": train}).save_to_disk(str(output_dir))
    return load_from_disk(str(output_dir))


@dataclass(frozen=True)
class TaskCount:
    """Per task: for how many queries it was due, and how many ended succeeded or failed."""

    task: str
    requested: int
    succeeded: int
    failed: int


@dataclass(frozen=True)
class Stage1Counts:
    """Counts of a stage-1 dataset, computed from its rows."""

    queries: int
    tasks: list[TaskCount]
    positives_verified: int
    positives_rejected: int
    negatives_kept: int
    negatives_dropped: int
    rows_with_failures: int


def count_rows(dataset: Dataset, settings: Stage1Settings) -> Stage1Counts:
    """Count requested/succeeded/failed per task and the verdicts, from the columns of the dataset."""
    failures = dataset["failures"]
    failed = {task: sum(any(f.startswith(f"{task}: ") for f in row) for row in failures) for task in _TASK_COLUMNS}
    tasks = []
    for task in settings.tasks():
        succeeded = sum(value is not None for value in dataset[_TASK_COLUMNS[task]])
        if task in GENERATION_TASKS:
            requested = len(dataset)
        else:
            requested = sum(value is not None for value in dataset[_TASK_COLUMNS[task.removeprefix("verify_")]])
        tasks.append(TaskCount(task, requested, succeeded, failed[task]))
    positive, negative = dataset["llm_positive_verdict"], dataset["llm_negative_verdict"]
    return Stage1Counts(
        queries=len(dataset), tasks=tasks,
        positives_verified=positive.count("yes"), positives_rejected=positive.count("no"),
        negatives_kept=negative.count("no"), negatives_dropped=negative.count("yes"),
        rows_with_failures=sum(bool(row) for row in failures),
    )


def _size_category(rows: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return label
    return "1M<n<10M"


def _library_version() -> str:
    try:
        return metadata.version("syntriever-hf")
    except metadata.PackageNotFoundError:
        return "(unknown version)"


def _cost_text(totals: StoreTotals, settings: Stage1Settings, engine: EngineSettings, prices: PriceTable) -> str:
    price = prices.price(settings.model)
    if price is None:
        return f"unknown (no price for `{settings.model}` in the price table)"
    batch = " with the Batch API discount" if engine.mode == "batch" else ""
    return (f"about {totals.cost_usd:.4f} USD at {price.input:g} / {price.output:g} USD per 1M input / output "
            f"tokens{batch}")


def render_stage1_card(
    *,
    queries: QuerySet,
    source_path: str | None,
    settings: Stage1Settings,
    engine: EngineSettings,
    counts: Stage1Counts,
    totals: StoreTotals,
    prices: PriceTable,
) -> str:
    """The dataset card, rendered from ``hub_cards/stage1_dataset_card.md`` with every fact from the objects."""
    from syntriever_hf.hub.cards import render_card
    from syntriever_hf.llm.request import canonical_json

    tasks = Stage1Tasks(settings)
    prompt_rows = [
        {"task": task, "name": tasks.prompts[key].name, "version": tasks.prompts[key].version,
         "sha256": tasks.prompts[key].sha256}
        for task, key in (("positive", "positive"), ("negative", "negative"), ("cot", "cot"), ("verification",
                                                                                               "verify"))
    ]
    source_license = queries.license
    card = render_card(
        CARD_TEMPLATE,
        license_id=source_license or "other",
        size_category=_size_category(counts.queries),
        pretty_name=f"Syntriever stage-1 synthetic data: {queries.source}",
        library_version=_library_version(),
        date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        counts=asdict(counts),
        source=queries.source,
        split=queries.split,
        source_path=source_path,
        source_license_text=f"`{source_license}`" if source_license else
        "not known to syntriever-hf: check it before you redistribute this dataset",
        model=settings.model,
        endpoint=f"`{redact_url(engine.client.base_url)}`" if engine.client.base_url else "the OpenAI API",
        mode=engine.mode,
        structured_output=settings.structured_output,
        verify_negative=settings.verify_negative,
        generation_sampling=canonical_json(settings.sampling(settings.max_tokens)),
        verification_sampling=canonical_json(settings.sampling(settings.verify_max_tokens)),
        max_attempts=engine.max_attempts,
        prompts=prompt_rows,
        requests=totals.requests,
        prompt_tokens=totals.prompt_tokens,
        completion_tokens=totals.completion_tokens,
        cost_text=_cost_text(totals, settings, engine, prices),
    )
    return redact(card)
