"""``synthesize_stage1``: queries in, a stage-1 synthetic ``DatasetDict`` and its card out (optionally pushed).

The output directory is also the run directory: it holds the response store (``responses.sqlite3``), so a killed
or budget-stopped run is resumed by running the same command again, and only missing answers are requested.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from datasets import DatasetDict

from syntriever_hf.llm.engine import Engine, EngineSettings, Estimate, RunReport
from syntriever_hf.llm.pricing import PriceTable
from syntriever_hf.llm.request import ChatRequest
from syntriever_hf.llm.store import STORE_FILENAME, ResponseStore, StoreTotals
from syntriever_hf.synthesis.inputs import QuerySet
from syntriever_hf.synthesis.output import Stage1Counts, count_rows, render_stage1_card, write_dataset
from syntriever_hf.synthesis.stage1 import Stage1Settings, Stage1Tasks

__all__ = ["Stage1Estimate", "Stage1Result", "estimate_stage1", "synthesize_stage1"]

logger = logging.getLogger(__name__)

CARD_FILENAME = "README.md"


@dataclass(frozen=True)
class Stage1Estimate:
    """A dry run of both rounds. Verifications of passages not generated yet are bounded by ``max_tokens``."""

    queries: int
    generation: Estimate
    verification: Estimate

    @property
    def to_send(self) -> int:
        return self.generation.to_send + self.verification.to_send

    @property
    def input_tokens(self) -> int:
        return self.generation.input_tokens + self.verification.input_tokens

    @property
    def max_output_tokens(self) -> int:
        return self.generation.max_output_tokens + self.verification.max_output_tokens

    @property
    def max_cost_usd(self) -> float | None:
        costs = (self.generation.max_cost_usd, self.verification.max_cost_usd)
        return None if None in costs else sum(c for c in costs if c is not None)


@dataclass
class Stage1Result:
    """What a stage-1 run produced."""

    output_dir: Path
    dataset: DatasetDict
    card: str
    counts: Stage1Counts
    totals: StoreTotals
    reports: dict[str, RunReport] = field(default_factory=dict)
    hub_url: str | None = None

    @property
    def stopped_by_budget(self) -> bool:
        """Whether a limit (``max_cost``/``max_requests``) left requests unsent: the output is partial."""
        return any(report.not_sent for report in self.reports.values())


def _verification_estimates(tasks: Stage1Tasks, engine: Engine, queries: QuerySet) -> Iterator[ChatRequest]:
    """Round-2 requests: exact where the passage is stored, else a placeholder passage of ``max_tokens`` tokens."""
    filler = "x" * (3 * tasks.settings.max_tokens)  # as many tokens as the longest passage, by the 3-chars rule
    for query in queries.texts:
        for task in ("positive", "negative")[: 2 if tasks.settings.verify_negative else 1]:
            outcome = engine.outcome(tasks.generation_request(task, query), tasks.parse_text)
            if outcome.status == "succeeded":
                yield tasks.verification_request(query, outcome.value)
            elif outcome.reason is None or not outcome.reason.startswith("unparseable after"):
                yield tasks.verification_request(query, f"({task} not generated yet) {filler}")


def estimate_stage1(
    queries: QuerySet,
    settings: Stage1Settings,
    output_dir: str | Path,
    *,
    engine_settings: EngineSettings | None = None,
    prices: PriceTable | None = None,
) -> Stage1Estimate:
    """Count the requests a run would send (the store's answers are free) and bound tokens and cost; sends nothing
    and writes nothing."""
    engine_settings = engine_settings or EngineSettings()
    store_path = Path(output_dir) / STORE_FILENAME
    with tempfile.TemporaryDirectory(prefix="syntriever-dry-run-") as scratch:
        store = ResponseStore(store_path if store_path.is_file() else Path(scratch) / STORE_FILENAME)
        try:
            engine = Engine(store, engine_settings, prices=prices)
            tasks = Stage1Tasks(settings)
            generation = engine.estimate(tasks.generation_requests(queries), tasks.parse_text)
            verification = engine.estimate(_verification_estimates(tasks, engine, queries), tasks.parse_verdict)
        finally:
            store.close()
    return Stage1Estimate(len(queries), generation, verification)


def _rows(tasks: Stage1Tasks, engine: Engine, queries: QuerySet) -> Iterator[dict]:
    for query_id, query, gold in zip(queries.ids, queries.texts, queries.gold_ids, strict=True):
        yield tasks.row(query_id, query, gold, tasks.outcomes(engine, query))


def synthesize_stage1(
    queries: QuerySet,
    settings: Stage1Settings,
    output_dir: str | Path,
    *,
    engine_settings: EngineSettings | None = None,
    prices: PriceTable | None = None,
    source_path: str | None = None,
    push_to_hub: str | None = None,
    hub_token: str | None = None,
    private: bool = False,
) -> Stage1Result:
    """Run stage-1 synthesis for ``queries`` and write the dataset and its card to ``output_dir``.

    Round 1 asks for the positive, the negative and the chain of thought of every query; round 2 verifies the
    generated positives (and negatives). Every query gives exactly one row; a task that ended without a usable
    answer is listed in ``failures`` with its reason. Rerunning with the same ``output_dir`` sends only what the
    store lacks.

    Args:
        queries: the queries (:meth:`QuerySet.from_beir` or :meth:`QuerySet.from_texts`).
        settings: model, sampling, prompt flavour.
        output_dir: where the dataset (``save_to_disk``), ``README.md`` and the response store go.
        engine_settings: endpoint, mode, concurrency, limits, budget (default: :class:`EngineSettings`).
        prices: price table for cost estimates.
        source_path: the folder or Hub id the queries came from, for the card.
        push_to_hub: ``org/name`` to push the dataset and its card to.
        hub_token: Hub token for the push (default: ``HF_TOKEN`` or the saved login).
        private: create the Hub repo private.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    engine_settings = engine_settings or EngineSettings()
    prices = prices or PriceTable()
    tasks = Stage1Tasks(settings)
    with ResponseStore(output_dir / STORE_FILENAME) as store:
        engine = Engine(store, engine_settings, prices=prices)
        reports = {
            "generate": engine.run(tasks.generation_requests(queries), tasks.parse_text,
                                   total=3 * len(queries), description="stage-1 generate"),
        }
        due = sum(1 for _ in tasks.verification_requests(engine, queries))
        reports["verify"] = engine.run(tasks.verification_requests(engine, queries), tasks.parse_verdict,
                                       total=due, description="stage-1 verify")
        dataset = write_dataset(lambda: _rows(tasks, engine, queries), output_dir)
        totals = store.totals()
    counts = count_rows(dataset["train"], settings)
    card = render_stage1_card(queries=queries, source_path=source_path, settings=settings, engine=engine_settings,
                              counts=counts, totals=totals, prices=prices)
    (output_dir / CARD_FILENAME).write_text(card, encoding="utf-8")
    result = Stage1Result(output_dir, dataset, card, counts, totals, reports)
    logger.info("Stage-1 data for %d queries written to %s (%d row(s) with failures)", counts.queries, output_dir,
                counts.rows_with_failures)
    if push_to_hub:
        from syntriever_hf.hub.push import push_dataset_dict

        result.hub_url = push_dataset_dict(dataset, push_to_hub, card, token=hub_token, private=private)
    return result
